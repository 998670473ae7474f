//! Switchboard server as a library: `Server::new(config, broker).run(listener,
//! shutdown)`. The gateway accepts WebSocket connections on [`WS_PATH`]; each
//! connection's requests are dispatched to the feature modules, which reach shared
//! state only through the engine contract.
//!
//! The modules stand in layers, each using only those below it (docs/architecture.md):
//!
//! | layer | modules |
//! | --- | --- |
//! | top | `lib` (this), `gateway`, `connection`, `dispatch`, `http` (the HTTP side) |
//! | features | `features::{login, messaging, stream, presence, storage, lock, history}` |
//! | session | `session` (sessions, client, registry, hooks, lifecycle, replay, tokens) |
//! | node | `node` (node, config, hub, outbound, outlet) |
//! | leaf | `wire` |

mod connection;
mod dispatch;
mod features;
mod gateway;
mod http;
mod node;
mod session;
mod tls;
mod wire;

pub use features::webhooks::{
    EVENT_ID_HEADER, EVENTS as WEBHOOK_EVENTS, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookConfig,
    check_app_webhooks, check_webhook,
};
pub use http::REQUEST_ID_HEADER;
pub use node::clock::Clock;
pub use node::config::{AppConfig, AppLimits, AppWebhooks, ServerConfig, TokenOptions};
pub use switchboard_protocol::WS_PATH;
pub use tls::{Tls, TlsError};

use node::spare_fd::SpareFd;
use node::{Extensions, Node};
use std::future::Future;
use std::sync::Arc;
use switchboard_engine::{Broker, HistoryStore, Locks, MetadataStore, Presence, Sessions, Topics};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// A configured server, ready to run on a listener.
pub struct Server {
    config: ServerConfig,
    broker: Arc<dyn Broker>,
    engines: node::Engines,
    http: Option<TcpListener>,
    gate: gateway::Gate,
    webhooks: Option<WebhookConfig>,
}

impl Server {
    /// Builds a server on `broker` (the binary chooses the engine).
    pub fn new(config: ServerConfig, broker: Arc<dyn Broker>) -> Self {
        Server {
            config,
            broker,
            engines: node::Engines::default(),
            http: None,
            gate: gateway::Gate::default(),
            webhooks: None,
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

    /// Shares the one-session-per-user rule (R28) with the other nodes on `sessions`:
    /// a login here ends the user's session on another node.
    pub fn with_sessions(mut self, sessions: Arc<dyn Sessions>) -> Self {
        self.engines.sessions = Some(sessions);
        self
    }

    /// Enables message history (`storeInHistory`, `getMessages`) on `store`.
    pub fn with_history(mut self, store: Arc<dyn HistoryStore>) -> Self {
        self.engines.history = Some(store);
        self
    }

    /// Also serves the HTTP side (health, `/metrics`, `/openapi.json`, the per-app
    /// server API; docs/operations.md) on `listener`, apart from the WebSocket port.
    pub fn with_http(mut self, listener: TcpListener) -> Self {
        self.http = Some(listener);
        self
    }

    /// Serves TLS on both listeners (`wss://`, `https://`) with this certificate.
    pub fn with_tls(mut self, tls: Tls) -> Self {
        self.gate.tls = Some(tls);
        self
    }

    /// Refuses WebSocket handshakes (403) whose `Origin` header is not one of
    /// `origins` (`scheme://host[:port]`, or `*`); empty: any origin. A handshake with
    /// no `Origin` (not a browser) is let through. An app with `allowed_origins` of its
    /// own uses that list instead (its logins from other origins fail with −10012).
    pub fn with_allowed_origins(mut self, origins: Vec<String>) -> Self {
        self.config.allowed_origins = origins;
        self
    }

    /// POSTs signed webhook events (users, channels, members, metadata, locks) to
    /// `config.url`: the receiver of every app without its own `[apps.webhooks]` url,
    /// and the delivery settings of those with one (docs/operations.md).
    pub fn with_webhooks(mut self, config: WebhookConfig) -> Self {
        self.webhooks = Some(config);
        self
    }

    /// Accepts connections until `shutdown` completes, then closes every session with
    /// `SHUTDOWN` and waits up to `shutdown_grace` for the connections to finish.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let mut ext = Extensions::default();
        session::install(&mut ext, features::hooks());
        features::install(&mut ext);
        ext.insert(features::webhooks::Webhooks::start(
            self.webhooks,
            &self.config.apps,
        ));
        let node = Node::new(self.config, self.broker, self.engines, ext);
        session::install_kicks(&node);
        let mut tasks = JoinSet::new();
        features::spawn(&node);
        let gate = Arc::new(self.gate);
        let http = self
            .http
            .map(|l| tokio::spawn(http::serve(node.clone(), l, gate.tls.clone())));
        tokio::pin!(shutdown);
        let mut spare = SpareFd::new();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        tasks.spawn(gateway::accept(node.clone(), stream, peer, gate.clone()));
                    }
                    Err(e) => {
                        // Out of file descriptors: the waiting connections are refused
                        // with the spare one, not left in the backlog. Other errors (or
                        // no spare): log, pause, go on.
                        if SpareFd::is_exhaustion(&e) && spare.refuse_waiting(&listener).await > 0 {
                            continue;
                        }
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
        if let Some(mut http) = http {
            // It stopped accepting when the node began to shut down; open requests
            // get the grace period too.
            if tokio::time::timeout(grace, &mut http).await.is_err() {
                http.abort();
            }
        }
        Ok(())
    }
}
