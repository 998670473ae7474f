//! The gateway: accepts a TCP connection, wraps it in TLS when configured, upgrades it
//! to a WebSocket on [`WS_PATH`] (refusing browsers from origins no app allows with
//! 403; the login checks the app's own list) within the handshake deadline (at most
//! `max_handshakes` at once), applies the connection limits (in all and per IP
//! address; per app at login), and hands it to `connection::serve`. Each connection
//! runs in a `conn` log span with its number and peer address.

use crate::connection;
use crate::node::Node;
use crate::node::admission;
use crate::tls::Tls;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use switchboard_protocol::{DisconnectCode, WS_PATH};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::Instrument;

/// Initial WebSocket read buffer per connection.
const READ_BUFFER_BYTES: usize = 1024;

/// What the gateway does at the accept step besides the node's limits: TLS.
#[derive(Clone, Default)]
pub(crate) struct Gate {
    /// Wraps every accepted socket in TLS (`wss://`) when set.
    pub tls: Option<Tls>,
}

/// Numbers the connections of this process for the log (`conn{id=…}`).
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Accepts one TCP connection: TLS first when configured, then the WebSocket upgrade,
/// both within the handshake deadline, then serves it; all of it in the connection's
/// log span (debug level: at info its registry entry would cost ~600 B per connection).
pub(crate) fn accept(
    node: Arc<Node>,
    stream: TcpStream,
    peer: SocketAddr,
    gate: Arc<Gate>,
) -> impl Future<Output = ()> + Send {
    let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    accept_in_span(node, stream, peer, gate).instrument(tracing::debug_span!("conn", id, %peer))
}

async fn accept_in_span(node: Arc<Node>, stream: TcpStream, peer: SocketAddr, gate: Arc<Gate>) {
    // A peer that opens sockets and never finishes the handshake holds a permit for at
    // most the handshake timeout; past the limit a socket is closed unread.
    let Ok(permit) = node.handshakes.clone().try_acquire_owned() else {
        tracing::debug!(%peer, "too many handshakes in progress; connection closed");
        return;
    };
    let _ = stream.set_nodelay(true);
    let deadline = tokio::time::Instant::now() + node.config.handshake_timeout;
    // A plain upgrade runs inline (its handshake is boxed inside it); the TLS
    // handshake and a TLS upgrade are boxed: inline, the TLS state (a few hundred
    // bytes to kilobytes, and a timer) would size the task of every connection, plain
    // or not, for its whole life — ~1.3 KB of each idle one (docs/benchmarks.md).
    match &gate.tls {
        None => upgrade(node, stream, peer, permit, deadline).await,
        Some(tls) => {
            let handshake = Box::pin(tokio::time::timeout_at(
                deadline,
                tls.acceptor().accept(stream),
            ));
            let tls_stream = match handshake.await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            Box::pin(upgrade(node, tls_stream, peer, permit, deadline)).await
        }
    }
}

/// Upgrades a (plain or TLS) stream to a WebSocket by `deadline`, applies the
/// connection limits and serves it.
async fn upgrade<S>(
    node: Arc<Node>,
    stream: S,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    deadline: tokio::time::Instant,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cfg = &node.config;
    // tungstenite's default read buffer is 128 KiB per connection, allocated up front:
    // most of an idle connection's memory. Frames here are small; a larger one grows
    // the buffer for as long as it needs.
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(cfg.max_frame_bytes))
        .max_frame_size(Some(cfg.max_frame_bytes));
    // The handshake's `Origin`, for the login's check of the app's own list.
    let seen_origin = std::sync::Mutex::new(None::<String>);
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() != WS_PATH {
            let mut err = ErrorResponse::new(Some(format!("not found; connect to {WS_PATH}\n")));
            *err.status_mut() = StatusCode::NOT_FOUND;
            return Err(err);
        }
        let origin = req
            .headers()
            .get("origin")
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        *seen_origin.lock().unwrap_or_else(|e| e.into_inner()) = origin.map(str::to_string);
        if !admission::handshake_allowed(cfg, origin) {
            tracing::debug!(%peer, origin = ?origin, "handshake refused: origin not allowed");
            let mut err = ErrorResponse::new(Some(format!(
                "origin {} is not allowed on this server\n",
                origin.unwrap_or_default()
            )));
            *err.status_mut() = StatusCode::FORBIDDEN;
            return Err(err);
        }
        Ok(resp)
    };
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(ws_config));
    // Boxed so that the handshake's state is freed once it is done instead of sizing
    // the connection's task for its whole life.
    let ws = match Box::pin(tokio::time::timeout_at(deadline, handshake)).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "handshake timed out");
            return;
        }
    };
    drop(permit);
    let open = node.connections.fetch_add(1, Ordering::Relaxed) + 1;
    if open > cfg.max_connections {
        node.connections.fetch_sub(1, Ordering::Relaxed);
        let reason = format!(
            "server is at its limit of {} connections",
            cfg.max_connections
        );
        reject_overloaded(ws, reason).await;
        return;
    }
    let Some(_ip) = IpSlot::take(&node, peer) else {
        node.connections.fetch_sub(1, Ordering::Relaxed);
        let reason = format!(
            "{} connections from your address, the limit per address",
            cfg.max_connections_per_ip
        );
        reject_overloaded(ws, reason).await;
        return;
    };
    tracing::debug!(%peer, "connection opened");
    node.metrics
        .connections_opened
        .fetch_add(1, Ordering::Relaxed);
    connection::serve(
        node.clone(),
        ws,
        peer,
        seen_origin.into_inner().unwrap_or_else(|e| e.into_inner()),
    )
    .await;
    node.connections.fetch_sub(1, Ordering::Relaxed);
}

/// One connection's place in its address's count (with a per-IP limit); freed when
/// dropped.
struct IpSlot<'a> {
    node: &'a Node,
    ip: Option<std::net::IpAddr>,
}

impl<'a> IpSlot<'a> {
    /// A place for a connection from `peer`, or `None` when its address is at the
    /// limit.
    fn take(node: &'a Node, peer: SocketAddr) -> Option<IpSlot<'a>> {
        let max = node.config.max_connections_per_ip;
        if max == 0 {
            return Some(IpSlot { node, ip: None });
        }
        let mut map = node.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(peer.ip()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            node,
            ip: Some(peer.ip()),
        })
    }
}

impl Drop for IpSlot<'_> {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        let mut map = self.node.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }
}

/// Tells a connection over a connection limit why it is closed.
/// (A plain fn: the stream is unwrapped before the future exists, see `connection`.)
fn reject_overloaded<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    reason: String,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    connection::reject(ws, DisconnectCode::Overloaded, reason)
}
