//! Issue 17: the web console's routes and the API endpoints it reads (stats, node,
//! channels, tail, users) over real HTTP against a real server with real WebSocket
//! clients. The pages themselves are driven in Chromium by
//! sdk/js/test/browser/console.test.mjs.

mod common;
mod http_support;

use common::*;
use http_support::{API_KEY, API_SECRET, HttpServer};
use serde_json::{Value, json};
use std::time::Duration;
use switchboard_protocol::ErrorCode;

/// An authorized GET of `/v1/apps/{APP_ID}{path}`: status and JSON.
async fn get(s: &HttpServer, path: &str) -> (u16, Value) {
    let r = s
        .client
        .get(s.url(&format!("/v1/apps/{APP_ID}{path}")))
        .basic_auth(API_KEY, Some(API_SECRET))
        .send()
        .await
        .expect("GET");
    let status = r.status().as_u16();
    (status, r.json().await.expect("a JSON body"))
}

fn code(json: &Value) -> i32 {
    json["code"].as_i64().expect("an error code") as i32
}

fn names(list: &Value, field: &str, name: &str) -> Vec<String> {
    list[field]
        .as_array()
        .expect("an array")
        .iter()
        .map(|c| c[name].as_str().expect("a name").to_string())
        .collect()
}

#[tokio::test]
async fn the_console_is_served_without_credentials_with_a_strict_csp() {
    let s = HttpServer::start().await;
    for path in ["/console", "/console/"] {
        let r = s.client.get(s.url(path)).send().await.expect("GET");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let h = r.headers().clone();
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
        assert_eq!(h["x-frame-options"], "DENY");
        let body = r.text().await.unwrap();
        assert!(body.contains(r#"src="/console/app.js""#), "{body}");
        // No CDN: nothing the page loads comes from elsewhere.
        assert!(!body.contains("http://") && !body.contains("https://"));
    }
    for (file, ty) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("chart.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ] {
        let r = s
            .client
            .get(s.url(&format!("/console/{file}")))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status().as_u16(), 200, "{file}");
        assert_eq!(r.headers()["content-type"], ty, "{file}");
        assert!(!r.text().await.unwrap().is_empty());
    }
    for missing in [
        "/console/nope.js",
        "/console/..%2Fmod.rs",
        "/console/index.html",
    ] {
        let (status, _) = s.get(missing).await;
        assert_eq!(status, 404, "{missing}");
    }
}

#[tokio::test]
async fn the_console_endpoints_take_only_the_apps_credentials() {
    let s = HttpServer::start().await;
    for path in [
        "/stats",
        "/node",
        "/channels",
        "/users",
        "/tail/message/room",
    ] {
        let r = s
            .client
            .get(s.url(&format!("/v1/apps/{APP_ID}{path}")))
            .basic_auth(API_KEY, Some(CERT))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let json: Value = r.json().await.unwrap();
        assert_eq!(code(&json), ErrorCode::Unauthorized.as_i32(), "{path}");
    }
}

#[tokio::test]
async fn stats_count_the_nodes_connections_sessions_and_publishes() {
    let s = HttpServer::start().await;
    let (status, json) = get(&s, "/stats").await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["connections"], 0);
    assert_eq!(json["app_sessions"], 0);
    let mut alice = s.ws.raw_login("alice").await;
    alice.subscribe("room").await;
    let _bob = s.ws.raw_login("bob").await;
    let (status, _) = s
        .post("/publish", json!({"channel": "room", "message": "hi"}))
        .await;
    assert_eq!(status, 200);
    let (_, json) = get(&s, "/stats").await;
    assert_eq!(json["connections"], 2);
    assert_eq!(json["sessions"], 2);
    assert_eq!(json["app_sessions"], 2);
    assert_eq!(json["subscriptions"]["message"], 1);
    assert_eq!(json["publishes_total"]["message"], 1);
    assert_eq!(json["deliveries_total"]["message"], 1);
    // The sampler's series: one sample a second, and it reaches the gauges' values.
    let seen = eventually_async(Duration::from_secs(10), || async {
        let (_, json) = get(&s, "/stats").await;
        json["series"]
            .as_array()
            .and_then(|a| a.last())
            .is_some_and(|l| l["connections"] == 2 && l["sessions"] == 2)
    })
    .await;
    assert!(seen, "a sample with 2 connections and 2 sessions");
}

#[tokio::test]
async fn node_info_masks_the_certificate_and_the_api_secret() {
    let s = HttpServer::start().await;
    let r = s
        .client
        .get(s.url(&format!("/v1/apps/{APP_ID}/node")))
        .basic_auth(API_KEY, Some(API_SECRET))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    assert!(!text.contains(API_SECRET), "{text}");
    assert!(!text.contains(CERT), "{text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["app"]["id"], APP_ID);
    assert_eq!(json["app"]["api_key"], API_KEY);
    assert_eq!(json["app"]["api_secret"], "********");
    assert_eq!(json["app"]["certificate"], "********");
    assert_eq!(json["app"]["limits"]["publish_rate_per_channel"], 0);
    assert_eq!(json["services"]["history"], true);
    // One node alone (the memory engine): one row, this node.
    assert_eq!(json["nodes"].as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(json["nodes"][0]["this"], true, "{json}");
    assert!(json["settings"]["max_connections"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn the_channel_list_pages_searches_counts_members_and_measures_rates() {
    let s = HttpServer::start().await;
    let mut alice = s.ws.raw_login("alice").await;
    let mut bob = s.ws.raw_login("bob").await;
    for c in ["room-b", "room-a", "other"] {
        alice.subscribe(c).await;
    }
    bob.subscribe("room-a").await;
    let (status, json) = get(&s, "/channels?limit=2").await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["total"], 3);
    assert_eq!(names(&json, "channels", "channel"), ["other", "room-a"]);
    assert_eq!(json["next_page"], "2");
    assert_eq!(json["channels"][1]["subscribers"], 2);
    assert_eq!(json["channels"][1]["channel_type"], "message");
    let (_, json) = get(&s, "/channels?limit=2&page=2").await;
    assert_eq!(names(&json, "channels", "channel"), ["room-b"]);
    assert_eq!(json["next_page"], "");
    let (_, json) = get(&s, "/channels?search=ROOM").await;
    assert_eq!(json["total"], 2);
    assert_eq!(names(&json, "channels", "channel"), ["room-a", "room-b"]);
    let (_, json) = get(&s, "/channels?channel_type=stream").await;
    assert_eq!(json["total"], 0);
    // Another app sees none of them.
    let r = s
        .client
        .get(s.url(&format!("/v1/apps/{OTHER_APP_ID}/channels")))
        .basic_auth(API_KEY, Some(API_SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // Rates: publications between two reads of the list, at least a second apart. The
    // offset counts the channel's events (the joins) too.
    let (_, json) = get(&s, "/channels?search=room-a").await;
    let before = json["channels"][0]["offset"].as_u64().unwrap();
    for i in 0..5 {
        let (status, _) = s
            .post(
                "/publish",
                json!({"channel": "room-a", "message": format!("m{i}")}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let measured = eventually_async(Duration::from_secs(10), || async {
        let (_, json) = get(&s, "/channels?search=room-a").await;
        json["channels"][0]["rate_per_s"].as_f64().unwrap_or(0.0) > 0.0
    })
    .await;
    assert!(measured, "room-a's rate measured");
    let (_, json) = get(&s, "/channels?search=room-a").await;
    assert_eq!(json["channels"][0]["offset"], before + 5);

    for (path, want) in [
        ("/channels?limit=0", ErrorCode::BadRequest),
        ("/channels?limit=201", ErrorCode::BadRequest),
        ("/channels?limit=x", ErrorCode::BadRequest),
        ("/channels?page=x", ErrorCode::BadRequest),
        ("/channels?channel_type=user", ErrorCode::InvalidChannelType),
    ] {
        let (status, json) = get(&s, path).await;
        assert_eq!(status, 400, "{path}: {json}");
        assert_eq!(code(&json), want.as_i32(), "{path}");
    }
}

#[tokio::test]
async fn the_tail_returns_the_publications_after_a_position() {
    let s = HttpServer::start().await;
    let mut alice = s.ws.raw_login("alice").await;
    alice.subscribe("room").await;
    // Without `since`: where the channel is now, nothing before.
    let (status, json) = get(&s, "/tail/message/room").await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["messages"], json!([]));
    let start = json["position"].as_str().unwrap().to_string();
    let (epoch, offset) = start.split_once(':').expect("EPOCH:OFFSET");
    let offset: u64 = offset.parse().unwrap();
    for m in ["one", "two"] {
        let (status, _) = s
            .post(
                "/publish",
                json!({"channel": "room", "message": m, "custom_type": "t", "publisher": "ops"}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let (_, json) = get(&s, &format!("/tail/message/room?since={start}")).await;
    assert_eq!(json["complete"], true);
    let texts: Vec<&str> = json["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one", "two"]);
    assert_eq!(json["messages"][0]["publisher"], "ops");
    assert_eq!(json["messages"][0]["kind"], "text");
    assert_eq!(json["messages"][1]["offset"], offset + 2);
    let next = json["position"].as_str().unwrap().to_string();
    assert_eq!(next, format!("{epoch}:{}", offset + 2));
    let (_, json) = get(&s, &format!("/tail/message/room?since={next}")).await;
    assert_eq!(json["messages"], json!([]));
    assert_eq!(json["position"], next);

    for (path, want) in [
        ("/tail/message/room?since=12", ErrorCode::BadRequest),
        ("/tail/message/room?since=a:b", ErrorCode::BadRequest),
        ("/tail/bogus/room", ErrorCode::InvalidChannelType),
    ] {
        let (status, json) = get(&s, path).await;
        assert_eq!(status, 400, "{path}: {json}");
        assert_eq!(code(&json), want.as_i32(), "{path}");
    }
    // R2: a channel name over 64 bytes is refused.
    let (status, json) = get(&s, &format!("/tail/message/{}", "x".repeat(65))).await;
    assert_eq!(status, 400, "{json}");
}

#[tokio::test]
async fn the_user_list_shows_the_apps_sessions_searched_and_paged() {
    let s = HttpServer::start().await;
    let mut alice = s.ws.raw_login("alice").await;
    alice.subscribe("room").await;
    let _bob = s.ws.raw_login("bob").await;
    let _carol = s.ws.raw_login("carol").await;
    let (status, json) = get(&s, "/users?limit=2").await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["total"], 3);
    assert_eq!(names(&json, "users", "user_id"), ["alice", "bob"]);
    assert_eq!(json["users"][0]["attached"], true);
    assert_eq!(json["users"][0]["subscriptions"], 1);
    assert!(!json["users"][0]["session_id"].as_str().unwrap().is_empty());
    assert_eq!(json["next_page"], "2");
    let (_, json) = get(&s, "/users?page=2").await;
    assert_eq!(names(&json, "users", "user_id"), ["carol"]);
    let (_, json) = get(&s, "/users?search=AR").await;
    assert_eq!(names(&json, "users", "user_id"), ["carol"]);
    // A kick removes the session from the list.
    let (status, _) = s.post("/users/bob/kick", json!({})).await;
    assert_eq!(status, 200);
    let gone = eventually_async(STEP, || async {
        let (_, json) = get(&s, "/users").await;
        json["total"] == 2
    })
    .await;
    assert!(gone, "bob gone from the list");
    let (status, json) = get(&s, "/users?limit=500").await;
    assert_eq!(status, 400, "{json}");
}
