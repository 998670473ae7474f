//! What every scenario reports besides its own counters: latency histograms, a
//! progress bar over the measured seconds, and CPU / memory read from `/proc`
//! (the server's when `--server-pid` is given, and this process's).

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

static START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Microseconds on the bench's monotonic clock (shared by every task of the process).
pub(crate) fn clock_us() -> u64 {
    START.elapsed().as_micros() as u64
}

/// A latency histogram in microseconds, 1 µs to 60 s.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// p50 / p99 / p999 / max of a µs histogram, in ms, as JSON.
pub(crate) fn latency_json(h: &Histogram<u64>) -> Value {
    let ms = |v: u64| v as f64 / 1000.0;
    json!({
        "p50": ms(h.value_at_quantile(0.5)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
    })
}

/// Table lines of the latency percentiles.
pub(crate) fn print_latency(label: &str, h: &Histogram<u64>) {
    let ms = |v: u64| v as f64 / 1000.0;
    for (q, v) in [
        ("p50", h.value_at_quantile(0.5)),
        ("p99", h.value_at_quantile(0.99)),
        ("p999", h.value_at_quantile(0.999)),
        ("max", h.max()),
    ] {
        println!("  {:<17}{:.3} ms", format!("{label} {q}"), ms(v));
    }
}

/// Shows a progress bar for `seconds`, with `count()` per second as its message.
pub(crate) async fn progress(seconds: u64, unit: &str, count: impl Fn() -> u64) -> Duration {
    let bar = ProgressBar::new(seconds);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let begin = Instant::now();
    let mut last = count();
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = count();
        bar.set_message(format!("{} {unit}/s", now - last));
        last = now;
        bar.inc(1);
    }
    bar.finish_and_clear();
    begin.elapsed()
}

/// A bar over `len` items (connections being opened).
pub(crate) fn count_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {what} {{msg}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn proc_path(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(p) => format!("/proc/{p}/{file}"),
        None => format!("/proc/self/{file}"),
    }
}

fn clock_ticks() -> f64 {
    static TICKS: LazyLock<f64> = LazyLock::new(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    });
    *TICKS
}

/// User + system CPU seconds of a process (`utime` + `stime` of `/proc/PID/stat`).
pub(crate) fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(proc_path(pid, "stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// Resident set size in KiB (`VmRSS` of `/proc/PID/status`).
pub(crate) fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(proc_path(pid, "status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU used over a run by the server (when its pid is known) and by this process.
pub(crate) struct CpuMeter {
    server_pid: Option<u32>,
    in_process: bool,
    server0: Option<f64>,
    self0: Option<f64>,
    wall0: Instant,
}

impl CpuMeter {
    /// Starts measuring. `in_process`: the server runs inside this process.
    pub fn start(server_pid: Option<u32>, in_process: bool) -> CpuMeter {
        CpuMeter {
            server_pid,
            in_process,
            server0: server_pid.and_then(|p| cpu_seconds(Some(p))),
            self0: cpu_seconds(None),
            wall0: Instant::now(),
        }
    }

    /// Prints the table lines and returns the JSON object; `per` = deliveries (or
    /// messages) to divide the server's CPU by.
    pub fn finish(&self, per: u64) -> Value {
        let wall = self.wall0.elapsed().as_secs_f64();
        let server = self
            .server_pid
            .and_then(|p| Some(cpu_seconds(Some(p))? - self.server0?));
        let this = cpu_seconds(None).and_then(|c| Some(c - self.self0?));
        let per_us = |cpu: f64| (per > 0).then(|| cpu * 1e6 / per as f64);
        if let Some(s) = server {
            println!(
                "  server CPU       {s:.2} s over {wall:.1} s ({:.0} %)",
                s * 100.0 / wall
            );
        }
        if let Some(t) = this {
            let what = if self.in_process {
                "process CPU      "
            } else {
                "load CPU         "
            };
            println!(
                "  {what}{t:.2} s over {wall:.1} s ({:.0} %)",
                t * 100.0 / wall
            );
        }
        json!({
            "wall_s": (wall * 100.0).round() / 100.0,
            "server_cpu_s": server,
            "server_us_per_item": server.and_then(per_us),
            // In-process runs: this figure includes the server.
            "load_cpu_s": this,
            "in_process_server": self.in_process,
        })
    }
}
