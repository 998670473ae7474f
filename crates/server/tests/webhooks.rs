//! Issue 16, webhooks: real HTTP receivers (axum, started by the test) get the events
//! of real WebSocket and server API traffic as signed JSON: users online / offline /
//! kicked / banned, channels occupied / vacated, members joined / left / timed out
//! (debounced when the app asks), metadata changed with its revisions, locks acquired /
//! released / revoked; each app's events reach its own receiver only. Failed deliveries
//! are retried with the same event id; a full queue or a dead receiver costs counted
//! drops and failures (in `/metrics`) without holding up the sessions.

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
    AppWebhooks, EVENT_ID_HEADER, SIGNATURE_HEADER, Server, ServerConfig, TIMESTAMP_HEADER,
    WebhookConfig,
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
    verify_with(got, SECRET);
}

/// [`verify`] with `secret`.
fn verify_with(got: &Got, secret: &str) {
    assert!(signed_by(got, secret), "the signature checks out: {got:?}");
    let ts: u64 = got.timestamp.parse().expect("a numeric timestamp");
    assert!(u64::from(now_secs()).abs_diff(ts) < 60, "a fresh timestamp");
    assert_eq!(got.json()["id"], got.event_id.as_str());
}

/// Whether `got` carries the signature of `secret`.
fn signed_by(got: &Got, secret: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.", got.timestamp).as_bytes());
    mac.update(&got.body);
    let want = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    got.signature == want
}

async fn server_with(config: WebhookConfig) -> (TestServer, std::net::SocketAddr) {
    server_with_config(Some(config), |_| {}).await
}

/// A server of [`base_config`] changed by `f` ([`APP_ID`] gets [`API_KEY`] /
/// [`API_SECRET`] first), with `webhooks` as the server's receiver, every test engine
/// and its HTTP side; returns the HTTP side's address.
async fn server_with_config(
    webhooks: Option<WebhookConfig>,
    f: impl FnOnce(&mut ServerConfig),
) -> (TestServer, std::net::SocketAddr) {
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http_addr = http.local_addr().unwrap();
    let mut config = base_config();
    short_timeouts(&mut config);
    for app in &mut config.apps {
        if app.id == APP_ID {
            app.api_key = Some(API_KEY.into());
            app.api_secret = Some(API_SECRET.into());
        }
    }
    f(&mut config);
    let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
    let mut server = Server::new(config, broker).with_http(http);
    if let Some(w) = webhooks {
        server = server.with_webhooks(w);
    }
    (TestServer::with_parts(server).await, http_addr)
}

/// The API key of [`APP_ID`] in these tests.
const API_KEY: &str = "backend-key-1";
/// Its API secret.
const API_SECRET: &str = "backend-secret-0123456789";

/// An authorized server API POST for [`APP_ID`]: status and JSON.
async fn api_post(
    http: SocketAddr,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{http}/v1/apps/{APP_ID}{path}"))
        .basic_auth(API_KEY, Some(API_SECRET))
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = r.status().as_u16();
    (status, r.json().await.expect("a JSON body"))
}

/// The value of counter `name` for `receiver` in `/metrics` (0 when absent).
async fn counter(http: SocketAddr, name: &str, receiver: &str) -> f64 {
    let text = reqwest::get(format!("http://{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text");
    scrape
        .samples
        .iter()
        .find(|x| x.metric == name && x.labels.get("receiver") == Some(receiver))
        .map_or(0.0, |x| match x.value {
            prometheus_parse::Value::Counter(v) => v,
            _ => -1.0,
        })
}

/// Sends `body`; panics on an error reply.
async fn ok(raw: &mut RawClient, body: client_message::Body) -> pb::server_message::Body {
    let reply = raw.request(body).await;
    assert!(
        !matches!(reply, pb::server_message::Body::Error(_)),
        "{reply:?}"
    );
    reply
}

fn unsubscribe(channel: &str) -> client_message::Body {
    client_message::Body::Unsubscribe(pb::UnsubscribeRequest {
        channel_name: channel.into(),
    })
}

/// The events named `event` the receiver got.
fn named(r: &Receiver, event: &str) -> Vec<serde_json::Value> {
    events_of(r)
        .into_iter()
        .filter(|e| e["event"] == event)
        .collect()
}

/// Waits until the receiver got an event named `event` of `user`; returns it.
async fn wait_for(r: &Receiver, event: &str, user: &str) -> serde_json::Value {
    let found = || {
        events_of(r)
            .into_iter()
            .find(|e| e["event"] == event && e["user_id"] == user)
    };
    assert!(
        eventually(STEP, || found().is_some()).await,
        "{event} of {user} arrives; got {:?}",
        events_of(r)
    );
    found().unwrap()
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
    ok(&mut alice, unsubscribe("room")).await;
    ok(
        &mut alice,
        client_message::Body::Logout(pb::LogoutRequest {}),
    )
    .await;

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
    // One delivery task, in order; the first member in occupies the channel, the last
    // one out vacates it.
    assert_eq!(
        names,
        [
            "user.online",
            "channel.occupied",
            "member.joined",
            "member.left",
            "channel.vacated",
            "user.offline"
        ],
        "{events:?}"
    );
    for e in &events[1..5] {
        assert_eq!(e["channel"], "room", "{e}");
        assert_eq!(e["channel_type"], "message", "{e}");
        assert_eq!(e["user_id"], "alice", "{e}");
    }
    assert_eq!(events[2]["quiet"], false);
    assert_eq!(events[3]["reason"], "leave");
    for got in r.got.lock().unwrap().iter() {
        verify(got);
    }
}

#[tokio::test]
async fn a_channel_is_occupied_by_its_first_member_and_vacated_by_its_last() {
    let (url, r) = receiver().await;
    let (s, _) = server_with(WebhookConfig::new(url, SECRET)).await;
    let mut alice = s.raw_member("alice", "room").await;
    let mut bob = s.raw_member("bob", "room").await;
    // A repeated subscribe (R81) changes options, not membership: no second join.
    alice.subscribe("room").await;
    ok(&mut alice, unsubscribe("room")).await;
    wait_for(&r, "member.left", "alice").await;
    assert!(named(&r, "channel.vacated").is_empty(), "bob is still in");
    ok(&mut bob, unsubscribe("room")).await;
    let vacated = wait_for(&r, "channel.vacated", "bob").await;
    assert_eq!(vacated["channel"], "room");
    let occupied = named(&r, "channel.occupied");
    assert_eq!(occupied.len(), 1, "{occupied:?}");
    assert_eq!(occupied[0]["user_id"], "alice");
    assert_eq!(named(&r, "member.joined").len(), 2, "{:?}", events_of(&r));
    assert_eq!(named(&r, "channel.vacated").len(), 1);
}

/// R118: a member whose connection stays lost for its presence timeout times out, and
/// the backend hears `member.timed_out`, not `member.left`.
#[tokio::test]
async fn a_lost_connection_times_the_member_out_distinct_from_a_leave() {
    let (url, r) = receiver().await;
    let (s, _) = server_with(WebhookConfig::new(url, SECRET)).await;
    let mut alice = s.raw().await;
    let reply = alice
        .request(client_message::Body::Login(login_request(
            "alice",
            "",
            vec![],
            1,
            "test",
        )))
        .await;
    assert!(
        matches!(reply, pb::server_message::Body::Login(_)),
        "{reply:?}"
    );
    alice.subscribe("room").await;
    alice.lose_connection().await;
    let timed_out = wait_for(&r, "member.timed_out", "alice").await;
    assert_eq!(timed_out["channel"], "room");
    assert_eq!(timed_out["reason"], "timeout");
    wait_for(&r, "user.offline", "alice").await;
    assert!(named(&r, "member.left").is_empty(), "{:?}", events_of(&r));
    let names: Vec<String> = events_of(&r)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    let pos = |n: &str| names.iter().position(|x| x == n).unwrap();
    assert!(
        pos("member.timed_out") < pos("channel.vacated"),
        "{names:?}"
    );
    assert!(pos("channel.vacated") < pos("user.offline"), "{names:?}");
}

#[tokio::test]
async fn a_leave_and_a_join_within_the_debounce_send_nothing() {
    let (url, r) = receiver().await;
    let mut config = WebhookConfig::new(url, SECRET);
    config.debounce = Duration::from_millis(1500);
    let (s, http) = server_with(config).await;
    let mut alice = s.raw_member("alice", "room").await;
    wait_for(&r, "member.joined", "alice").await;
    // Out and straight back in (a page reload): neither the leave nor the new join,
    // nor the vacated and occupied between them, is sent.
    let left_at = tokio::time::Instant::now();
    ok(&mut alice, unsubscribe("room")).await;
    alice.subscribe("room").await;
    assert!(
        eventually_async(STEP, || async {
            counter(http, "switchboard_webhook_debounced_total", "default").await == 4.0
        })
        .await,
        "four events cancelled out"
    );
    // Past the delay the held leave would have gone out; a later event marks the end
    // of the queue.
    assert!(
        eventually(STEP, || left_at.elapsed()
            > Duration::from_millis(1500 + 200))
        .await,
        "the debounce delay passes"
    );
    let _bob = s.raw_login("bob").await;
    wait_for(&r, "user.online", "bob").await;
    let names: Vec<String> = events_of(&r)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "user.online",
            "channel.occupied",
            "member.joined",
            "user.online"
        ],
        "nothing between alice's first join and bob's login"
    );
}

#[tokio::test]
async fn a_leave_past_the_debounce_is_sent_and_so_is_the_join_after_it() {
    let (url, r) = receiver().await;
    let mut config = WebhookConfig::new(url, SECRET);
    config.debounce = Duration::from_millis(300);
    let (s, _) = server_with(config).await;
    let mut alice = s.raw_member("alice", "room").await;
    wait_for(&r, "member.joined", "alice").await;
    let left_at = tokio::time::Instant::now();
    ok(&mut alice, unsubscribe("room")).await;
    wait_for(&r, "member.left", "alice").await;
    assert!(
        left_at.elapsed() >= Duration::from_millis(300),
        "held for the debounce delay first"
    );
    wait_for(&r, "channel.vacated", "alice").await;
    alice.subscribe("room").await;
    assert!(
        eventually(STEP, || named(&r, "member.joined").len() == 2).await,
        "the join after the delay is sent: {:?}",
        events_of(&r)
    );
    assert_eq!(named(&r, "channel.occupied").len(), 2);
}

/// R141: every write raises the revisions; the event carries them.
#[tokio::test]
async fn metadata_writes_send_metadata_changed_with_the_revisions() {
    let (url, r) = receiver().await;
    let mut config = WebhookConfig::new(url, SECRET);
    config.events = vec!["metadata.changed".into()];
    let (s, _) = server_with(config).await;
    let mut alice = s.raw_login("alice").await;
    let item = |k: &str, v: &str| pb::MetadataItem {
        key: k.into(),
        value: v.into(),
        revision: None,
    };
    let write = |ty: i32, name: &str, items: Vec<pb::MetadataItem>| pb::MetadataWriteRequest {
        channel_type: ty,
        channel_name: name.into(),
        items,
        ..Default::default()
    };
    ok(
        &mut alice,
        client_message::Body::SetMetadata(write(
            MESSAGE,
            "room",
            vec![item("topic", "rust"), item("mood", "calm")],
        )),
    )
    .await;
    ok(
        &mut alice,
        client_message::Body::UpdateMetadata(write(MESSAGE, "room", vec![item("topic", "go")])),
    )
    .await;
    ok(
        &mut alice,
        client_message::Body::RemoveMetadata(write(MESSAGE, "room", vec![item("mood", "")])),
    )
    .await;
    ok(
        &mut alice,
        client_message::Body::SetMetadata(write(USER, "", vec![item("status", "away")])),
    )
    .await;
    assert!(
        eventually(STEP, || named(&r, "metadata.changed").len() == 4).await,
        "{:?}",
        events_of(&r)
    );
    let ev = named(&r, "metadata.changed");
    let ops: Vec<&str> = ev.iter().map(|e| e["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["set", "update", "remove", "set"]);
    for e in &ev[..3] {
        assert_eq!(e["scope"], "channel");
        assert_eq!(e["channel"], "room");
        assert_eq!(e["channel_type"], "message");
        assert_eq!(e["user_id"], "alice");
    }
    let major = |e: &serde_json::Value| e["major_revision"].as_i64().unwrap();
    assert!(
        major(&ev[0]) < major(&ev[1]) && major(&ev[1]) < major(&ev[2]),
        "{ev:?}"
    );
    assert_eq!(ev[0]["revisions"]["topic"], major(&ev[0]));
    assert_eq!(ev[1]["revisions"]["topic"], major(&ev[1]));
    assert_eq!(ev[1]["keys"], serde_json::json!(["topic"]));
    assert!(
        ev[2]["revisions"].get("mood").is_none(),
        "a removed key has none"
    );
    assert_eq!(ev[3]["scope"], "user");
    assert_eq!(ev[3]["target_user"], "alice");
    assert!(ev[3].get("channel").is_none());
}

#[tokio::test]
async fn locks_send_acquired_released_and_revoked() {
    let (url, r) = receiver().await;
    let mut config = WebhookConfig::new(url, SECRET);
    config.events = vec![
        "lock.acquired".into(),
        "lock.released".into(),
        "lock.revoked".into(),
    ];
    let (s, _) = server_with(config).await;
    let mut alice = s.raw_member("alice", "room").await;
    let mut bob = s.raw_member("bob", "room").await;
    let lock = |n: &str| (MESSAGE, "room".to_string(), n.to_string());
    let (ty, ch, name) = lock("pen");
    ok(
        &mut alice,
        client_message::Body::SetLock(pb::SetLockRequest {
            channel_type: ty,
            channel_name: ch.clone(),
            lock_name: name.clone(),
            ttl: 0,
        }),
    )
    .await;
    let acquire = || {
        client_message::Body::AcquireLock(pb::AcquireLockRequest {
            channel_type: ty,
            channel_name: ch.clone(),
            lock_name: name.clone(),
            retry: false,
        })
    };
    ok(&mut alice, acquire()).await;
    ok(
        &mut alice,
        client_message::Body::ReleaseLock(pb::ReleaseLockRequest {
            channel_type: ty,
            channel_name: ch.clone(),
            lock_name: name.clone(),
        }),
    )
    .await;
    ok(&mut alice, acquire()).await;
    // R155: bob revokes alice's lock.
    ok(
        &mut bob,
        client_message::Body::RevokeLock(pb::RevokeLockRequest {
            channel_type: ty,
            channel_name: ch.clone(),
            lock_name: name.clone(),
            owner: "alice".into(),
        }),
    )
    .await;
    assert!(
        eventually(STEP, || events_of(&r).len() == 4).await,
        "{:?}",
        events_of(&r)
    );
    let ev = events_of(&r);
    let got: Vec<(&str, &str, &str)> = ev
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap(),
                e["user_id"].as_str().unwrap(),
                e["by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("lock.acquired", "alice", "alice"),
            ("lock.released", "alice", "alice"),
            ("lock.acquired", "alice", "alice"),
            ("lock.revoked", "alice", "bob"),
        ]
    );
    for e in &ev {
        assert_eq!(e["lock"], "pen");
        assert_eq!(e["channel"], "room");
    }
}

/// R153: the owner's connection is lost and it does not come back within the lock's
/// ttl (10 s, the minimum, R150): `lock.expired` (and no `lock.released`), while its
/// session is still waiting for a resume (presence timeout 60 s).
#[tokio::test]
async fn a_lock_whose_owner_stays_away_past_its_ttl_expires() {
    let (url, r) = receiver().await;
    let mut config = WebhookConfig::new(url, SECRET);
    config.events = vec!["lock.expired".into(), "lock.released".into()];
    let (s, _) = server_with(config).await;
    let mut alice = s.raw().await;
    let reply = alice
        .request(client_message::Body::Login(login_request(
            "alice",
            "",
            vec![],
            60,
            "test",
        )))
        .await;
    assert!(
        matches!(reply, pb::server_message::Body::Login(_)),
        "{reply:?}"
    );
    alice.subscribe("room").await;
    ok(
        &mut alice,
        client_message::Body::SetLock(pb::SetLockRequest {
            channel_type: MESSAGE,
            channel_name: "room".into(),
            lock_name: "lease".into(),
            ttl: 10,
        }),
    )
    .await;
    ok(
        &mut alice,
        client_message::Body::AcquireLock(pb::AcquireLockRequest {
            channel_type: MESSAGE,
            channel_name: "room".into(),
            lock_name: "lease".into(),
            retry: false,
        }),
    )
    .await;
    let lost_at = tokio::time::Instant::now();
    alice.lose_connection().await;
    let found = || named(&r, "lock.expired").into_iter().next();
    assert!(
        eventually(Duration::from_secs(30), || found().is_some()).await,
        "lock.expired arrives; got {:?}",
        events_of(&r)
    );
    assert!(
        lost_at.elapsed() >= Duration::from_secs(10),
        "kept for its ttl first"
    );
    let e = found().unwrap();
    assert_eq!(
        (&e["user_id"], &e["lock"], &e["channel"]),
        (&"alice".into(), &"lease".into(), &"room".into()),
        "{e}"
    );
    assert!(named(&r, "lock.released").is_empty(), "{:?}", events_of(&r));
}

/// The server API's kick and ban, and a second login of the same user id (R28), each
/// send `user.kicked` with the close code; a ban also `user.banned`.
#[tokio::test]
async fn kicks_bans_and_same_uid_logins_send_user_kicked() {
    let (url, r) = receiver().await;
    let mut config = WebhookConfig::new(url, SECRET);
    config.events = vec!["user.kicked".into(), "user.banned".into()];
    let (s, http) = server_with(config).await;

    let _alice = s.raw_login("alice").await;
    let (status, json) = api_post(
        http,
        "/users/alice/kick",
        serde_json::json!({"reason": "be nice"}),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    let kicked = wait_for(&r, "user.kicked", "alice").await;
    assert_eq!(kicked["code"], "KICKED");
    assert_eq!(kicked["reason"], "be nice");

    let _bob = s.raw_login("bob").await;
    let (status, json) = api_post(
        http,
        "/users/bob/ban",
        serde_json::json!({"duration_secs": 60, "reason": "spam"}),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    let banned = wait_for(&r, "user.banned", "bob").await;
    assert_eq!(banned["reason"], "spam");
    assert_eq!(banned["until_ms"], json["until_ms"]);
    let kicked = wait_for(&r, "user.kicked", "bob").await;
    assert_eq!(kicked["code"], "KICKED");
    assert!(
        kicked["reason"].as_str().unwrap().contains("spam"),
        "{kicked}"
    );

    let _carol = s.raw_login("carol").await;
    let _carol_again = s.raw_login("carol").await;
    let kicked = wait_for(&r, "user.kicked", "carol").await;
    assert_eq!(kicked["code"], "SAME_UID_LOGIN");
    assert_eq!(named(&r, "user.kicked").len(), 3, "{:?}", events_of(&r));
}

/// Per-app webhooks: an app with its own receiver sends there only, with its own
/// secret and filter; an app with only a filter of its own keeps the server's
/// receiver; no app's event reaches another app's receiver.
#[tokio::test]
async fn each_app_s_events_go_to_its_own_receiver_only() {
    const OTHER_SECRET: &str = "whsec-other-app-9876543210";
    let (url, shared) = receiver().await;
    let (other_url, own) = receiver().await;
    let (s, _) = server_with_config(Some(WebhookConfig::new(url, SECRET)), |c| {
        for app in &mut c.apps {
            if app.id == OTHER_APP_ID {
                app.webhooks = Some(AppWebhooks {
                    url: Some(other_url.clone()),
                    secret: Some(OTHER_SECRET.into()),
                    events: Some(vec!["user.online".into(), "member.joined".into()]),
                    debounce_ms: None,
                });
            }
            if app.id == OPEN_APP_ID {
                app.webhooks = Some(AppWebhooks {
                    events: Some(vec!["user.online".into()]),
                    ..Default::default()
                });
            }
        }
    })
    .await;
    let mut alice = s.raw_member("alice", "room").await;
    let mut olga = s.raw().await;
    let reply = olga
        .login(
            OTHER_APP_ID,
            "olga",
            &token_with(OTHER_APP_ID, OTHER_CERT, "olga", 3600, now_secs()),
            60,
        )
        .await;
    assert!(
        matches!(reply, pb::server_message::Body::Login(_)),
        "{reply:?}"
    );
    olga.subscribe("room").await;
    let mut otto = s.raw().await;
    let reply = otto.login(OPEN_APP_ID, "otto", "", 60).await;
    assert!(
        matches!(reply, pb::server_message::Body::Login(_)),
        "{reply:?}"
    );
    otto.subscribe("room").await;
    // The last events of each: olga's join, otto's login (his join is filtered out),
    // alice's join.
    wait_for(&own, "member.joined", "olga").await;
    wait_for(&shared, "user.online", "otto").await;
    wait_for(&shared, "member.joined", "alice").await;
    // A marker behind otto's filtered events: alice leaves.
    ok(&mut alice, unsubscribe("room")).await;
    wait_for(&shared, "member.left", "alice").await;

    let own_events = events_of(&own);
    assert!(
        own_events.iter().all(|e| e["app_id"] == OTHER_APP_ID),
        "{own_events:?}"
    );
    let names: Vec<&str> = own_events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["user.online", "member.joined"], "its own filter");
    for g in own.got.lock().unwrap().iter() {
        verify_with(g, OTHER_SECRET);
        assert!(!signed_by(g, SECRET), "not the server's secret");
    }
    let shared_events = events_of(&shared);
    assert!(
        shared_events.iter().all(|e| e["app_id"] != OTHER_APP_ID),
        "{shared_events:?}"
    );
    let otto_events: Vec<&str> = shared_events
        .iter()
        .filter(|e| e["app_id"] == OPEN_APP_ID)
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(otto_events, ["user.online"], "the open app's own filter");
    assert!(has(
        &shared_events,
        "channel.occupied",
        "alice",
        Some("room")
    ));
    for g in shared.got.lock().unwrap().iter() {
        verify(g);
    }
}

/// A receiver nobody listens on: every event is retried, then given up or dropped
/// (counted), and the server serves logins, subscribes and publishes throughout.
#[tokio::test]
async fn a_dead_receiver_costs_counted_failures_never_service() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    let mut config = WebhookConfig::new(url, SECRET);
    config.events = vec!["user.online".into()];
    config.max_attempts = 2;
    config.initial_backoff = Duration::from_millis(10);
    config.queue = 2;
    let (s, http) = server_with(config).await;
    const USERS: usize = 12;
    let mut clients = Vec::new();
    for i in 0..USERS {
        let mut c = s.raw_member(&format!("user{i}"), "room").await;
        ok(&mut c, publish_text("room", "hello")).await;
        clients.push(c);
    }
    // Every event is accounted for: given up after its attempts, or dropped.
    assert!(
        eventually_async(STEP, || async {
            let failed = counter(http, "switchboard_webhook_failed_total", "default").await;
            let dropped = counter(http, "switchboard_webhook_dropped_total", "default").await;
            failed + dropped == USERS as f64
        })
        .await,
        "failed {} + dropped {} != {USERS}",
        counter(http, "switchboard_webhook_failed_total", "default").await,
        counter(http, "switchboard_webhook_dropped_total", "default").await
    );
    let failed = counter(http, "switchboard_webhook_failed_total", "default").await;
    assert!(failed >= 1.0);
    assert_eq!(
        counter(http, "switchboard_webhook_retries_total", "default").await,
        failed,
        "one retry per failed event (2 attempts)"
    );
    assert_eq!(
        counter(http, "switchboard_webhook_delivered_total", "default").await,
        0.0
    );
    for c in &mut clients {
        c.assert_alive().await;
    }
}

/// `[apps.webhooks]`: a url needs its secret, event names are checked, and `Debug`
/// never shows the secret.
#[test]
fn app_webhook_settings_are_checked_and_their_secret_never_shown() {
    let mut app = switchboard_server::AppConfig::new(APP_ID, None);
    app.webhooks = Some(AppWebhooks {
        url: Some("http://127.0.0.1:9/hook".into()),
        secret: Some("very-secret-value".into()),
        events: Some(vec!["member.joined".into()]),
        debounce_ms: Some(2000),
    });
    assert_eq!(switchboard_server::check_app_webhooks(&app), Ok(()));
    assert!(!format!("{app:?}").contains("very-secret-value"));
    let mut bad = app.clone();
    bad.webhooks.as_mut().unwrap().secret = None;
    assert!(
        switchboard_server::check_app_webhooks(&bad)
            .unwrap_err()
            .contains("secret")
    );
    let mut bad = app.clone();
    bad.webhooks.as_mut().unwrap().url = Some("ftp://x".into());
    assert!(switchboard_server::check_app_webhooks(&bad).is_err());
    let mut bad = app.clone();
    bad.webhooks.as_mut().unwrap().events = Some(vec!["channel.joined".into()]);
    assert!(
        switchboard_server::check_app_webhooks(&bad)
            .unwrap_err()
            .contains("unknown event")
    );
    let parsed: switchboard_server::AppConfig = serde_json::from_value(serde_json::json!({
        "id": APP_ID,
        "webhooks": {"url": "https://b.example/h", "secret": "s", "debounce_ms": 500}
    }))
    .expect("parses");
    assert_eq!(parsed.webhooks.unwrap().debounce_ms, Some(500));
    let typo = serde_json::from_value::<switchboard_server::AppConfig>(serde_json::json!({
        "id": APP_ID, "webhooks": {"uri": "x"}
    }));
    assert!(typo.is_err(), "an unknown key is refused");
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
    let dropped = || counter(http, "switchboard_webhook_dropped_total", "default");
    // 8 events: one in flight, the queue's two, the other five dropped.
    assert!(
        eventually_async(STEP, || async { dropped().await == 5.0 }).await,
        "dropped: {}",
        dropped().await
    );
    assert_eq!(r.got.lock().unwrap().len(), 1, "one request in flight");
}
