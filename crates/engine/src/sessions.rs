//! The cross-node session registry: which node holds each user's one session (R28), so
//! that a login on one node ends the user's session on another. Engines of one node
//! need none (the server's own registry decides); an engine shared by nodes implements
//! [`Sessions`].

use crate::EngineError;
use std::sync::Arc;

/// Where a user's session lives: the node and the session's public id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The node holding the session.
    pub node: Arc<str>,
    /// The session's public id (the one its client resumes with).
    pub session_id: Arc<str>,
}

/// A node sharing the engine, as its heartbeat shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSeen {
    /// The node's id.
    pub id: Arc<str>,
    /// Milliseconds since its last heartbeat, by the engine's clock.
    pub heartbeat_age_ms: u64,
    /// Whether it is the node asking.
    pub this: bool,
}

/// Told when a newer login on another node claimed a user whose session this node
/// holds. Must not block: it starts ending the session and returns.
pub trait KickHandler: Send + Sync + 'static {
    /// End `session_id` of `user` of `app` if this node still holds it.
    fn on_kick(&self, app: &str, user: &str, session_id: &str);
}

/// One session per app and user id across nodes.
///
/// Contract:
/// - `claim_session` makes `session_id` on this node the user's session in one atomic step and
///   returns the claim it replaced; when that claim names another node, that node's
///   [`KickHandler`] is told (`on_kick` with the former session id) — unless the former
///   session is `resuming`, the one the client asked to resume (the client moved to
///   this node; that session lost its connection and times out where it is).
/// - `release_session` removes the claim only if it is still `session_id`'s on this node (a
///   session ending after a newer login claimed the user leaves the newer claim), and
///   says whether another node claims the user now.
/// - `set_kick_handler` installs the handler (once, before the first login).
#[async_trait::async_trait]
pub trait Sessions: Send + Sync + 'static {
    /// Installs the handler told of kicks addressed to this node.
    fn set_kick_handler(&self, handler: Arc<dyn KickHandler>);

    /// Claims `user` of `app` for `session_id` on this node; the former claim.
    async fn claim_session(
        &self,
        app: &str,
        user: &str,
        session_id: &str,
        resuming: Option<&str>,
    ) -> Result<Option<Claim>, EngineError>;

    /// Removes the claim if it is still `session_id`'s on this node; true when another
    /// node claims the user now.
    async fn release_session(
        &self,
        app: &str,
        user: &str,
        session_id: &str,
    ) -> Result<bool, EngineError>;

    /// The nodes sharing the engine that have not been taken for dead, by id (default:
    /// none known).
    async fn nodes(&self) -> Result<Vec<NodeSeen>, EngineError> {
        Ok(Vec::new())
    }
}
