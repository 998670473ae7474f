//! The replay of what a member missed: a channel's recovery log read after a position,
//! page by page, into the connection's queue without overflowing it (R58).

use super::client::Client;
use crate::node::hub::{Filter, push_bytes};
use switchboard_engine::{ChannelKey, Recovery, StreamPosition};
use switchboard_protocol::DisconnectCode;

/// Publications read from the recovery log per step of a replay.
pub(crate) const RECOVERY_PAGE: usize = 1_000;

/// Sends `first` (a recovery read of `key`) and whatever the log holds after it, page by
/// page, waiting for room in the connection's queue rather than overflowing it. Returns
/// the last position sent. If a later page comes back incomplete (the log was trimmed
/// under a very slow replay), the connection is closed so that the client resumes again
/// and is told about the gap.
pub(crate) async fn replay(
    client: &Client,
    key: &ChannelKey,
    first: &Recovery,
    filter: &Filter,
) -> Option<StreamPosition> {
    let patience = client.node.config.write_timeout;
    let mut last = None;
    let mut page = first.publications.clone();
    loop {
        for p in &page {
            if filter.accepts(p) {
                if let Some(bytes) = push_bytes(key, p) {
                    if !client.out.push_wait(bytes, patience).await {
                        return last;
                    }
                }
            }
            // What the filter skips counts as passed: it is not held back either.
            last = Some(p.position);
        }
        if page.len() < RECOVERY_PAGE {
            return last;
        }
        let from = last?;
        match client.node.broker.recover(key, from, RECOVERY_PAGE).await {
            Ok(r) if r.complete => page = r.publications,
            _ => {
                client.out.close(
                    DisconnectCode::SlowConsumer,
                    "the replay fell behind the recovery log",
                );
                return last;
            }
        }
    }
}
