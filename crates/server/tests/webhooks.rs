//! Issue 16, webhooks: a real HTTP receiver (axum, started by the test) gets the
//! lifecycle events of real WebSocket traffic as signed JSON; failed deliveries are
//! retried with the same event id; a full queue drops events (counted in `/metrics`)
//! without holding up the sessions.

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_engine_memory::{MemoryBroker, MemoryConfig};
use switchboard_protocol::pb::{self, client_message};
use switchboard_server::{
    EVENT_ID_HEADER, SIGNATURE_HEADER, Server, TIMESTAMP_HEADER, WebhookConfig,
};

const SECRET: &str = "whsec-test-0123456789";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    timestamp: String,
    signature: String,
    event_id: String,
    body: Bytes,
}

impl Got {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// The receiver's state: what it got, and how many requests to fail first (503).
#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<Got>>,
    fail_first: AtomicUsize,
    hang: std::sync::atomic::AtomicBool,
}

async fn hook(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    r.got.lock().unwrap().push(Got {
        timestamp: h(TIMESTAMP_HEADER),
        signature: h(SIGNATURE_HEADER),
        event_id: h(EVENT_ID_HEADER),
        body,
    });
    if r.hang.load(Ordering::Relaxed) {
        std::future::pending::<()>().await;
    }
    let fail = r
        .fail_first
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok();
    if fail {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    }
}

/// Starts a receiver on a loopback port; returns its URL and state.
async fn receiver() -> (String, Arc<Receiver>) {
    let state = Arc::new(Receiver::default());
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), state)
}

/// What a receiver checks: the signature over `"{timestamp}.{body}"` and a fresh
/// timestamp.
fn verify(got: &Got) {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{}.", got.timestamp).as_bytes());
    mac.update(&got.body);
    let want = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(got.signature, want, "the signature checks out");
    let ts: u64 = got.timestamp.parse().expect("a numeric timestamp");
    assert!(u64::from(now_secs()).abs_diff(ts) < 60, "a fresh timestamp");
    assert_eq!(got.json()["id"], got.event_id.as_str());
}

async fn server_with(config: WebhookConfig) -> (TestServer, std::net::SocketAddr) {
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http_addr = http.local_addr().unwrap();
    let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
    let server = Server::new(base_config(), broker)
        .with_webhooks(config)
        .with_http(http);
    (TestServer::with_parts(server).await, http_addr)
}

fn events_of(r: &Receiver) -> Vec<serde_json::Value> {
    r.got.lock().unwrap().iter().map(Got::json).collect()
}

fn has(events: &[serde_json::Value], event: &str, user: &str, channel: Option<&str>) -> bool {
    events.iter().any(|e| {
        e["event"] == event
            && e["user_id"] == user
            && e["app_id"] == APP_ID
            && channel.is_none_or(|c| e["channel"] == c)
    })
}

#[tokio::test]
async fn lifecycle_events_arrive_signed_at_a_real_receiver() {
    let (url, r) = receiver().await;
    let mut config = WebhookConfig::new(url, SECRET);
    config.initial_backoff = Duration::from_millis(20);
    let (s, _) = server_with(config).await;

    let mut alice = s.raw_login("alice").await;
    alice.subscribe("room").await;
    let reply = alice
        .request(client_message::Body::Unsubscribe(pb::UnsubscribeRequest {
            channel_name: "room".into(),
        }))
        .await;
    assert!(
        !matches!(reply, pb::server_message::Body::Error(_)),
        "{reply:?}"
    );
    let reply = alice
        .request(client_message::Body::Logout(pb::LogoutRequest {}))
        .await;
    assert!(
        !matches!(reply, pb::server_message::Body::Error(_)),
        "{reply:?}"
    );

    assert!(
        eventually(STEP, || has(&events_of(&r), "user.offline", "alice", None)).await,
        "user.offline arrives; got {:?}",
        events_of(&r)
    );
    let events = events_of(&r);
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    // One delivery task, in order.
    assert_eq!(
        names,
        [
            "user.online",
            "channel.joined",
            "channel.left",
            "user.offline"
        ],
        "{events:?}"
    );
    assert_eq!(events[1]["channel"], "room");
    assert_eq!(events[1]["channel_type"], "message");
    assert_eq!(events[2]["reason"], "leave");
    for got in r.got.lock().unwrap().iter() {
        verify(got);
    }
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_the_same_event_id() {
    let (url, r) = receiver().await;
    r.fail_first.store(2, Ordering::Relaxed);
    let mut config = WebhookConfig::new(url, SECRET);
    config.initial_backoff = Duration::from_millis(20);
    config.events = vec!["user.online".into()];
    let (s, http) = server_with(config).await;

    let _alice = s.raw_login("alice").await;
    assert!(
        eventually(STEP, || r.got.lock().unwrap().len() >= 3).await,
        "two failures, then a delivery"
    );
    let got = r.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "no attempt after the success: {got:?}");
    assert!(
        got.iter().all(|g| g.event_id == got[0].event_id),
        "one event, retried"
    );
    for g in &got {
        verify(g);
    }
    assert_eq!(got[0].json()["event"], "user.online");

    let text = reqwest::get(format!("http://{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text");
    let value = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|x| x.metric == name)
            .map(|x| match x.value {
                prometheus_parse::Value::Counter(v) => v,
                _ => -1.0,
            })
    };
    assert_eq!(value("switchboard_webhook_retries_total"), Some(2.0));
    assert_eq!(value("switchboard_webhook_delivered_total"), Some(1.0));
}

#[tokio::test]
async fn a_full_queue_drops_events_and_never_blocks_a_login() {
    let (url, r) = receiver().await;
    // The receiver takes the first request and never answers: the queue of 2 fills.
    r.hang.store(true, Ordering::Relaxed);
    let mut config = WebhookConfig::new(url, SECRET);
    config.queue = 2;
    config.timeout = Duration::from_secs(60);
    config.events = vec!["user.online".into()];
    let (s, http) = server_with(config).await;

    let mut clients = vec![s.raw_login("user0").await];
    assert!(
        eventually(STEP, || r.got.lock().unwrap().len() == 1).await,
        "the first event is in flight"
    );
    for i in 1..8 {
        // Each login completes although no event is being delivered.
        clients.push(s.raw_login(&format!("user{i}")).await);
    }
    let dropped = || async {
        let text = reqwest::get(format!("http://{http}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("switchboard_webhook_dropped_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // 8 events: one in flight, the queue's two, the other five dropped.
    assert!(
        eventually_async(STEP, || async { dropped().await == 5.0 }).await,
        "dropped: {}",
        dropped().await
    );
    assert_eq!(r.got.lock().unwrap().len(), 1, "one request in flight");
}
