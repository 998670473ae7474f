//! What the command-line tests share: the `switchboard` binary run as a child process
//! whose stdout lines are matched as they come (with a deadline, no fixed sleeps), a
//! one-shot run, and a server started on a free port with a fresh data dir.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
/// How long a test waits for one expected line.
pub const WAIT: Duration = Duration::from_secs(15);

/// A child process whose stdout lines arrive on a channel; killed on drop.
pub struct Proc {
    /// The process.
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    /// Lines read but not matched yet: `sub` prints from two tasks (events and
    /// replies), so lines that are not ordered with each other may come either way.
    pub unmatched: std::cell::RefCell<Vec<String>>,
    /// The child is a shell: its descendants are killed too.
    group: bool,
}

impl Proc {
    /// Starts the binary with `args` and extra environment `envs`.
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Proc {
        Proc::spawn_to(args, envs, Stdio::null())
    }

    /// [`Proc::spawn`] with stderr written to `log`.
    pub fn spawn_logged(args: &[&str], envs: &[(&str, &str)], log: &std::path::Path) -> Proc {
        let file = std::fs::File::create(log).expect("create the stderr log");
        Proc::spawn_to(args, envs, Stdio::from(file))
    }

    fn spawn_to(args: &[&str], envs: &[(&str, &str)], stderr: Stdio) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Proc::start(cmd, false)
    }

    /// `bash -c SCRIPT` in `cwd` (killed with whatever it started on drop); stderr to
    /// `log`.
    pub fn spawn_shell(
        script: &str,
        cwd: &std::path::Path,
        envs: &[(&str, &str)],
        log: &std::path::Path,
    ) -> Proc {
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(script)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(log).expect("log")));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Proc::start(cmd, true)
    }

    /// [`Proc::spawn`] with a pipe to its standard input.
    pub fn spawn_interactive(
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> (Proc, std::process::ChildStdin) {
        let mut cmd = Command::new(BIN);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::piped());
        let mut p = Proc::start(cmd, false);
        let stdin = p.child.stdin.take().expect("stdin");
        (p, stdin)
    }

    fn start(mut cmd: Command, group: bool) -> Proc {
        let mut child = cmd.spawn().expect("spawn switchboard");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            unmatched: Default::default(),
            group,
        }
    }

    /// The first line (earlier unmatched ones included) for which `pick` returns
    /// something, within [`WAIT`]; lines it skips stay for later calls.
    pub fn expect<T>(&self, what: &str, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        {
            let mut kept = self.unmatched.borrow_mut();
            if let Some((i, t)) = kept
                .iter()
                .enumerate()
                .find_map(|(i, l)| pick(l).map(|t| (i, t)))
            {
                kept.remove(i);
                return t;
            }
        }
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(t) = pick(&line) {
                        return t;
                    }
                    self.unmatched.borrow_mut().push(line);
                }
                Err(_) => panic!("no line with {what} within {WAIT:?}"),
            }
        }
    }

    /// The first JSON line matching `pred`.
    pub fn expect_json(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.expect(what, |l| {
            serde_json::from_str::<Value>(l).ok().filter(|v| pred(v))
        })
    }
}

impl Proc {
    /// Waits (up to [`WAIT`]) for the process to exit by itself.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the process did not exit within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.group {
            // The shell's descendants, found by pid (it may not exec the command).
            let mut pids = Vec::new();
            let mut todo = vec![self.child.id()];
            while let Some(pid) = todo.pop() {
                let list = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                    .unwrap_or_default();
                for c in list
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok())
                {
                    pids.push(c);
                    todo.push(c);
                }
            }
            for pid in pids {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion.
pub fn run(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run switchboard")
}

/// The value after `label` on a banner line.
pub fn field(line: &str, label: &str) -> Option<String> {
    line.trim()
        .strip_prefix(label)
        .map(|v| v.trim().to_string())
}

/// A `switchboard serve` on a free port with a fresh data dir, and what its banner says.
pub struct Served {
    /// The server process.
    pub proc: Proc,
    /// The data directory (removed on drop).
    pub dir: PathBuf,
    /// The first-start app id.
    pub app_id: String,
    /// Its certificate.
    pub cert: String,
    /// `ws://ADDR`.
    pub url: String,
}

impl Served {
    /// Starts a server with its own data dir named after `name`, with `extra` flags.
    pub fn start(name: &str, extra: &[&str]) -> Served {
        let dir = std::env::temp_dir().join(format!("switchboard-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let data = dir.to_string_lossy().to_string();
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", &data];
        args.extend_from_slice(extra);
        let proc = Proc::spawn(&args, &[]);
        let app_id = proc.expect("the app id", |l| field(l, "app id:"));
        let cert = proc.expect("the certificate", |l| field(l, "certificate:"));
        let url = proc.expect("listening on", |l| field(l, "listening on"));
        Served {
            proc,
            dir,
            app_id,
            cert,
            url,
        }
    }

    /// SWITCHBOARD_URL, _APP_ID and _APP_CERT for the client commands.
    pub fn env(&self) -> [(&'static str, String); 3] {
        [
            ("SWITCHBOARD_URL", self.url.clone()),
            ("SWITCHBOARD_APP_ID", self.app_id.clone()),
            ("SWITCHBOARD_APP_CERT", self.cert.clone()),
        ]
    }

    /// A login token for `user`, made by `switchboard token rtm` with `extra` flags.
    pub fn token(&self, user: &str, extra: &[&str]) -> String {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut args = vec!["token", "rtm", "--user-id", user];
        args.extend_from_slice(extra);
        let out = run(&args, &env);
        assert!(out.status.success(), "token rtm");
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The JSON lines of a finished run's stdout.
pub fn json_lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Runs the binary to completion with stdout and stderr captured, failing the test if
/// it is still running after [`WAIT`] (a command expected to refuse must not serve).
pub fn run_bounded(args: &[&str], envs: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let log = std::env::temp_dir().join(format!(
        "switchboard-stderr-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let mut p = Proc::spawn_logged(args, envs, &log);
    let status = p.wait_exit();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    (status, stderr)
}

/// A process-unique number for file names.
pub fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A rustls client configuration (ring) that trusts only the certificate in `pem`.
pub fn tls_client_trusting(pem: &str) -> std::sync::Arc<tokio_rustls::rustls::ClientConfig> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pem.as_bytes()).expect("a PEM certificate"))
        .expect("a root");
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}
