//! The gateway: accepts a TCP connection, upgrades it to a WebSocket on [`WS_PATH`]
//! within the handshake deadline (at most `max_handshakes` at once), applies the
//! connection limits (in all and per IP address), and hands it to `connection::serve`.

use crate::connection;
use crate::node::Node;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use switchboard_protocol::{DisconnectCode, WS_PATH};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Initial WebSocket read buffer per connection.
const READ_BUFFER_BYTES: usize = 1024;

/// Upgrades one TCP connection and serves it.
pub(crate) async fn accept(node: Arc<Node>, stream: TcpStream, peer: SocketAddr) {
    // A peer that opens sockets and never finishes the handshake holds a permit for at
    // most the handshake timeout; past the limit a socket is closed unread.
    let Ok(permit) = node.handshakes.clone().try_acquire_owned() else {
        tracing::debug!(%peer, "too many handshakes in progress; connection closed");
        return;
    };
    let _ = stream.set_nodelay(true);
    let cfg = &node.config;
    // tungstenite's default read buffer is 128 KiB per connection, allocated up front:
    // most of an idle connection's memory. Frames here are small; a larger one grows
    // the buffer for as long as it needs.
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(cfg.max_frame_bytes))
        .max_frame_size(Some(cfg.max_frame_bytes));
    #[allow(clippy::result_large_err)]
    let check_path = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() == WS_PATH {
            Ok(resp)
        } else {
            let mut err = ErrorResponse::new(Some(format!("not found; connect to {WS_PATH}\n")));
            *err.status_mut() = StatusCode::NOT_FOUND;
            Err(err)
        }
    };
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, check_path, Some(ws_config));
    // Boxed so that the handshake's state is freed once it is done instead of sizing
    // the connection's task for its whole life.
    let ws = match Box::pin(tokio::time::timeout(cfg.handshake_timeout, handshake)).await {
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
    connection::serve(node.clone(), ws, peer).await;
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
fn reject_overloaded(
    ws: tokio_tungstenite::WebSocketStream<TcpStream>,
    reason: String,
) -> impl Future<Output = ()> + Send {
    connection::reject(ws, DisconnectCode::Overloaded, reason)
}
