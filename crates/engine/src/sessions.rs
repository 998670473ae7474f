//! The cross-node session registry: which node holds each user's one session (R28), so
//! that a login on one node ends the user's session on another. Engines of one node
//! need none (the server's own registry decides); an engine shared by nodes implements
//! [`Sessions`]. A client whose resume lands on another node takes its session from the
//! node holding it ([`Sessions::take_session`], answered there by
//! [`KickHandler::give_up`]).

use crate::{ChannelKey, EngineError};
use std::sync::Arc;
use std::time::Duration;

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
/// holds (`on_kick`), or when another node asks for one of this node's sessions because
/// its client resumed there (`give_up`).
#[async_trait::async_trait]
pub trait KickHandler: Send + Sync + 'static {
    /// End `session_id` of `user` of `app` if this node still holds it. Must not block:
    /// it starts ending the session and returns.
    fn on_kick(&self, app: &str, user: &str, session_id: &str);

    /// Another node's client resumes `session_id` of `user` of `app`: if this node holds
    /// it, let go of it without ending it (nobody is told it left) and return its state,
    /// as text the engine carries unread to the asking node; `None` when this node does
    /// not hold it (default: never).
    async fn give_up(&self, _app: &str, _user: &str, _session_id: &str) -> Option<String> {
        None
    }
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
/// - `claim_of` reads the claim without changing it.
/// - `take_session` asks `from.node` (another node) for `from.session_id`: that node's
///   [`KickHandler::give_up`] answers, and its state comes back; `None` when that node
///   does not hold the session any more, is not there (dead: nobody listens to it) or
///   does not answer within `deadline`. The claim is not changed (the caller claims the
///   user with `claim_session`, `resuming` the same id).
/// - `held_elsewhere` says, for each of `channels`, whether the user's membership there
///   was entered last by another node (its session there holds it now).
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

    /// The claim of `user` of `app`, unchanged (default: none).
    async fn claim_of(&self, _app: &str, _user: &str) -> Result<Option<Claim>, EngineError> {
        Ok(None)
    }

    /// Takes `from.session_id` from the node holding it: its state, or `None` (see the
    /// trait contract; default: `None`).
    async fn take_session(
        &self,
        _app: &str,
        _user: &str,
        _from: &Claim,
        _deadline: Duration,
    ) -> Result<Option<String>, EngineError> {
        Ok(None)
    }

    /// Per channel, whether `user`'s membership there belongs to another node (default:
    /// none does).
    async fn held_elsewhere(
        &self,
        _user: &str,
        channels: &[ChannelKey],
    ) -> Result<Vec<bool>, EngineError> {
        Ok(vec![false; channels.len()])
    }

    /// The nodes sharing the engine that have not been taken for dead, by id (default:
    /// none known).
    async fn nodes(&self) -> Result<Vec<NodeSeen>, EngineError> {
        Ok(Vec::new())
    }
}
