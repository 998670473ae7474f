//! Switchboard server as a library: `Server::new(config, broker).run(listener,
//! shutdown)`. The gateway accepts WebSocket connections on [`WS_PATH`]; each
//! connection runs a session that dispatches requests to the feature modules, which
//! reach shared state only through the engine contract.

mod client;
mod config;
mod connection;
mod history;
mod hub;
mod lock;
mod login;
mod messaging;
mod node;
mod outbound;
mod outlet;
mod presence;
mod session;
mod storage;
mod stream;

pub use config::{AppConfig, AppLimits, ServerConfig};
pub use switchboard_protocol::WS_PATH;

use node::Node;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use switchboard_engine::{Broker, HistoryStore, Locks, MetadataStore, Presence, Topics};
use switchboard_protocol::DisconnectCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A configured server, ready to run on a listener.
pub struct Server {
    config: ServerConfig,
    broker: Arc<dyn Broker>,
    engines: node::Engines,
}

impl Server {
    /// Builds a server on `broker` (the binary chooses the engine).
    pub fn new(config: ServerConfig, broker: Arc<dyn Broker>) -> Self {
        Server {
            config,
            broker,
            engines: node::Engines::default(),
        }
    }

    /// Enables presence (whoNow, whereNow, temporary state, presence events) on
    /// `presence`.
    pub fn with_presence(mut self, presence: Arc<dyn Presence>) -> Self {
        self.engines.presence = Some(presence);
        self
    }

    /// Enables stream channels and topics with topic roles kept in `topics`.
    pub fn with_topics(mut self, topics: Arc<dyn Topics>) -> Self {
        self.engines.topics = Some(topics);
        self
    }

    /// Enables storage (channel and user metadata) and locks on `store`, one engine for
    /// both so that a lock-gated write checks its lock in the same step.
    pub fn with_storage<S: MetadataStore + Locks>(mut self, store: Arc<S>) -> Self {
        self.engines.metadata = Some(store.clone());
        self.engines.locks = Some(store);
        self
    }

    /// Enables message history (`storeInHistory`, `getMessages`) on `store`.
    pub fn with_history(mut self, store: Arc<dyn HistoryStore>) -> Self {
        self.engines.history = Some(store);
        self
    }

    /// Accepts connections until `shutdown` completes, then closes every session with
    /// `SHUTDOWN` and waits up to `shutdown_grace` for the connections to finish.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let node = Node::new(self.config, self.broker, self.engines);
        let mut tasks = JoinSet::new();
        tokio::spawn(presence::sweep(node.clone()));
        tokio::spawn(lock::sweep(node.clone()));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        tasks.spawn(accept(node.clone(), stream, peer));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: log, pause, go on.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        drop(listener);
        // Every connection, logged in or not, closes with SHUTDOWN.
        node.shutdown.send_replace(true);
        let grace = node.config.shutdown_grace;
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("connections still open after the shutdown grace period; aborting them");
            tasks.abort_all();
        }
        Ok(())
    }
}

/// Initial WebSocket read buffer per connection.
const READ_BUFFER_BYTES: usize = 1024;

/// Upgrades one TCP connection and serves it.
async fn accept(node: Arc<Node>, stream: TcpStream, peer: SocketAddr) {
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
    let (out, rx) = outbound::Outbound::new(4, 4096);
    out.close(
        DisconnectCode::Overloaded,
        format!("server is at its limit of {max} connections"),
    );
    outbound::run_writer(sink, out, rx, 4096, std::time::Duration::from_secs(2)).await;
}
