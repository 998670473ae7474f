//! What the console's overview and configuration pages read: `GET …/stats` (this
//! node's gauges and per-second rates over the last two minutes, sampled once a second
//! by a task of the HTTP side from the node's counters, never from the hot path) and
//! `GET …/node` (the node's settings and the app's, secrets masked).

use crate::http::auth::authorize;
use crate::http::error::{ApiError, ErrorBody};
use crate::node::Node;
use crate::node::metrics::{KINDS, kind_label};
use crate::session::registry::Registry;
use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use utoipa::ToSchema;

/// Samples kept: two minutes at one a second.
const KEEP: usize = 120;

/// One second of the node's activity.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub(crate) struct Sample {
    /// When it was taken, ms since the epoch.
    pub t: u64,
    /// Open WebSocket connections.
    pub connections: u64,
    /// Logged-in sessions.
    pub sessions: u64,
    /// Accepted publishes per second since the previous sample (messages in).
    pub publishes_per_s: f64,
    /// Pushes of publications to local subscribers per second (messages out).
    pub deliveries_per_s: f64,
    /// HTTP requests answered per second.
    pub http_per_s: f64,
}

/// The running totals a sample is the difference of.
#[derive(Clone, Copy)]
struct Totals {
    at: Instant,
    publishes: u64,
    deliveries: u64,
    http: u64,
}

fn totals(node: &Node) -> Totals {
    let m = &node.metrics;
    Totals {
        at: Instant::now(),
        publishes: KINDS.iter().map(|k| m.publishes.get(*k)).sum(),
        deliveries: KINDS.iter().map(|k| m.deliveries.get(*k)).sum(),
        http: m.http_requests.snapshot().iter().map(|(_, n)| n).sum(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The HTTP side's once-a-second sampler and the samples it kept.
pub(crate) struct Sampler {
    samples: Mutex<VecDeque<Sample>>,
    last: Mutex<Option<Totals>>,
    started: Instant,
    started_ms: u64,
}

impl Sampler {
    /// A sampler with no samples yet.
    pub fn new() -> Arc<Sampler> {
        Arc::new(Sampler {
            samples: Mutex::new(VecDeque::with_capacity(KEEP)),
            last: Mutex::new(None),
            started: Instant::now(),
            started_ms: now_ms(),
        })
    }

    /// Takes one sample of `node` (the rates since the previous one).
    pub fn sample(&self, node: &Node) {
        let now = totals(node);
        let prev = self
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(now);
        let rate = |a: u64, b: u64, dt: f64| {
            if dt > 0.0 {
                a.saturating_sub(b) as f64 / dt
            } else {
                0.0
            }
        };
        let (p, d, h) = match prev {
            Some(prev) => {
                let dt = now.at.duration_since(prev.at).as_secs_f64();
                (
                    rate(now.publishes, prev.publishes, dt),
                    rate(now.deliveries, prev.deliveries, dt),
                    rate(now.http, prev.http, dt),
                )
            }
            None => (0.0, 0.0, 0.0),
        };
        let s = Sample {
            t: now_ms(),
            connections: node.connections.load(Ordering::Relaxed) as u64,
            sessions: Registry::of(node).sessions() as u64,
            publishes_per_s: p,
            deliveries_per_s: d,
            http_per_s: h,
        };
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() == KEEP {
            samples.pop_front();
        }
        samples.push_back(s);
    }

    /// Samples `node` every second until it shuts down.
    pub async fn run(self: Arc<Self>, node: Arc<Node>) {
        let mut shutdown = node.shutdown.subscribe();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sample(&node),
                _ = shutdown.wait_for(|down| *down) => return,
            }
        }
    }

    fn series(&self) -> Vec<Sample> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.iter().copied().collect()
    }
}

/// The node's activity now and over the last two minutes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Stats {
    /// Server time of the answer, ms since the epoch.
    pub now_ms: u64,
    /// Seconds since the HTTP side started.
    pub uptime_s: u64,
    /// Open WebSocket connections now.
    pub connections: u64,
    /// Logged-in sessions now (every app).
    pub sessions: u64,
    /// Sessions of this app on this node now.
    pub app_sessions: u64,
    /// Local subscriptions now, by channel type.
    pub subscriptions: BTreeMap<String, i64>,
    /// Accepted publishes since start, by channel type.
    pub publishes_total: BTreeMap<String, u64>,
    /// Deliveries since start, by channel type.
    pub deliveries_total: BTreeMap<String, u64>,
    /// Successful logins since start.
    pub logins_total: u64,
    /// Kicks by the server API since start.
    pub kicks_total: u64,
    /// One sample a second, oldest first (at most 120).
    pub series: Vec<Sample>,
}

/// `GET /v1/apps/{app_id}/stats`: the node's gauges, totals and per-second rates.
#[utoipa::path(get, path = "/v1/apps/{app_id}/stats", tag = "console",
    params(("app_id" = String, Path, description = "the app id")),
    responses((status = 200, body = Stats), (status = 401, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn stats(
    State(node): State<Arc<Node>>,
    Extension(sampler): Extension<Arc<Sampler>>,
    Path(app_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Stats>, ApiError> {
    let app = authorize(&node, &app_id, &headers, "stats")?;
    let m = &node.metrics;
    let per_kind = |f: &dyn Fn(switchboard_engine::ChannelKind) -> u64| {
        KINDS
            .iter()
            .map(|k| (kind_label(*k).to_string(), f(*k)))
            .collect::<BTreeMap<_, _>>()
    };
    Ok(Json(Stats {
        now_ms: now_ms(),
        uptime_s: sampler.started.elapsed().as_secs(),
        connections: node.connections.load(Ordering::Relaxed) as u64,
        sessions: Registry::of(&node).sessions() as u64,
        app_sessions: Registry::of(&node).sessions_of(&app.id).len() as u64,
        subscriptions: KINDS
            .iter()
            .map(|k| (kind_label(*k).to_string(), m.subscriptions.get(*k)))
            .collect(),
        publishes_total: per_kind(&|k| m.publishes.get(k)),
        deliveries_total: per_kind(&|k| m.deliveries.get(k)),
        logins_total: m.logins.load(Ordering::Relaxed),
        kicks_total: m.kicks.load(Ordering::Relaxed),
        series: sampler.series(),
    }))
}

/// This node.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct NodeInfo {
    /// The server's version.
    pub version: String,
    /// When the HTTP side started, ms since the epoch.
    pub started_ms: u64,
    /// Which optional services run: `history`, `presence`, `storage`, `locks`, `topics`.
    pub services: BTreeMap<String, bool>,
    /// The node's settings in force.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    /// The requesting app's settings, secrets masked.
    #[schema(value_type = Object)]
    pub app: serde_json::Value,
    /// Apps this node serves (ids only).
    pub apps: usize,
    /// The nodes sharing the engine, one row each (with the memory engine, this node
    /// alone, id `local`).
    pub nodes: Vec<NodeRow>,
}

/// One node of a deployment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct NodeRow {
    /// The node's id (`--node-id`).
    pub id: String,
    /// Milliseconds since its last heartbeat in the engine (0 for this node alone).
    pub heartbeat_age_ms: u64,
    /// Whether it is the node answering.
    pub this: bool,
}

/// What a masked secret shows.
pub(crate) const MASK: &str = "********";

/// `GET /v1/apps/{app_id}/node`: this node's version, services and settings, and the
/// app's settings with the certificate and API secret masked.
#[utoipa::path(get, path = "/v1/apps/{app_id}/node", tag = "console",
    params(("app_id" = String, Path, description = "the app id")),
    responses((status = 200, body = NodeInfo), (status = 401, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn node_info(
    State(node): State<Arc<Node>>,
    Extension(sampler): Extension<Arc<Sampler>>,
    Path(app_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<NodeInfo>, ApiError> {
    let app = authorize(&node, &app_id, &headers, "nodeInfo")?;
    let c = &node.config;
    let ms = |d: Duration| d.as_millis() as u64;
    let settings = serde_json::json!({
        "max_connections": c.max_connections,
        "max_connections_per_ip": c.max_connections_per_ip,
        "max_frame_bytes": c.max_frame_bytes,
        "max_frame_bytes_before_login": c.max_frame_bytes_before_login,
        "max_handshakes": c.max_handshakes,
        "handshake_timeout_ms": ms(c.handshake_timeout),
        "max_messages_per_frame": c.max_messages_per_frame,
        "outbound_queue_bytes": c.outbound_queue_bytes,
        "outbound_queue_messages": c.outbound_queue_messages,
        "recovery_hold_bytes": c.recovery_hold_bytes,
        "write_batch_bytes": c.write_batch_bytes,
        "login_timeout_ms": ms(c.login_timeout),
        "write_timeout_ms": ms(c.write_timeout),
        "heartbeat_interval_range": c.heartbeat_interval_range,
        "presence_timeout_range": c.presence_timeout_range,
        "token_will_expire_lead_ms": ms(c.token_will_expire_lead),
        "shutdown_grace_ms": ms(c.shutdown_grace),
    });
    let mask = |s: &Option<String>| s.as_ref().map(|_| MASK);
    let app_json = serde_json::json!({
        "id": app.id,
        "certificate": mask(&app.certificate),
        "api_key": app.api_key,
        "api_secret": mask(&app.api_secret),
        "limits": app.limits,
    });
    let services = [
        ("history", node.history.is_some()),
        ("presence", node.presence.is_some()),
        ("storage", node.metadata.is_some()),
        ("locks", node.locks.is_some()),
        ("topics", node.topics.is_some()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let nodes = match &node.sessions {
        None => vec![NodeRow {
            id: "local".into(),
            heartbeat_age_ms: 0,
            this: true,
        }],
        Some(shared) => shared
            .nodes()
            .await
            .map_err(|e| {
                ApiError::new(
                    switchboard_protocol::ErrorCode::EngineUnavailable,
                    format!("listing the nodes: {e}"),
                    "nodeInfo",
                )
            })?
            .into_iter()
            .map(|n| NodeRow {
                id: n.id.to_string(),
                heartbeat_age_ms: n.heartbeat_age_ms,
                this: n.this,
            })
            .collect(),
    };
    Ok(Json(NodeInfo {
        nodes,
        version: env!("CARGO_PKG_VERSION").into(),
        started_ms: sampler.started_ms,
        services,
        settings,
        app: app_json,
        apps: node.apps.len(),
    }))
}
