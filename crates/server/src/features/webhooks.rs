//! Webhooks: the session lifecycle told to an app backend over HTTP. Users coming
//! online (a new login, not a resume) and going offline (the session ended), members
//! joining and leaving channels (with `leave` or `timeout`) are queued as JSON events
//! and POSTed, signed, by one background task: HMAC-SHA256 over `"{timestamp}.{body}"`
//! with the configured secret. The queue is bounded and filled with `try_send`, so a
//! slow or dead receiver costs dropped events (counted), never a blocked session;
//! a failed delivery is retried with exponential backoff.

use crate::node::Node;
use crate::session::core::Session;
use crate::session::hooks::{Departure, Ended, Hooks};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchboard_engine::{ChannelKey, ChannelKind};
use tokio::sync::mpsc;

/// Header carrying the signature: `v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`.
pub const SIGNATURE_HEADER: &str = "x-switchboard-signature";
/// Header carrying the signing time, seconds since the epoch (a receiver refuses old
/// ones: replay safety).
pub const TIMESTAMP_HEADER: &str = "x-switchboard-timestamp";
/// Header carrying the event's unique id (the same on every retry: deduplication).
pub const EVENT_ID_HEADER: &str = "x-switchboard-event-id";

/// The event names, as in the `event` field and the `events` filter.
pub const EVENTS: [&str; 4] = [
    "user.online",
    "user.offline",
    "channel.joined",
    "channel.left",
];

/// Where and how webhooks are delivered.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// The receiver's URL (`http://` or `https://`).
    pub url: String,
    /// The signing secret.
    pub secret: String,
    /// Events to send (names of [`EVENTS`]); empty: all.
    pub events: Vec<String>,
    /// Events held for delivery; past it new events are dropped (and counted).
    pub queue: usize,
    /// Attempts per event before it is given up (and counted as failed).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled on each further one (at most 30 s).
    pub initial_backoff: Duration,
    /// Time allowed for one delivery attempt.
    pub timeout: Duration,
}

impl WebhookConfig {
    /// Defaults for `url` and `secret`: every event, 10000 queued, 5 attempts from
    /// 500 ms of backoff, 5 s per attempt.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            secret: secret.into(),
            events: Vec::new(),
            queue: 10_000,
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(5),
        }
    }
}

/// One event as POSTed.
#[derive(Serialize, Debug, Clone)]
struct Event {
    id: String,
    event: &'static str,
    app_id: String,
    user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    /// Milliseconds since the epoch when it happened.
    time_ms: u64,
}

/// Delivery counts (read by `/metrics`).
#[derive(Default)]
pub(crate) struct WebhookStats {
    /// Events delivered (2xx).
    pub delivered: AtomicU64,
    /// Attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Events given up after the last attempt.
    pub failed: AtomicU64,
}

/// The node's webhook sink; `None` inside when webhooks are off.
#[derive(Default)]
pub(crate) struct Webhooks(Option<Sink>);

struct Sink {
    tx: mpsc::Sender<Event>,
    events: Vec<String>,
    stats: Arc<WebhookStats>,
}

impl Webhooks {
    /// Starts the delivery task for `config` (call within the runtime).
    pub fn start(config: WebhookConfig) -> Webhooks {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let stats = Arc::new(WebhookStats::default());
        let events = config.events.clone();
        tokio::spawn(deliver(config, rx, stats.clone()));
        Webhooks(Some(Sink { tx, events, stats }))
    }

    /// The delivery counts, when webhooks are on.
    pub fn stats(&self) -> Option<&WebhookStats> {
        self.0.as_ref().map(|s| &*s.stats)
    }

    /// Queues `event` without waiting; drops it (counted) when the queue is full.
    fn emit(&self, make: impl FnOnce() -> Event, name: &str) {
        let Some(sink) = &self.0 else { return };
        if !sink.events.is_empty() && !sink.events.iter().any(|e| e == name) {
            return;
        }
        if sink.tx.try_send(make()).is_err() {
            sink.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(event = name, "webhook queue full; event dropped");
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn event_id() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// `v1=<hex>`: HMAC-SHA256 of `"{timestamp}.{body}"` with `secret`.
pub(crate) fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The delivery task: one event at a time, in order, until the sink is dropped.
async fn deliver(config: WebhookConfig, mut rx: mpsc::Receiver<Event>, stats: Arc<WebhookStats>) {
    let client = match reqwest::Client::builder().timeout(config.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks: cannot build the HTTP client; webhooks off");
            return;
        }
    };
    while let Some(event) = rx.recv().await {
        let body = match serde_json::to_vec(&event) {
            Ok(b) => b,
            Err(_) => continue,
        };
        let mut backoff = config.initial_backoff;
        let mut attempt = 1;
        loop {
            // Signed per attempt: the timestamp says when this attempt was sent.
            let ts = now_ms() / 1000;
            let sent = client
                .post(&config.url)
                .header("content-type", "application/json")
                .header(TIMESTAMP_HEADER, ts.to_string())
                .header(SIGNATURE_HEADER, sign(&config.secret, ts, &body))
                .header(EVENT_ID_HEADER, &event.id)
                .body(body.clone())
                .send()
                .await;
            let problem = match sent {
                Ok(r) if r.status().is_success() => {
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(r) => format!("status {}", r.status()),
                Err(e) => e.to_string(),
            };
            if attempt >= config.max_attempts {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(event = event.event, id = %event.id, attempts = attempt, %problem,
                    "webhook not delivered; given up");
                break;
            }
            stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(event = event.event, attempt, %problem, "webhook failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
            attempt += 1;
        }
    }
}

fn channel_type(kind: ChannelKind) -> Option<&'static str> {
    match kind {
        ChannelKind::Message => Some("message"),
        ChannelKind::Stream => Some("stream"),
        _ => None,
    }
}

/// The webhook feature's part in the session lifecycle.
pub(crate) struct WebhookHooks;

impl WebhookHooks {
    fn channel_event(
        node: &Node,
        session: &Session,
        key: &ChannelKey,
        name: &'static str,
        reason: Option<&'static str>,
    ) {
        let Some(ty) = channel_type(key.kind) else {
            return;
        };
        node.ext.get::<Webhooks>().emit(
            || Event {
                id: event_id(),
                event: name,
                app_id: session.app_id.to_string(),
                user_id: session.user.to_string(),
                channel_type: Some(ty),
                channel: Some(key.name.to_string()),
                reason,
                time_ms: now_ms(),
            },
            name,
        );
    }

    fn user_event(node: &Node, session: &Session, name: &'static str) {
        node.ext.get::<Webhooks>().emit(
            || Event {
                id: event_id(),
                event: name,
                app_id: session.app_id.to_string(),
                user_id: session.user.to_string(),
                channel_type: None,
                channel: None,
                reason: None,
                time_ms: now_ms(),
            },
            name,
        );
    }
}

#[async_trait::async_trait]
impl Hooks for WebhookHooks {
    async fn entered(
        &self,
        node: &Arc<Node>,
        session: &Session,
        key: &ChannelKey,
        _quiet: bool,
        _state: &HashMap<String, String>,
    ) {
        Self::channel_event(node, session, key, "channel.joined", None);
    }

    async fn left(&self, node: &Arc<Node>, session: &Session, key: &ChannelKey, how: Departure) {
        let reason = match how {
            Departure::Leave => "leave",
            Departure::Timeout => "timeout",
        };
        Self::channel_event(node, session, key, "channel.left", Some(reason));
    }

    async fn attached(&self, node: &Node, session: &Session, resumed: bool) {
        if !resumed {
            Self::user_event(node, session, "user.online");
        }
    }

    async fn ended(&self, node: &Arc<Node>, session: &Session, _ended: &Ended) {
        // Superseded by the user's session on another node: the user is still online.
        if session.lock().superseded {
            return;
        }
        Self::user_event(node, session, "user.offline");
    }
}
