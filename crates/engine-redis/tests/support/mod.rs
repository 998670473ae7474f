//! Test harness: a real `redis-server` on a free loopback port with its own temp dir,
//! killed (and the dir removed) on drop; engines with their own key prefix.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use switchboard_engine_redis::{RedisConfig, RedisEngine};

/// A running `redis-server`.
pub struct RedisServer {
    pub port: u16,
    pub dir: PathBuf,
    /// Extra server arguments (e.g. persistence settings), kept for restarts.
    extra: Vec<String>,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Whether a PING on `port` answers PONG.
pub fn pings(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Polls `cond` until it holds or `secs` pass.
pub fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls the async `cond` until it holds or `secs` pass (for tests inside a runtime).
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl RedisServer {
    /// Starts a server on a free port with a fresh temp dir and waits for PING.
    pub fn start() -> RedisServer {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts a server with these persistence (or other) arguments.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchboard-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = RedisServer {
            port: 0,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        // Another test may take the free port between our probe and the bind: retry.
        for _ in 0..5 {
            if server.spawn(free_port()) {
                return server;
            }
        }
        panic!("redis-server did not start");
    }

    /// Starts the process on `port`; false if it exited (port taken) before answering.
    fn spawn(&mut self, port: u16) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(&self.extra)
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        self.port = port;
        self.child = Some(child);
        // Drain its log so it never blocks on a full pipe.
        if let Some(out) = self.child.as_mut().and_then(|c| c.stdout.take()) {
            std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
        }
        let mut exited = false;
        wait_until(10, "redis-server to answer PING", || {
            exited = self
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            exited || pings(port)
        });
        if exited {
            self.child = None;
        }
        !exited
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (no persistence: its data is gone) and waits until the port no
    /// longer answers.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let port = self.port;
        wait_until(10, "redis-server to stop", || !pings(port));
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port;
        assert!(self.spawn(port), "redis-server did not restart on its port");
    }

    /// Runs one command with redis-cli-free raw RESP and returns the raw reply.
    pub fn command(&self, args: &[&str]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).expect("write");
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).expect("read");
        line
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A prefix no other engine of this process uses.
pub fn fresh_prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("t{}:", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A config for `server` with a fresh prefix and short probe timings.
pub fn config(server: &RedisServer, node: &str) -> RedisConfig {
    let mut c = RedisConfig::new(server.url(), node);
    c.prefix = fresh_prefix();
    c.probe_interval = Duration::from_millis(200);
    c.probe_timeout = Duration::from_millis(1000);
    c
}

/// Connects from a synchronous factory (the conformance kit's factories are not async):
/// needs a multi-thread runtime.
pub fn connect_blocking(config: RedisConfig) -> Arc<RedisEngine> {
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(RedisEngine::connect_with(config))
    })
    .expect("connect")
}
