//! What every peer and scenario shares: the clock, latency histograms, the bench
//! payload (binary for the binary protocols, text for the JSON ones), CPU from /proc.

use hdrhistogram::Histogram;
use std::sync::LazyLock;
use std::time::Instant;

static START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Microseconds on this process's monotonic clock.
pub fn clock_us() -> u64 {
    START.elapsed().as_micros() as u64
}

/// A latency histogram in µs, 1 µs to 60 s.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// p50 / p99 / p999 / max in ms, as JSON (the keys of the switchboard bench).
pub fn latency_json(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |v: u64| v as f64 / 1000.0;
    serde_json::json!({
        "p50": ms(h.value_at_quantile(0.5)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
    })
}

pub fn print_latency(label: &str, h: &Histogram<u64>) {
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

/// One bench message: who sent it (the high bit marks a p2p echo), its sequence
/// number and its send time (µs on [`clock_us`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Msg {
    pub p: u32,
    pub seq: u64,
    pub sent: u64,
}

/// Binary payload of `size` bytes (at least 20): p, seq, sent little-endian, zeros.
pub fn encode_binary(size: usize, m: Msg, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&m.p.to_le_bytes());
    out.extend_from_slice(&m.seq.to_le_bytes());
    out.extend_from_slice(&m.sent.to_le_bytes());
    out.resize(start + size.max(20), 0);
}

pub fn decode_binary(b: &[u8]) -> Option<Msg> {
    if b.len() < 20 {
        return None;
    }
    Some(Msg {
        p: u32::from_le_bytes(b[0..4].try_into().ok()?),
        seq: u64::from_le_bytes(b[4..12].try_into().ok()?),
        sent: u64::from_le_bytes(b[12..20].try_into().ok()?),
    })
}

/// Marks the start of a text payload inside a JSON / Socket.IO frame (never needs
/// escaping, never appears in the framing around it).
pub const TEXT_MARK: u8 = b'~';
const TEXT_FIELDS: usize = 1 + 8 + 16 + 16;

/// Text payload of `size` characters (at least 41): `~`, p, seq, sent in fixed-width
/// hex, then `.` padding. Plain ASCII: embedded in a JSON string as is.
pub fn encode_text(size: usize, m: Msg, out: &mut Vec<u8>) {
    use std::io::Write;
    let start = out.len();
    let _ = write!(out, "~{:08x}{:016x}{:016x}", m.p, m.seq, m.sent);
    out.resize(start + size.max(TEXT_FIELDS), b'.');
}

/// Finds the first text payload in a frame.
pub fn decode_text(frame: &[u8]) -> Option<Msg> {
    let at = memchr(TEXT_MARK, frame)?;
    let f = frame.get(at + 1..at + TEXT_FIELDS)?;
    let hex = |b: &[u8]| -> Option<u64> {
        let mut v = 0u64;
        for &c in b {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => return None,
            };
            v = (v << 4) | u64::from(d);
        }
        Some(v)
    };
    Some(Msg {
        p: hex(&f[0..8])? as u32,
        seq: hex(&f[8..24])?,
        sent: hex(&f[24..40])?,
    })
}

fn memchr(c: u8, b: &[u8]) -> Option<usize> {
    b.iter().position(|&x| x == c)
}

/// User + system CPU seconds of a process (`/proc/PID/stat`), `None` = this process.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // CLK_TCK is 100 on Linux.
    Some((utime + stime) / 100.0)
}

/// CPU of the server (by pid) and of this process over a run.
pub struct CpuMeter {
    server_pid: Option<u32>,
    server0: Option<f64>,
    self0: Option<f64>,
    wall0: Instant,
}

impl CpuMeter {
    pub fn start(server_pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            server_pid,
            server0: server_pid.and_then(|p| cpu_seconds(Some(p))),
            self0: cpu_seconds(None),
            wall0: Instant::now(),
        }
    }

    /// Prints the CPU lines and returns the `cpu` JSON object of the switchboard bench;
    /// `per` = deliveries or messages to divide the server's CPU by.
    pub fn finish(&self, per: u64) -> serde_json::Value {
        let wall = self.wall0.elapsed().as_secs_f64();
        let server = self
            .server_pid
            .and_then(|p| Some(cpu_seconds(Some(p))? - self.server0?));
        let this = cpu_seconds(None).and_then(|c| Some(c - self.self0?));
        if let Some(s) = server {
            println!(
                "  server CPU       {s:.2} s over {wall:.1} s ({:.0} %)",
                s * 100.0 / wall
            );
        }
        if let Some(t) = this {
            println!(
                "  load CPU         {t:.2} s over {wall:.1} s ({:.0} %)",
                t * 100.0 / wall
            );
        }
        let per_us = |cpu: f64| (per > 0).then(|| cpu * 1e6 / per as f64);
        serde_json::json!({
            "wall_s": (wall * 100.0).round() / 100.0,
            "server_cpu_s": server,
            "server_us_per_item": server.and_then(per_us),
            "load_cpu_s": this,
            "in_process_server": false,
        })
    }
}

/// What one receiver saw of one source: latency, count, order.
pub struct Seen {
    pub hist: Histogram<u64>,
    pub received: u64,
    pub out_of_order: u64,
    next: u64,
}

impl Seen {
    pub fn new() -> Seen {
        Seen {
            hist: histogram(),
            received: 0,
            out_of_order: 0,
            next: 0,
        }
    }

    pub fn observe(&mut self, seq: u64, sent: u64) {
        let _ = self.hist.record(clock_us().saturating_sub(sent).max(1));
        self.received += 1;
        if seq < self.next {
            self.out_of_order += 1;
        } else {
            self.next = seq + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let m = Msg {
            p: 1 << 31 | 7,
            seq: 123_456_789,
            sent: 42,
        };
        let mut b = Vec::new();
        encode_binary(100, m, &mut b);
        assert_eq!(b.len(), 100);
        assert_eq!(decode_binary(&b), Some(m));
        let mut t = b"42[\"m\",\"".to_vec();
        encode_text(100, m, &mut t);
        assert_eq!(t.len(), 8 + 100);
        t.extend_from_slice(b"\"]");
        assert_eq!(decode_text(&t), Some(m));
    }
}
