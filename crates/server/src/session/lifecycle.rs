//! The session lifecycle: a channel left, a connection lost (the session waits
//! `presenceTimeout` for a resume, R52, while its credentials keep lapsing, T55), a
//! session ended (R53). Each step reaches the features through [`super::hooks`].
//! A session superseded by the user's session on another node ends without touching
//! what that session holds now (its channels there, topic roles, locks).

use super::client::Client;
use super::core::{Session, SessionState};
use super::hooks::{self, Departure, Ended};
use super::registry::Registry;
use crate::node::Node;
use crate::node::outbound::Outbound;
use std::sync::Arc;
use std::time::Duration;
use switchboard_engine::ChannelKey;
use switchboard_protocol::DisconnectCode;

/// The session leaves `key`: local delivery stops, then every feature hears of it
/// (presence tells the others how it went, R94, R118).
pub(crate) async fn leave_channel(
    node: &Arc<Node>,
    session: &Session,
    key: &ChannelKey,
    how: Departure,
) {
    node.hub.unsubscribe(&*node.broker, key, session.id).await;
    hooks::left(node, session, key, how).await;
}

/// The connection of `attachment` was lost: keep the session for
/// `presenceTimeout`, then end it unless a resume re-attached it meanwhile.
pub(crate) fn detach(
    session: &Arc<Session>,
    node: &Arc<Node>,
    queue: &Arc<Outbound>,
    attachment: u64,
) {
    {
        let mut st = session.lock();
        if st.ended || st.attachment != attachment {
            return;
        }
        st.attached = false;
    }
    session.outlet.detach(queue);
    let (session, node) = (session.clone(), node.clone());
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + session.presence_timeout;
        let still_away = {
            let st = session.lock();
            // Ended meanwhile (or handed over to another node): nothing was lost here.
            !st.ended && !st.attached && st.attachment == attachment
        };
        if still_away {
            hooks::connection_lost(&node, &session).await;
            // A resume may have undone the loss before it was recorded: undo it
            // again (the resume attached before its own undo, so this sees it).
            let (back, moved) = {
                let st = session.lock();
                (st.attached || st.attachment != attachment, st.handed_over)
            };
            if back {
                hooks::attached(&node, &session, true).await;
            } else if moved {
                // Handed over meanwhile: the node that took it has marked the user's
                // locks back already, maybe before this loss was recorded.
                if let Some(locks) = &node.locks {
                    let _ = locks.owner_back(&session.app_id, &session.user).await;
                }
            }
        }
        let detached = |st: &SessionState| !st.attached && st.attachment == attachment;
        // Credentials keep lapsing while nobody is attached (T55): a stream channel
        // whose token expires is left (others see it go; a resume then lists it as
        // unrestored), an expired login token ends the session.
        loop {
            let (next_token, login_expired, streams) = {
                let st = session.lock();
                if st.ended || !detached(&st) {
                    return;
                }
                let now = node.config.clock.now_secs();
                let expired: Vec<Arc<str>> = st
                    .streams
                    .iter()
                    .filter(|(_, m)| m.token_expires_at.is_some_and(|e| now >= e))
                    .map(|(n, _)| n.clone())
                    .collect();
                let next = st
                    .streams
                    .values()
                    .filter_map(|m| m.token_expires_at)
                    .chain(st.token_expires_at)
                    .filter(|e| *e > now)
                    .min();
                let login = st.token_expires_at.is_some_and(|e| now >= e);
                (next, login, expired)
            };
            if login_expired {
                end_if(&node, &session, None, Departure::Leave, detached).await;
                return;
            }
            for name in streams {
                let removed = session.lock().streams.remove(&name).is_some();
                if removed {
                    let key = session.stream_key(&name);
                    leave_channel(&node, &session, &key, Departure::Leave).await;
                }
            }
            // Expiries are wall-clock instants: while one is pending, look again at
            // least every second, so a forward jump of the clock past it is noticed
            // (docs/token.md, "Clock jumps"); a backward one only makes a look early.
            let wake = match next_token {
                Some(secs) => {
                    let ms = (secs * 1000).saturating_sub(node.config.clock.now_ms());
                    let ms = ms.min(1000);
                    deadline.min(tokio::time::Instant::now() + Duration::from_millis(ms))
                }
                None => deadline,
            };
            tokio::time::sleep_until(wake).await;
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        // Checked and decided under one lock, so a resume at the boundary either
        // wins (and the session lives) or comes after the end (and starts anew).
        if end_if(&node, &session, None, Departure::Timeout, detached).await {
            tracing::debug!(user = %session.user, "session timed out");
        }
    });
}

/// Ends `session` once: tells its connection `code` (if given), leaves every channel and
/// unregisters the user. Later calls do nothing.
pub(crate) async fn end(
    node: &Arc<Node>,
    session: &Arc<Session>,
    code: Option<(DisconnectCode, String)>,
) {
    end_if(node, session, code, Departure::Leave, |_| true).await;
}

/// [`end`], but only if `still` holds of the session's state at the moment it ends (one
/// critical section); `how` says what others are told (REMOTE_LEAVE or REMOTE_TIMEOUT).
/// Returns whether it ended the session.
pub(crate) async fn end_if(
    node: &Arc<Node>,
    session: &Arc<Session>,
    code: Option<(DisconnectCode, String)>,
    how: Departure,
    still: impl FnOnce(&SessionState) -> bool,
) -> bool {
    let (subscriptions, streams, user_metadata) = {
        let mut st = session.lock();
        if st.ended || !still(&st) {
            return false;
        }
        st.ended = true;
        st.attached = false;
        (
            std::mem::take(&mut st.subscriptions),
            std::mem::take(&mut st.streams),
            std::mem::take(&mut st.user_metadata),
        )
    };
    let closed = code.clone();
    match code {
        Some((code, reason)) => session.outlet.close(code, reason),
        // Any connection still attached resumes into a new session.
        None => session.outlet.close_quietly(),
    }
    if let Some(sessions) = &node.sessions {
        // Only if still its own: a newer login (here or elsewhere) keeps its claim. A
        // newer session of the user on another node leaves the user's locks to it.
        match sessions
            .release_session(&session.app_id, &session.user, &session.public_id)
            .await
        {
            Ok(true) => session.lock().superseded = true,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, user = %session.user, "session claim not released")
            }
        }
    }
    let channels: Vec<ChannelKey> = subscriptions
        .keys()
        .map(|n| session.message_key(n))
        .chain(streams.keys().map(|n| session.stream_key(n)))
        .collect();
    let elsewhere = held_elsewhere(node, session, &channels).await;
    for (key, moved) in channels.iter().zip(elsewhere) {
        if moved {
            // The user's session on another node is in this channel now: its
            // membership, topic roles and lock waits there stay, nobody is told.
            node.hub.unsubscribe(&*node.broker, key, session.id).await;
            if let Some(presence) = &node.presence {
                // Leaves the other node's record alone; forgets this node's own.
                let _ = presence.exit(key, &session.user).await;
            }
            continue;
        }
        leave_channel(node, session, key, how).await;
    }
    node.hub
        .unsubscribe(&*node.broker, &session.user_key(), session.id)
        .await;
    if session.lock().superseded {
        // The user's locks are the newer session's (a lock belongs to the user id), and
        // that session is online: a loss this one's connection marked does not count.
        if let Some(locks) = &node.locks {
            if let Err(e) = locks.owner_back(&session.app_id, &session.user).await {
                tracing::warn!(error = %e, user = %session.user, "lock owner return not recorded");
            }
        }
    }
    let ended = Ended {
        user_metadata: user_metadata.into_iter().collect(),
        closed,
    };
    hooks::ended(node, session, &ended).await;
    Registry::of(node).unregister(&session.app_id, &session.user, session.id);
    true
}

/// Which of `channels` the user's session on another node holds now; none unless the
/// session was superseded by one there.
async fn held_elsewhere(node: &Node, session: &Session, channels: &[ChannelKey]) -> Vec<bool> {
    let none = vec![false; channels.len()];
    let Some(sessions) = &node.sessions else {
        return none;
    };
    if channels.is_empty() || !session.lock().superseded {
        return none;
    }
    match sessions.held_elsewhere(&session.user, channels).await {
        Ok(v) if v.len() == channels.len() => v,
        Ok(_) => none,
        Err(e) => {
            tracing::warn!(error = %e, user = %session.user, "memberships held elsewhere not read");
            none
        }
    }
}

/// Ends this node's session `session_id` of `user` that a newer login on another node
/// replaced (the cross-node session registry's kick), as a second login here would
/// (R28).
pub(crate) fn kicked_remotely(node: &Arc<Node>, app: &str, user: &str, session_id: &str) {
    let Some(session) = Registry::of(node).get(app, user) else {
        return;
    };
    if session.public_id != session_id {
        return;
    }
    {
        let mut st = session.lock();
        if st.ended {
            return;
        }
        st.superseded = true;
    }
    Registry::of(node).mark_replaced(&session, session.presence_timeout);
    let reason = format!("user id {user} logged in again on another node");
    let node = node.clone();
    tokio::spawn(async move {
        end(
            &node,
            &session,
            Some((DisconnectCode::SameUidLogin, reason)),
        )
        .await;
    });
}

/// The connection ended. When the client will reconnect (lost link, heartbeat
/// timeout, slow consumer, shutdown) the session is kept for `presenceTimeout`
/// (R52); after a close the client does not come back from (a protocol error, say)
/// it ends now.
pub(crate) async fn disconnected(client: &mut Client) {
    let Some(a) = client.attached.take() else {
        return;
    };
    let code = client.out.close_reason().and_then(|c| c.code);
    match code {
        Some(code) if !code.reconnect() => end(&client.node, &a.session, None).await,
        _ => detach(&a.session, &client.node, &client.out, a.attachment),
    }
}
