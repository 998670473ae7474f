//! Reconnecting (api.md §11): the backoff loop, SUSPENDED after `suspend_after`, a
//! network-change signal dropping the attempt in progress and retrying 2 s later (R51), and
//! restoring what a session lacks after a reconnect — message channel subscriptions,
//! stream channels (rejoined with their topic roles and followed publishers), user
//! metadata subscriptions and the client's presence states (R54) — each from its last
//! position.

use super::SharedChannel;
use super::{
    Detail, Inner, NETWORK_CHANGE_RETRY, call, lock_channel, login_failure_reason, retryable,
};
use crate::conn::Request;
use crate::types::{ChannelType, RtmError, SubscribeOptions, SubscribedFailedReason};
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::Weak;
use std::time::Duration;
use switchboard_protocol::pb::{self, client_message, server_message};
use switchboard_protocol::{ErrorCode, LinkOperation, LinkReason, LinkState};
use tokio::sync::mpsc;

impl Inner {
    /// The stream channels joined now, with their states.
    pub(super) fn joined_streams(&self, only: Option<&[String]>) -> Vec<(String, SharedChannel)> {
        self.lock()
            .streams
            .iter()
            .filter(|(name, _)| only.is_none_or(|names| names.contains(name)))
            .filter(|(_, shared)| lock_channel(shared).link == LinkState::Connected)
            .map(|(name, shared)| (name.clone(), shared.clone()))
            .collect()
    }

    /// The resume part of a login: session id and last positions (of stream channels
    /// only those joined).
    pub(super) fn resume_fields(&self) -> (String, Vec<pb::ChannelPosition>) {
        let session_id = self.lock().session_id.clone().unwrap_or_default();
        let joined: Vec<String> = self
            .joined_streams(None)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let positions = self
            .positions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|((ty, name), _)| *ty != ChannelType::Stream || joined.contains(name))
            .map(|((ty, name), p)| pb::ChannelPosition {
                channel_type: match ty {
                    ChannelType::Message => pb::ChannelType::Message,
                    ChannelType::Stream => pb::ChannelType::Stream,
                    ChannelType::User => pb::ChannelType::User,
                } as i32,
                channel_name: name.clone(),
                topic_name: String::new(),
                position: Some(pb::StreamPosition {
                    epoch: p.epoch,
                    offset: p.offset,
                }),
            })
            .collect();
        (session_id, positions)
    }

    /// A reconnect attempt failed: DISCONNECTED, or SUSPENDED once reconnecting has
    /// lasted `suspend_after` (R49, R50).
    pub(super) fn retry_transition(&self, generation: u64, started: tokio::time::Instant) {
        let mut st = self.lock();
        if st.generation != generation {
            return;
        }
        let (to, op) = if started.elapsed() >= self.config.suspend_after {
            (LinkState::Suspended, LinkOperation::AutoReconnect)
        } else {
            (LinkState::Disconnected, LinkOperation::ServerTimeout)
        };
        self.transition(
            &mut st,
            to,
            op,
            LinkReason::ReconnectTimeout,
            Detail::default(),
        );
    }

    /// Full-jitter backoff for attempt `n` (0-based).
    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let base = self.config.reconnect_base_delay.as_millis() as u64;
        let cap = self.config.reconnect_max_delay.as_millis() as u64;
        let ceiling = base.saturating_mul(1u64 << attempt.min(20)).min(cap).max(1);
        Duration::from_millis(rand::rng().random_range(0..=ceiling))
    }

    /// Restores the subscriptions of a session that could not be resumed, each from its
    /// last position: returns (unrestored, gaps).
    pub(super) async fn resubscribe(
        &self,
        conn: &mpsc::Sender<Request>,
        only: Option<&[String]>,
    ) -> (Vec<String>, Vec<String>) {
        let subs: Vec<(String, SubscribeOptions)> = self
            .lock()
            .subscriptions
            .iter()
            .filter(|(k, _)| only.is_none_or(|names| names.contains(k)))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let (mut unrestored, mut gaps) = (Vec::new(), Vec::new());
        for (name, o) in subs {
            let since = self
                .positions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&(ChannelType::Message, name.clone()))
                .map(|p| pb::StreamPosition {
                    epoch: p.epoch,
                    offset: p.offset,
                });
            let had_position = since.is_some();
            let req = pb::SubscribeRequest {
                channel_name: name.clone(),
                with_message: Some(o.with_message),
                with_presence: Some(o.with_presence),
                be_quiet: Some(o.be_quiet),
                with_metadata: Some(o.with_metadata),
                with_lock: Some(o.with_lock),
                since,
                // R54: entered again with the state it had.
                state: self.state_of(ChannelType::Message, &name),
            };
            let reply = tokio::time::timeout(
                self.config.request_timeout,
                call(conn, "subscribe", client_message::Body::Subscribe(req)),
            )
            .await;
            match reply {
                Ok(Ok(server_message::Body::Subscribe(r))) => {
                    if r.gap || !had_position {
                        gaps.push(name);
                    }
                }
                _ => unrestored.push(name),
            }
        }
        (unrestored, gaps)
    }

    /// Rejoins the joined stream channels (all, or `only`) into a session that lacks
    /// them, each in one request with its token, options, topic roles, followed
    /// publishers and last position: returns (unrestored, gaps). A channel the server
    /// refuses fails (its link FAILED, its state reset); on a lost connection it is
    /// left as is, for the next attempt.
    pub(super) async fn rejoin(
        &self,
        conn: &mpsc::Sender<Request>,
        only: Option<&[String]>,
    ) -> (Vec<String>, Vec<String>) {
        let (mut unrestored, mut gaps) = (Vec::new(), Vec::new());
        for (name, shared) in self.joined_streams(only) {
            let since = self
                .positions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&(ChannelType::Stream, name.clone()))
                .copied();
            let (mut req, epoch) = {
                let ch = lock_channel(&shared);
                (ch.rejoin_request(&name, since), ch.epoch)
            };
            // R54: entered again with the state it had.
            req.state = self.state_of(ChannelType::Stream, &name);
            let reply = tokio::time::timeout(
                self.config.request_timeout,
                call(conn, "join", client_message::Body::Join(req)),
            )
            .await;
            let mut ch = lock_channel(&shared);
            if ch.epoch != epoch || ch.link != LinkState::Connected {
                // Left, or logged out, meanwhile.
                continue;
            }
            let refusal = match reply {
                Ok(Ok(server_message::Body::Join(r))) => {
                    for f in &r.restore_failures {
                        tracing::warn!(
                            channel = %name, topic = %f.topic_name, user = %f.user,
                            code = f.error_code, reason = %f.reason,
                            "rejoin could not restore a topic role or subscription"
                        );
                        if !f.user.is_empty()
                            && f.error_code != SubscribedFailedReason::ALREADY_SUBSCRIBED_USER
                        {
                            if let Some(set) = ch.followed.get_mut(&f.topic_name) {
                                set.remove(&f.user);
                                if set.is_empty() {
                                    ch.followed.remove(&f.topic_name);
                                }
                            }
                        }
                    }
                    if r.gap || since.is_none() {
                        gaps.push(name);
                    }
                    continue;
                }
                Ok(Err(e)) if e.code == ErrorCode::NotConnected.as_i32() => {
                    unrestored.push(name);
                    continue;
                }
                Ok(Err(e)) => e,
                Ok(Ok(_)) => RtmError::new(ErrorCode::Internal, "join", "unexpected reply"),
                Err(_) => RtmError::new(
                    ErrorCode::ChannelJoinFailed,
                    "join",
                    "no reply to the rejoin within the request timeout",
                ),
            };
            tracing::warn!(channel = %name, code = refusal.code, reason = %refusal.reason, "rejoin refused");
            if refusal.code == ErrorCode::TokenExpired.as_i32() {
                self.router.will_expire(Some(name.clone()));
            }
            self.reset_channel(
                &name,
                &mut ch,
                LinkState::Failed,
                LinkOperation::Join,
                super::join_failure_reason(refusal.code),
                Some(refusal.reason),
            );
            unrestored.push(name);
        }
        (unrestored, gaps)
    }

    /// Subscribes again, in a new session, to the metadata of every user the old one
    /// was subscribed to (each then starts with a SNAPSHOT). A user the server refuses
    /// is forgotten (with a warning); on a lost connection the rest stay for the next
    /// attempt.
    pub(super) async fn resubscribe_user_metadata(&self, conn: &mpsc::Sender<Request>) {
        let users: Vec<String> = self.lock().user_metadata.iter().cloned().collect();
        for user in users {
            let req = pb::SubscribeUserMetadataRequest {
                user_id: user.clone(),
            };
            let reply = tokio::time::timeout(
                self.config.request_timeout,
                call(
                    conn,
                    "subscribeUserMetadata",
                    client_message::Body::SubscribeUserMetadata(req),
                ),
            )
            .await;
            match reply {
                Ok(Ok(server_message::Body::SubscribeUserMetadata(_))) => {}
                Ok(Err(e)) if e.code == ErrorCode::NotConnected.as_i32() => return,
                Err(_) => {
                    tracing::warn!(user = %user, "no reply to re-subscribing user metadata");
                }
                Ok(Err(e)) => {
                    tracing::warn!(
                        user = %user, code = e.code, reason = %e.reason,
                        "re-subscribing user metadata refused"
                    );
                    self.lock().user_metadata.remove(&user);
                }
                Ok(Ok(_)) => {
                    tracing::warn!(user = %user, "unexpected reply to re-subscribing user metadata");
                }
            }
        }
    }

    /// Sets again, in a new session, the presence state of every channel the client
    /// is not in (a `setState` made before subscribing or joining, which the server
    /// applies on entering, R129): the channels it is in got theirs with the
    /// re-subscribe or rejoin (R54). A refusal is logged; on a lost connection the rest
    /// are left for the next attempt.
    pub(super) async fn restore_pending_states(&self, conn: &mpsc::Sender<Request>) {
        let entered: Vec<(ChannelType, String)> = {
            let st = self.lock();
            let mut v: Vec<_> = st
                .subscriptions
                .keys()
                .map(|k| (ChannelType::Message, k.clone()))
                .collect();
            drop(st);
            v.extend(
                self.joined_streams(None)
                    .into_iter()
                    .map(|(n, _)| (ChannelType::Stream, n)),
            );
            v
        };
        let pending: Vec<((ChannelType, String), BTreeMap<String, String>)> = self
            .states()
            .iter()
            .filter(|(k, m)| !entered.contains(k) && !m.is_empty())
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
        for ((ty, name), states) in pending {
            let req = pb::SetStateRequest {
                channel_type: match ty {
                    ChannelType::Stream => pb::ChannelType::Stream,
                    _ => pb::ChannelType::Message,
                } as i32,
                channel_name: name.clone(),
                states: states.into_iter().collect(),
            };
            let reply = tokio::time::timeout(
                self.config.request_timeout,
                call(conn, "setState", client_message::Body::SetState(req)),
            )
            .await;
            match reply {
                Ok(Ok(_)) => {}
                Ok(Err(e)) if e.code == ErrorCode::NotConnected.as_i32() => return,
                Ok(Err(e)) => {
                    tracing::warn!(channel = %name, code = e.code, reason = %e.reason, "restoring a presence state refused");
                }
                Err(_) => tracing::warn!(channel = %name, "no reply to restoring a presence state"),
            }
        }
    }

    /// Restores what a reconnect's session lacks — every channel (`None`, a new
    /// session) or the listed ones — message channels and stream channels alike:
    /// returns (unrestored, gaps), each name once.
    pub(super) async fn restore(
        &self,
        conn: &mpsc::Sender<Request>,
        only: Option<&[String]>,
    ) -> (Vec<String>, Vec<String>) {
        let (mut unrestored, mut gaps) = self.resubscribe(conn, only).await;
        let (u, g) = self.rejoin(conn, only).await;
        unrestored.extend(u);
        gaps.extend(g);
        for list in [&mut unrestored, &mut gaps] {
            list.sort();
            list.dedup();
        }
        (unrestored, gaps)
    }
}

/// Reconnects until it succeeds, the link fails, or a logout (or new login) cancels it.
pub(super) async fn reconnect(weak: Weak<Inner>, generation: u64) {
    let started = tokio::time::Instant::now();
    let mut attempt = 0u32;
    // Set by a network change: the next attempt starts this long after it instead of
    // after the backoff (R51).
    let mut retry_in: Option<Duration> = None;
    let Some(mut network) = weak.upgrade().map(|i| i.network_changed.subscribe()) else {
        return;
    };
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let delay = retry_in.take().unwrap_or_else(|| inner.backoff(attempt));
        drop(inner);
        let wake = tokio::time::Instant::now() + delay;
        let sleep = tokio::time::sleep_until(wake);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                changed = network.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // The network is back: no need to wait out a long backoff.
                    let sooner = tokio::time::Instant::now() + NETWORK_CHANGE_RETRY;
                    if sooner < sleep.deadline() {
                        sleep.as_mut().reset(sooner);
                    }
                }
            }
        }
        let Some(inner) = weak.upgrade() else { return };
        {
            let mut st = inner.lock();
            if st.generation != generation {
                return;
            }
            inner.transition(
                &mut st,
                LinkState::Connecting,
                LinkOperation::AutoReconnect,
                LinkReason::AutoReconnect,
                Detail::default(),
            );
        }
        network.mark_unchanged();
        let result = tokio::select! {
            r = inner.establish(true) => r,
            changed = network.changed() => {
                if changed.is_err() {
                    return;
                }
                // R51: the attempt is dropped (with its connection) and retried in 2 s.
                let mut st = inner.lock();
                if st.generation != generation {
                    return;
                }
                inner.transition(
                    &mut st,
                    LinkState::Disconnected,
                    LinkOperation::NetworkChange,
                    LinkReason::NetworkChange,
                    Detail::default(),
                );
                retry_in = Some(NETWORK_CHANGE_RETRY);
                continue;
            }
        };
        match result {
            Ok(est) => {
                let resumed = est.reply.resumed;
                let (unrestored, gaps) = if resumed {
                    // Channels the resumed session lacked (message or stream) are
                    // re-subscribed or rejoined here.
                    let lacking = est.reply.unrestored_channels.clone();
                    let (unrestored, mut gaps) = if lacking.is_empty() {
                        (Vec::new(), Vec::new())
                    } else {
                        inner.restore(&est.conn, Some(&lacking)).await
                    };
                    gaps.extend(est.reply.gap_channels.iter().cloned());
                    (unrestored, gaps)
                } else {
                    // A new session: every message channel is re-subscribed and every
                    // stream channel rejoined from its last position, and every user
                    // metadata subscription made again, on this connection, before it
                    // becomes the live one (so that its loss meanwhile is just a failed
                    // attempt).
                    let (unrestored, mut gaps) = inner.restore(&est.conn, None).await;
                    inner.resubscribe_user_metadata(&est.conn).await;
                    inner.restore_pending_states(&est.conn).await;
                    gaps.extend(est.reply.gap_channels.iter().cloned());
                    (unrestored, gaps)
                };
                let mut st = inner.lock();
                if st.generation != generation {
                    return;
                }
                if est.conn.is_closed() {
                    // Lost before it became the live connection: try again.
                    drop(st);
                    inner.retry_transition(generation, started);
                    attempt = attempt.saturating_add(1);
                    continue;
                }
                inner.adopt(&mut st, &est);
                let detail = Detail {
                    unrestored,
                    gaps,
                    resumed,
                    ..Default::default()
                };
                inner.transition(
                    &mut st,
                    LinkState::Connected,
                    LinkOperation::Reconnected,
                    LinkReason::ReconnectSuccess,
                    detail,
                );
                drop(st);
                inner.lost_before_adopted(&est);
                return;
            }
            Err(e) if !retryable(&e) => {
                let mut st = inner.lock();
                if st.generation != generation {
                    return;
                }
                if e.code == ErrorCode::TokenExpired.as_i32() {
                    // R44: reported as an event; the link keeps trying (with the token
                    // the app renews meanwhile).
                    inner.router.will_expire(None);
                } else {
                    let detail = Detail {
                        text: Some(e.reason.clone()),
                        ..Default::default()
                    };
                    inner.transition(
                        &mut st,
                        LinkState::Failed,
                        LinkOperation::ServerReject,
                        login_failure_reason(e.code),
                        detail,
                    );
                    inner.end_session(&mut st);
                    return;
                }
            }
            Err(_) => {}
        }
        inner.retry_transition(generation, started);
        attempt = attempt.saturating_add(1);
    }
}
