//! One connection's client: the session it is attached to (after login), its
//! keep-alive deadline, and how replies and pushes reach its outbound queue. Every
//! request handler takes it; the dispatch of requests is `crate::dispatch`.

use super::core::Session;
use crate::node::Node;
use crate::node::admission::AppSlot;
use crate::node::outbound::Outbound;
use crate::wire::Failure;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_protocol::pb::{self, ServerMessage, server_message::Body};
use switchboard_protocol::{DisconnectCode, frame};

/// The connection's view of its session.
pub(crate) struct Attached {
    /// The session.
    pub session: Arc<Session>,
    /// The attachment number (to detach only our own attachment).
    pub attachment: u64,
    /// Silence after which the connection counts as lost.
    pub heartbeat_timeout: Duration,
}

/// One connection.
pub(crate) struct Client {
    /// The node it is on.
    pub node: Arc<Node>,
    /// Its outbound queue.
    pub out: Arc<Outbound>,
    /// Its session, once logged in.
    pub attached: Option<Attached>,
    /// The `Origin` header of its handshake (browsers send one).
    pub origin: Option<String>,
    /// Its place in its app's connection count, once logged in.
    pub app_slot: Option<AppSlot>,
    connected_at: Instant,
    last_rx: Instant,
}

impl Client {
    /// A connection that has not logged in yet.
    pub fn new(node: Arc<Node>, out: Arc<Outbound>) -> Self {
        let now = Instant::now();
        Client {
            node,
            out,
            attached: None,
            origin: None,
            app_slot: None,
            connected_at: now,
            last_rx: now,
        }
    }

    /// The attached session, or the not-logged-in failure.
    pub fn session(&self) -> Result<Arc<Session>, Failure> {
        self.attached
            .as_ref()
            .map(|a| a.session.clone())
            .ok_or_else(Failure::not_logged_in)
    }

    /// Records traffic from the client (any frame counts as keep-alive).
    pub fn touch(&mut self) {
        self.last_rx = Instant::now();
    }

    /// When the connection is lost if nothing arrives: the login timeout before login,
    /// the heartbeat timeout after.
    pub fn read_deadline(&self) -> (Instant, DisconnectCode) {
        match &self.attached {
            None => (
                self.connected_at + self.node.config.login_timeout,
                DisconnectCode::LoginTimeout,
            ),
            Some(a) => (
                self.last_rx + a.heartbeat_timeout,
                DisconnectCode::HeartbeatTimeout,
            ),
        }
    }

    /// Queues a push (id 0) on this connection.
    pub fn push(&self, body: Body) {
        self.send(0, body);
    }

    /// Queues a push, waiting for room in the queue (for large pushes such as a
    /// presence SNAPSHOT; a push larger than the queue's limit waits for it to empty).
    pub async fn push_wait(&self, body: Body) -> bool {
        let bytes = frame::encode(&ServerMessage {
            id: 0,
            body: Some(body),
        });
        self.out
            .push_wait(bytes, self.node.config.write_timeout)
            .await
    }

    /// Queues a message with id `id` on this connection.
    pub fn send(&self, id: u32, body: Body) {
        self.out.push(frame::encode(&ServerMessage {
            id,
            body: Some(body),
        }));
    }

    /// Answers request `id` of operation `op` with its failure.
    pub fn fail(&self, id: u32, op: &str, f: Failure) {
        self.send(
            id,
            Body::Error(pb::Error {
                code: f.code.as_i32(),
                reason: f.reason,
                operation: op.to_string(),
            }),
        );
    }
}
