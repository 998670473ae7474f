//! The features, one module per concern, each answering its own requests and
//! depending only on the layers below (session, node, wire) — never on one another.
//! This file is the one place where they plug into the server: [`hooks`] lists their
//! parts in the session lifecycle, [`install`] their per-node state, [`spawn`] their
//! background tasks. A new feature with per-session state adds its module and a line
//! to each list that concerns it.

pub(crate) mod history;
pub(crate) mod lock;
pub(crate) mod login;
pub(crate) mod messaging;
pub(crate) mod permissions;
pub(crate) mod presence;
pub(crate) mod storage;
pub(crate) mod stream;
pub(crate) mod webhooks;

use crate::node::{Extensions, Node};
use crate::session::hooks::Hooks;
use std::sync::Arc;

/// The features' lifecycle hooks, in the order they run (and so the order of the
/// SNAPSHOT pushes: presence, storage, locks).
pub(crate) fn hooks() -> Vec<Arc<dyn Hooks>> {
    vec![
        Arc::new(presence::PresenceHooks),
        Arc::new(storage::StorageHooks),
        Arc::new(lock::LockHooks),
        Arc::new(stream::StreamHooks),
        Arc::new(webhooks::WebhookHooks),
    ]
}

/// Installs the features' per-node state.
pub(crate) fn install(ext: &mut Extensions) {
    ext.insert(presence::Modes::default());
    ext.insert(lock::Waits::default());
    ext.insert(login::LoginRates::default());
    ext.insert(login::Bans::default());
    ext.insert(webhooks::Webhooks::default());
}

/// Starts the features' background tasks (they end when the node shuts down).
pub(crate) fn spawn(node: &Arc<Node>) {
    tokio::spawn(presence::sweep(node.clone()));
    tokio::spawn(lock::sweep(node.clone()));
}
