//! A fault-injection TCP proxy for loopback tests.
//!
//! [`FaultProxy`] listens on `127.0.0.1:0` and forwards every accepted connection to an
//! upstream address. On command it changes how it treats every connection through it,
//! current and future, until told otherwise:
//!
//! - [`pass`](FaultProxy::pass): forward both ways normally (the default); also ends
//!   `freeze`, `throttle` and `refuse`.
//! - [`freeze`](FaultProxy::freeze): a stalled network. Both sockets stay open and
//!   nothing is forwarded either way; bytes read meanwhile are held (at most
//!   [`HOLD_LIMIT`] per direction, past which the connection is reset) and delivered
//!   in order once forwarding resumes.
//! - [`hold_replies`](FaultProxy::hold_replies): freeze only what the server sends, so
//!   a request gets through and its reply is held (a reply lost in flight, once cut).
//! - [`throttle`](FaultProxy::throttle): forward at most a given number of bytes per
//!   second, per direction, per connection.
//! - [`cut`](FaultProxy::cut): a one-shot event, not a mode: every current connection
//!   is reset (`SO_LINGER` 0, both sides); later connections are proxied as usual.
//! - [`refuse`](FaultProxy::refuse): the server is "down": new connections are
//!   accepted and reset at once. It only concerns accepting: existing connections keep
//!   being forwarded as the current `freeze`/`throttle`/`pass` setting says.
//!
//! Any other abnormal end of one side (I/O error, reset, held bytes over the limit) is
//! passed on as a reset of the other; a clean end-of-stream is passed on as a
//! half-close. Mode changes reach every pump at once through a `watch` channel, even a
//! pump blocked in a read, a write or a throttle pause. Dropping the proxy stops
//! accepting and closes every connection: the accept task owns the connection tasks,
//! and aborting it aborts them.
//!
//! A client whose connection is still in the listener's backlog (connected, not yet
//! accepted by the proxy) when `cut()` is called is not cut; poll
//! [`connections`](FaultProxy::connections) first when that matters.

use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Most bytes held per direction of a frozen connection before it is reset.
pub const HOLD_LIMIT: usize = 8 * 1024 * 1024;
/// Bytes buffered per direction while forwarding before reading pauses (back-pressure).
const FORWARD_BUFFER: usize = 64 * 1024;
/// Size of one read.
const READ_CHUNK: usize = 16 * 1024;

/// How connections are forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Forward {
    Pass,
    Freeze,
    /// Freeze toward the client, pass toward the server.
    HoldReplies,
    Throttle(u64),
}

/// The state shared with every task through the watch channel.
#[derive(Clone, Copy, Debug)]
struct State {
    forward: Forward,
    refuse: bool,
    /// Bumped by every `cut()`; a connection dies when it differs from its own.
    cut_gen: u64,
}

/// Why a pump stopped other than by a clean end-of-stream.
struct Abort;

/// A TCP proxy on a loopback port that can stall, throttle, cut or refuse connections.
pub struct FaultProxy {
    addr: SocketAddr,
    state: watch::Sender<State>,
    open: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1:0 forwarding to `upstream` (panics if it cannot bind).
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy");
        let addr = listener.local_addr().expect("fault proxy address");
        let initial = State {
            forward: Forward::Pass,
            refuse: false,
            cut_gen: 0,
        };
        let (state, rx) = watch::channel(initial);
        let open = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(accept_loop(listener, upstream, rx, open.clone()));
        FaultProxy {
            addr,
            state,
            open,
            task,
        }
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's address as a WebSocket URL, `ws://{addr}`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Forwards normally, delivering any held bytes; ends `freeze`, `throttle` and `refuse`.
    pub fn pass(&self) {
        self.state.send_modify(|s| {
            s.forward = Forward::Pass;
            s.refuse = false;
        });
    }

    /// Stops forwarding both ways, holding the bytes read until forwarding resumes.
    pub fn freeze(&self) {
        self.state.send_modify(|s| s.forward = Forward::Freeze);
    }

    /// Holds the bytes the server sends (as [`freeze`](Self::freeze) does) and forwards
    /// the client's normally, until [`pass`](Self::pass).
    pub fn hold_replies(&self) {
        self.state.send_modify(|s| s.forward = Forward::HoldReplies);
    }

    /// Resets every current connection (both sides); later ones are accepted as usual.
    pub fn cut(&self) {
        self.state.send_modify(|s| s.cut_gen += 1);
    }

    /// Accepts and resets new connections at once; existing ones are unaffected.
    pub fn refuse(&self) {
        self.state.send_modify(|s| s.refuse = true);
    }

    /// Forwards at most `bytes_per_second` (0 counts as 1) per direction per connection.
    pub fn throttle(&self, bytes_per_second: u64) {
        let rate = bytes_per_second.max(1);
        self.state
            .send_modify(|s| s.forward = Forward::Throttle(rate));
    }

    /// Number of currently open proxied connections (upstream leg connected).
    pub fn connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Polls until exactly `n` proxied connections are open (so that [`cut`](Self::cut)
    /// reaches them, or a closed one is known to be gone); panics after 5 s.
    pub async fn wait_connections(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.connections() != n {
            assert!(
                Instant::now() < deadline,
                "expected {n} proxied connections, have {}",
                self.connections()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The full WebSocket URL of the server through the proxy.
    pub fn ws_url(&self) -> String {
        format!("{}{}", self.url(), switchboard_server::WS_PATH)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Aborting the accept task drops its listener and its `JoinSet`, which aborts
        // every connection task; dropping `state` also wakes every pump to exit.
        self.task.abort();
    }
}

/// Accepts connections until the proxy is dropped, owning every connection task.
async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mut rx: watch::Receiver<State>,
    open: Arc<AtomicUsize>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else {
                    tokio::task::yield_now().await;
                    continue;
                };
                let state = *rx.borrow();
                if state.refuse {
                    let _ = client.set_zero_linger();
                    continue;
                }
                let conn = connection(client, upstream, rx.clone(), state.cut_gen, open.clone());
                conns.spawn(conn);
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            changed = rx.changed() => if changed.is_err() { return },
        }
    }
}

/// Decrements the open-connection count when a connection ends.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Proxies one client connection until both directions end, or resets it.
async fn connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut rx: watch::Receiver<State>,
    cut_gen: u64,
    open: Arc<AtomicUsize>,
) {
    let connect = tokio::select! {
        connected = TcpStream::connect(upstream) => connected,
        _ = rx.wait_for(|s| s.cut_gen != cut_gen) => {
            let _ = client.set_zero_linger();
            return;
        }
    };
    let Ok(mut server) = connect else {
        let _ = client.set_zero_linger();
        return;
    };
    open.fetch_add(1, Ordering::SeqCst);
    let _guard = OpenGuard(open);
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let outcome = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pump(client_read, server_write, rx.clone(), cut_gen, false);
        let down = pump(server_read, client_write, rx, cut_gen, true);
        tokio::try_join!(up, down)
    };
    if outcome.is_err() {
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
}

/// Forwards one direction (`toward_client` or toward the server) as the shared state
/// says; `Ok` on a clean end-of-stream.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    mut rx: watch::Receiver<State>,
    cut_gen: u64,
    toward_client: bool,
) -> Result<(), Abort>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut held = BytesMut::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut eof = false;
    // Earliest moment a throttled write may happen.
    let mut next_write = Instant::now();
    loop {
        let mut state = *rx.borrow_and_update();
        if state.forward == Forward::HoldReplies {
            state.forward = if toward_client {
                Forward::Freeze
            } else {
                Forward::Pass
            };
        }
        if state.cut_gen != cut_gen || held.len() > HOLD_LIMIT {
            return Err(Abort);
        }
        let (can_read, can_write, quantum) = match state.forward {
            // (HoldReplies was resolved to Freeze or Pass above.)
            Forward::Freeze | Forward::HoldReplies => (true, false, 0),
            Forward::Pass => (held.len() < FORWARD_BUFFER, true, held.len()),
            Forward::Throttle(rate) => {
                // Writes of about 50 ms worth of bytes, so pacing stays smooth.
                let quantum = (rate / 20).clamp(1, READ_CHUNK as u64) as usize;
                (held.len() < FORWARD_BUFFER, true, quantum.min(held.len()))
            }
        };
        // The end-of-stream is held like data while frozen.
        if eof && held.is_empty() && state.forward != Forward::Freeze {
            return to.shutdown().await.map_err(|_| Abort);
        }
        let paced = matches!(state.forward, Forward::Throttle(_)) && Instant::now() < next_write;
        let write_now = can_write && quantum > 0 && !paced;
        tokio::select! {
            changed = rx.changed() => changed.map_err(|_| Abort)?,
            read = from.read(&mut chunk), if can_read && !eof => match read {
                Ok(0) => eof = true,
                Ok(n) => held.extend_from_slice(&chunk[..n]),
                Err(_) => return Err(Abort),
            },
            written = to.write(&held[..quantum]), if write_now => match written {
                Ok(0) | Err(_) => return Err(Abort),
                Ok(n) => {
                    held.advance(n);
                    if let Forward::Throttle(rate) = state.forward {
                        let pause = Duration::from_secs_f64(n as f64 / rate as f64);
                        next_write = next_write.max(Instant::now()) + pause;
                    }
                }
            },
            _ = tokio::time::sleep_until(next_write), if can_write && quantum > 0 && paced => {}
        }
    }
}
