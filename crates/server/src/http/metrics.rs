//! `GET /metrics`: this server's counters and gauges (`node::metrics::Metrics`, the
//! session registry, the connection count) in the Prometheus text format, version
//! 0.0.4. Names and labels are listed in docs/operations.md.

use crate::features::webhooks::Webhooks;
use crate::node::Node;
use crate::node::metrics::{ByName, GaugePerKind, KINDS, PerKind, kind_label};
use crate::session::registry::Registry;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The content type of the Prometheus text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(State(node): State<Arc<Node>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&node))
}

/// The whole exposition.
pub(crate) fn render(node: &Node) -> String {
    let m = &node.metrics;
    let mut out = String::with_capacity(4096);
    let w = &mut out;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    single(
        w,
        "switchboard_connections",
        "gauge",
        "Open WebSocket connections.",
        node.connections.load(Ordering::Relaxed) as u64,
    );
    single(
        w,
        "switchboard_connections_opened_total",
        "counter",
        "WebSocket connections accepted.",
        load(&m.connections_opened),
    );
    by_name(
        w,
        "switchboard_disconnects_total",
        "Connections closed, by disconnect code.",
        "code",
        &m.disconnects,
    );
    let slow = m
        .disconnects
        .snapshot()
        .into_iter()
        .find(|(n, _)| *n == "SLOW_CONSUMER")
        .map_or(0, |(_, v)| v);
    single(
        w,
        "switchboard_slow_consumer_disconnects_total",
        "counter",
        "Connections closed because their outbound queue overflowed.",
        slow,
    );
    single(
        w,
        "switchboard_sessions",
        "gauge",
        "Logged-in sessions on this node (attached or waiting for a resume).",
        Registry::of(node).sessions() as u64,
    );
    single(
        w,
        "switchboard_logins_total",
        "counter",
        "Successful logins, new and resumed.",
        load(&m.logins),
    );
    by_name(
        w,
        "switchboard_login_failures_total",
        "Refused logins, by error code.",
        "reason",
        &m.login_failures,
    );
    single(
        w,
        "switchboard_resumes_total",
        "counter",
        "Resumes of a live session.",
        load(&m.resumes),
    );
    single(
        w,
        "switchboard_resume_recovered_channels_total",
        "counter",
        "Channels a resume brought back without a gap.",
        load(&m.resume_recovered_channels),
    );
    single(
        w,
        "switchboard_resume_gap_channels_total",
        "counter",
        "Channels a resume brought back with a gap.",
        load(&m.resume_gap_channels),
    );
    gauge_kinds(
        w,
        "switchboard_subscriptions",
        "Local subscriptions (one session on one channel), by channel type.",
        &m.subscriptions,
    );
    per_kind(
        w,
        "switchboard_publishes_total",
        "Accepted publishes (clients and the server API), by channel type.",
        &m.publishes,
    );
    per_kind(
        w,
        "switchboard_deliveries_total",
        "Publications pushed to local subscribers, by channel type.",
        &m.deliveries,
    );
    single(
        w,
        "switchboard_kicks_total",
        "counter",
        "Sessions ended by the server API's kick.",
        load(&m.kicks),
    );
    by_name(
        w,
        "switchboard_http_requests_total",
        "Server API and health requests answered, by status class.",
        "status",
        &m.http_requests,
    );
    let receivers: Vec<_> = node.ext.get::<Webhooks>().stats().collect();
    if !receivers.is_empty() {
        for (name, help) in [
            ("delivered", "Webhook events delivered (2xx), by receiver."),
            (
                "retries",
                "Webhook delivery attempts that failed and were retried, by receiver.",
            ),
            (
                "dropped",
                "Webhook events dropped because the receiver's queue was full.",
            ),
            (
                "failed",
                "Webhook events given up after the last attempt, by receiver.",
            ),
            (
                "debounced",
                "Webhook events not sent: a leave and a join within the debounce cancelled out.",
            ),
        ] {
            let metric = format!("switchboard_webhook_{name}_total");
            head(w, &metric, "counter", help);
            for (label, stats) in &receivers {
                let value = match name {
                    "delivered" => &stats.delivered,
                    "retries" => &stats.retries,
                    "dropped" => &stats.dropped,
                    "failed" => &stats.failed,
                    _ => &stats.debounced,
                };
                let _ = writeln!(w, "{metric}{{receiver=\"{label}\"}} {}", load(value));
            }
        }
    }
    out
}

fn head(w: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(w, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn single(w: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    head(w, name, kind, help);
    let _ = writeln!(w, "{name} {value}");
}

fn by_name(w: &mut String, name: &str, help: &str, label: &str, values: &ByName) {
    head(w, name, "counter", help);
    for (v, n) in values.snapshot() {
        let _ = writeln!(w, "{name}{{{label}=\"{v}\"}} {n}");
    }
}

fn per_kind(w: &mut String, name: &str, help: &str, values: &PerKind) {
    head(w, name, "counter", help);
    for kind in KINDS {
        let _ = writeln!(
            w,
            "{name}{{channel_type=\"{}\"}} {}",
            kind_label(kind),
            values.get(kind)
        );
    }
}

fn gauge_kinds(w: &mut String, name: &str, help: &str, values: &GaugePerKind) {
    head(w, name, "gauge", help);
    for kind in KINDS {
        let _ = writeln!(
            w,
            "{name}{{channel_type=\"{}\"}} {}",
            kind_label(kind),
            values.get(kind)
        );
    }
}
