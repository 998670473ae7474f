//! Issue 16, step 1: the HTTP side's health endpoints and `/metrics` over real HTTP
//! against a real server, with real WebSocket traffic moving the counters.

mod common;
mod http_support;

use common::*;
use http_support::{HttpServer, sample};
use switchboard_protocol::ErrorCode;
use switchboard_protocol::pb::server_message;

#[tokio::test]
async fn healthz_and_readyz_answer_and_unknown_paths_are_json_404s() {
    let s = HttpServer::start().await;
    let (status, body) = s.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json["status"], "ok");

    // Ready: the broker answered a position read and the store a metadata read.
    let (status, body) = s.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json["status"], "ok", "{json}");

    let (status, body) = s.get("/no/such/thing").await;
    assert_eq!(status, 404, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json["code"], ErrorCode::BadRequest.as_i32());
    assert!(json["reason"].as_str().unwrap().contains("/no/such/thing"));

    // The WebSocket port does not serve the HTTP side, and vice versa.
    let r = s
        .client
        .get(format!("http://{}/healthz", s.ws.addr))
        .send()
        .await;
    assert!(r.map(|r| r.status().as_u16()).unwrap_or(0) != 200);
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_move_with_the_traffic() {
    let s = HttpServer::start().await;
    let before = s.metrics().await;
    for name in [
        "switchboard_connections",
        "switchboard_sessions",
        "switchboard_logins_total",
        "switchboard_subscriptions",
        "switchboard_publishes_total",
        "switchboard_deliveries_total",
        "switchboard_slow_consumer_disconnects_total",
        "switchboard_resumes_total",
        "switchboard_resume_gap_channels_total",
    ] {
        assert!(
            before.samples.iter().any(|x| x.metric == name),
            "{name} is exposed"
        );
    }
    assert_eq!(sample(&before, "switchboard_sessions", &[]), 0.0);

    // A refused login, counted by its reason (the code the client got).
    let mut bad = s.ws.raw().await;
    let reply = bad
        .login(
            APP_ID,
            "mallory",
            &token_with(APP_ID, WRONG_CERT, "mallory", 3600, now_secs()),
            60,
        )
        .await;
    let server_message::Body::Error(e) = reply else {
        panic!("a wrong certificate's token is refused: {reply:?}")
    };
    let reason = ErrorCode::from_i32(e.code).expect("a known code").name();

    let mut alice = s.ws.raw_login("alice").await;
    let mut bob = s.ws.raw_login("bob").await;
    alice.subscribe("room").await;
    for i in 0..3 {
        let reply = bob.request(publish_text("room", &format!("m{i}"))).await;
        assert!(
            matches!(reply, server_message::Body::Publish(_)),
            "{reply:?}"
        );
    }
    for _ in 0..3 {
        alice.next_push(STEP).await.expect("a delivery");
    }

    let after = s.metrics().await;
    let m = |name: &str, labels: &[(&str, &str)]| sample(&after, name, labels);
    assert_eq!(
        m("switchboard_login_failures_total", &[("reason", reason)]),
        1.0
    );
    assert_eq!(m("switchboard_logins_total", &[]), 2.0);
    assert_eq!(m("switchboard_sessions", &[]), 2.0);
    assert!(m("switchboard_connections", &[]) >= 2.0);
    assert!(m("switchboard_connections_opened_total", &[]) >= 3.0);
    assert_eq!(
        m("switchboard_subscriptions", &[("channel_type", "message")]),
        1.0
    );
    assert_eq!(
        m(
            "switchboard_publishes_total",
            &[("channel_type", "message")]
        ),
        3.0
    );
    assert_eq!(
        m(
            "switchboard_deliveries_total",
            &[("channel_type", "message")]
        ),
        3.0
    );

    // Leaving moves the gauges back; the logout is counted by its code.
    let reply = alice
        .request(switchboard_protocol::pb::client_message::Body::Logout(
            Default::default(),
        ))
        .await;
    assert!(
        matches!(reply, server_message::Body::Logout(_)),
        "{reply:?}"
    );
    let mut settled = false;
    for _ in 0..200 {
        let now = s.metrics().await;
        if sample(&now, "switchboard_sessions", &[]) == 1.0
            && sample(
                &now,
                "switchboard_subscriptions",
                &[("channel_type", "message")],
            ) == 0.0
            && sample(&now, "switchboard_disconnects_total", &[("code", "LOGOUT")]) == 1.0
        {
            settled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        settled,
        "sessions, subscriptions and disconnects follow the logout"
    );
}

#[tokio::test]
async fn each_server_counts_only_its_own_traffic() {
    let (a, b) = (HttpServer::start().await, HttpServer::start().await);
    let mut bob = a.ws.raw_login("bob").await;
    let reply = bob.request(publish_text("lonely", "hi")).await;
    assert!(
        matches!(reply, server_message::Body::Publish(_)),
        "{reply:?}"
    );
    assert_eq!(
        a.metric(
            "switchboard_publishes_total",
            &[("channel_type", "message")]
        )
        .await,
        1.0
    );
    assert_eq!(
        b.metric(
            "switchboard_publishes_total",
            &[("channel_type", "message")]
        )
        .await,
        0.0
    );
    assert_eq!(b.metric("switchboard_logins_total", &[]).await, 0.0);
}

#[tokio::test]
async fn resumes_count_recovered_and_gap_channels_as_the_reply_reports_them() {
    use switchboard_protocol::pb::{self, client_message};
    let s = HttpServer::start().await;
    let mut first = s.ws.raw().await;
    let reply = first.login(APP_ID, "alice", &token("alice"), 60).await;
    let server_message::Body::Login(login) = reply else {
        panic!("login: {reply:?}")
    };
    let room = first.subscribe("room").await.position.expect("position");
    let other = first.subscribe("other").await.position.expect("position");
    let mut bob = s.ws.raw_login("bob").await;
    for i in 0..2 {
        let reply = bob.request(publish_text("room", &format!("m{i}"))).await;
        assert!(
            matches!(reply, server_message::Body::Publish(_)),
            "{reply:?}"
        );
    }
    let at = |name: &str, position: pb::StreamPosition| pb::ChannelPosition {
        channel_type: pb::ChannelType::Message as i32,
        channel_name: name.into(),
        topic_name: String::new(),
        position: Some(position),
    };
    // "other" from a position of another epoch: its log cannot cover it, a gap.
    let stale = pb::StreamPosition {
        epoch: other.epoch.wrapping_add(1),
        offset: other.offset + 1000,
    };
    let mut second = s.ws.raw().await;
    let reply = second
        .request(client_message::Body::Login(pb::LoginRequest {
            app_id: APP_ID.into(),
            user_id: "alice".into(),
            token: token("alice"),
            heartbeat_interval: 60,
            session_id: login.session_id.clone(),
            positions: vec![at("room", room), at("other", stale)],
            ..Default::default()
        }))
        .await;
    let server_message::Body::Login(resumed) = reply else {
        panic!("resume: {reply:?}")
    };
    assert!(resumed.resumed);
    assert!(!resumed.gap_channels.is_empty(), "{resumed:?}");

    let now = s.metrics().await;
    assert_eq!(sample(&now, "switchboard_resumes_total", &[]), 1.0);
    assert_eq!(
        sample(&now, "switchboard_resume_gap_channels_total", &[]),
        resumed.gap_channels.len() as f64
    );
    assert!(sample(&now, "switchboard_resume_recovered_channels_total", &[]) >= 1.0);
    assert_eq!(sample(&now, "switchboard_logins_total", &[]), 3.0);
    // Still one session for alice (and bob's).
    assert_eq!(sample(&now, "switchboard_sessions", &[]), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_disconnect_is_counted() {
    const SIZE: usize = 16 * 1024;
    let s = HttpServer::start_with(|c| {
        c.outbound_queue_bytes = 64 * 1024;
        c.write_timeout = std::time::Duration::from_secs(30);
    })
    .await;
    // Subscribes, then reads nothing.
    let mut slow = s.ws.raw_login("slow").await;
    slow.subscribe("firehose").await;
    let mut publisher = s.ws.raw_login("publisher").await;
    let payload = bytes::Bytes::from(vec![0x5au8; SIZE]);
    let mut counted = false;
    // Far more than the queue, the socket buffers and the reader's window together.
    for i in 0..4_000 {
        let reply = publisher
            .request(publish_body(
                switchboard_protocol::pb::ChannelType::Message,
                "firehose",
                switchboard_protocol::pb::MessageType::Binary,
                payload.clone(),
            ))
            .await;
        assert!(
            matches!(reply, server_message::Body::Publish(_)),
            "{reply:?}"
        );
        if i % 50 == 49
            && s.metric("switchboard_slow_consumer_disconnects_total", &[])
                .await
                == 1.0
        {
            counted = true;
            break;
        }
    }
    assert!(counted, "the slow consumer was closed and counted");
    assert_eq!(
        s.metric(
            "switchboard_disconnects_total",
            &[("code", "SLOW_CONSUMER")]
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn the_http_side_stops_with_the_server() {
    let s = HttpServer::start().await;
    assert_eq!(s.get("/healthz").await.0, 200);
    let HttpServer {
        ws, http, client, ..
    } = s;
    ws.shutdown()
        .await
        .expect("run returns with the HTTP side on");
    let after = client.get(format!("http://{http}/healthz")).send().await;
    assert!(after.is_err(), "nothing listens any more: {after:?}");
}
