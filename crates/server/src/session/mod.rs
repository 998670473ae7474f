//! The session layer: what a logged-in user holds on this node — subscriptions, the
//! login credential's expiry, its outlet — independent of any one connection; the
//! connection's view of it ([`client::Client`]); the registry of sessions; the
//! lifecycle (a connection lost, a session resumed or ended, a token expired) and the
//! [`hooks`] through which it reaches the features; the replay of missed messages; a
//! session's [`handover`] between nodes.
//!
//! A session outlives a lost connection for `presenceTimeout` (api.md R52): a resume
//! within it re-attaches a new connection and others see nothing; after it the session
//! ends (R53). Logout, a kick and token expiry end it at once. Above the node layer,
//! below the features.

pub(crate) mod client;
pub(crate) mod core;
pub(crate) mod handover;
pub(crate) mod hooks;
pub(crate) mod lifecycle;
pub(crate) mod registry;
pub(crate) mod replay;
pub(crate) mod tokens;

pub(crate) use core::{PublishGrant, Session, StreamMembership, TopicRole};

use crate::node::{Extensions, Node};
use std::sync::Arc;

/// Installs the session layer's per-node state: the registry and the features' hooks.
pub(crate) fn install(ext: &mut Extensions, hooks: Vec<Arc<dyn hooks::Hooks>>) {
    ext.insert(registry::Registry::new());
    ext.insert(hooks::HookList(hooks));
}

/// Lets the cross-node session registry (if any) end this node's sessions that a newer
/// login on another node replaced (R28), and hand them over to the node their client
/// resumes on.
pub(crate) fn install_kicks(node: &Arc<Node>) {
    if let Some(sessions) = &node.sessions {
        sessions.set_kick_handler(Arc::new(handover::RemoteSessions(Arc::downgrade(node))));
    }
}
