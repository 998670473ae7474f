//! The gateway: accepts a TCP connection, upgrades it to a WebSocket on [`WS_PATH`]
//! within the handshake deadline, applies the connection limit, and hands it to
//! `connection::serve`.

use crate::connection;
use crate::node::Node;
use crate::node::outbound::{Outbound, run_writer};
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
    let ws = match Box::pin(tokio::time::timeout(cfg.login_timeout, handshake)).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "handshake failed");
            return;
        }
        Err(_) => return,
    };
    let open = node.connections.fetch_add(1, Ordering::Relaxed) + 1;
    if open > cfg.max_connections {
        node.connections.fetch_sub(1, Ordering::Relaxed);
        reject_overloaded(ws, cfg.max_connections).await;
        return;
    }
    connection::serve(node.clone(), ws).await;
    node.connections.fetch_sub(1, Ordering::Relaxed);
}

/// Tells a connection over the connection limit why it is closed.
async fn reject_overloaded(ws: tokio_tungstenite::WebSocketStream<TcpStream>, max: usize) {
    use futures_util::StreamExt;
    let (sink, _stream) = ws.split();
    let (out, rx) = Outbound::new(4, 4096);
    out.close(
        DisconnectCode::Overloaded,
        format!("server is at its limit of {max} connections"),
    );
    run_writer(sink, out, rx, 4096, std::time::Duration::from_secs(2)).await;
}
