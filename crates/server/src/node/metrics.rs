//! The node's counters and gauges, one [`Metrics`] per server instance (a field of the
//! node), so that several servers in one process never share them. The layers above
//! bump them with one-line calls; `http::metrics` renders them as Prometheus text.
//! Hot-path counters are relaxed atomics; the rare, labelled ones (failure reasons,
//! disconnect codes) sit behind a mutex.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use switchboard_engine::ChannelKind;
use switchboard_protocol::{DisconnectCode, ErrorCode};

/// The channel types the per-type series carry, in label order.
pub(crate) const KINDS: [ChannelKind; 4] = [
    ChannelKind::Message,
    ChannelKind::User,
    ChannelKind::Stream,
    ChannelKind::UserMetadata,
];

/// The `channel_type` label of a channel kind.
pub(crate) fn kind_label(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Message => "message",
        ChannelKind::User => "user",
        ChannelKind::Stream => "stream",
        ChannelKind::UserMetadata => "user_metadata",
    }
}

fn slot(kind: ChannelKind) -> usize {
    match kind {
        ChannelKind::Message => 0,
        ChannelKind::User => 1,
        ChannelKind::Stream => 2,
        ChannelKind::UserMetadata => 3,
    }
}

/// One counter per channel type.
#[derive(Default)]
pub(crate) struct PerKind([AtomicU64; 4]);

impl PerKind {
    /// Adds `n` to `kind`'s counter.
    pub fn add(&self, kind: ChannelKind, n: u64) {
        self.0[slot(kind)].fetch_add(n, Ordering::Relaxed);
    }

    /// `kind`'s value.
    pub fn get(&self, kind: ChannelKind) -> u64 {
        self.0[slot(kind)].load(Ordering::Relaxed)
    }
}

/// One gauge per channel type.
#[derive(Default)]
pub(crate) struct GaugePerKind([AtomicI64; 4]);

impl GaugePerKind {
    /// Moves `kind`'s gauge by `n`.
    pub fn add(&self, kind: ChannelKind, n: i64) {
        self.0[slot(kind)].fetch_add(n, Ordering::Relaxed);
    }

    /// `kind`'s value.
    pub fn get(&self, kind: ChannelKind) -> i64 {
        self.0[slot(kind)].load(Ordering::Relaxed)
    }
}

/// Counts by a static label value (an error or disconnect code's name).
#[derive(Default)]
pub(crate) struct ByName(Mutex<BTreeMap<&'static str, u64>>);

impl ByName {
    /// Adds one to `name`.
    pub fn inc(&self, name: &'static str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(name).or_insert(0) += 1;
    }

    /// Every (name, count), by name.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (*k, *v)).collect()
    }
}

/// The node's counters and gauges (names and labels in docs/operations.md).
#[derive(Default)]
pub(crate) struct Metrics {
    /// WebSocket connections accepted (past the handshake and the limits).
    pub connections_opened: AtomicU64,
    /// Connections closed, by disconnect code name (`SLOW_CONSUMER`, …).
    pub disconnects: ByName,
    /// Successful logins (new sessions and resumes).
    pub logins: AtomicU64,
    /// Refused logins, by error code name.
    pub login_failures: ByName,
    /// Resumes of a live session.
    pub resumes: AtomicU64,
    /// Channels a resume brought back complete.
    pub resume_recovered_channels: AtomicU64,
    /// Channels a resume brought back with a gap.
    pub resume_gap_channels: AtomicU64,
    /// Local subscriptions (one session on one channel) by channel type.
    pub subscriptions: GaugePerKind,
    /// Accepted publishes by channel type (clients and the server API).
    pub publishes: PerKind,
    /// Pushes of publications to local subscribers, by channel type.
    pub deliveries: PerKind,
    /// Sessions the server API kicked.
    pub kicks: AtomicU64,
    /// Server API requests answered, by status class (`2xx`, `4xx`, `5xx`).
    pub http_requests: ByName,
}

impl Metrics {
    /// Records a successful login.
    pub fn logged_in(&self) {
        self.logins.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a refused login.
    pub fn login_failed(&self, code: ErrorCode) {
        self.login_failures.inc(code.name());
    }

    /// Records a connection closed with `code` (none = the peer went away).
    pub fn disconnected(&self, code: Option<DisconnectCode>) {
        self.disconnects
            .inc(code.map_or("PEER_CLOSED", |c| c.info().name));
    }

    /// Records a resume and how its channels came back.
    pub fn resumed(&self, channels: usize, gaps: usize) {
        self.resumes.fetch_add(1, Ordering::Relaxed);
        let recovered = channels.saturating_sub(gaps) as u64;
        self.resume_recovered_channels
            .fetch_add(recovered, Ordering::Relaxed);
        self.resume_gap_channels
            .fetch_add(gaps as u64, Ordering::Relaxed);
    }

    /// Records an accepted publish on a channel of `kind`.
    pub fn published(&self, kind: ChannelKind) {
        self.publishes.add(kind, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_move_per_instance() {
        let (a, b) = (Metrics::default(), Metrics::default());
        a.published(ChannelKind::User);
        a.login_failed(ErrorCode::InvalidToken);
        a.login_failed(ErrorCode::InvalidToken);
        a.resumed(3, 1);
        assert_eq!(a.publishes.get(ChannelKind::User), 1);
        assert_eq!(b.publishes.get(ChannelKind::User), 0);
        assert_eq!(
            a.login_failures.snapshot(),
            vec![("RTM_ERROR_INVALID_TOKEN", 2)]
        );
        assert_eq!(a.resume_recovered_channels.load(Ordering::Relaxed), 2);
        assert_eq!(a.resume_gap_channels.load(Ordering::Relaxed), 1);
    }
}
