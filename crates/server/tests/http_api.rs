//! Issue 16, step 2: the per-app server API over real HTTP against a real server, with
//! real WebSocket clients on the other side. Every rule is the WebSocket API's (the
//! handlers call the same feature cores), so these tests check the wiring and that a
//! rule's code comes back with a fitting HTTP status.

mod common;
mod http_support;

use common::*;
use http_support::{API_KEY, API_SECRET, HttpServer};
use serde_json::json;
use switchboard_protocol::pb::{self, client_message, server_message};
use switchboard_protocol::{DisconnectCode, ErrorCode};

/// The next MESSAGE push of `raw`.
async fn next_message(raw: &mut RawClient) -> pb::MessagePush {
    loop {
        let push = raw.next_push(STEP).await.expect("a push in time");
        if let Some(server_message::Body::Message(m)) = push.body {
            return m;
        }
    }
}

fn code(json: &serde_json::Value) -> i32 {
    json["code"].as_i64().expect("an error code") as i32
}

#[tokio::test]
async fn the_server_api_takes_only_the_apps_api_key_and_secret() {
    let s = HttpServer::start().await;
    let body = json!({"channel": "news", "message": "hi"});
    let (ok, _) = s.post("/publish", body.clone()).await;
    assert_eq!(ok, 200);

    // No credentials: 401, the JSON error, and a Basic challenge.
    let r = s
        .client
        .post(s.url(&format!("/v1/apps/{APP_ID}/publish")))
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let json: serde_json::Value = r.json().await.expect("JSON");
    assert_eq!(code(&json), ErrorCode::Unauthorized.as_i32());
    assert_eq!(json["operation"], "publish");

    for (key, secret) in [
        (API_KEY, "wrong-secret"),
        ("wrong-key", API_SECRET),
        // The app certificate is never a credential.
        (API_KEY, CERT),
        (APP_ID, CERT),
    ] {
        let (status, json) = s.post_as(key, secret, "/publish", body.clone()).await;
        assert_eq!(status, 401, "{key}:{secret}");
        assert_eq!(code(&json), ErrorCode::Unauthorized.as_i32());
    }

    // An app without an API key has no server API; another app's key does not open it.
    let r = s
        .client
        .post(s.url(&format!("/v1/apps/{OTHER_APP_ID}/publish")))
        .basic_auth(API_KEY, Some(API_SECRET))
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 401);

    // A malformed body is a JSON 400, not a plain-text rejection.
    let r = s
        .client
        .post(s.url(&format!("/v1/apps/{APP_ID}/publish")))
        .basic_auth(API_KEY, Some(API_SECRET))
        .body("{not json")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 400);
    let json: serde_json::Value = r.json().await.expect("JSON");
    assert_eq!(code(&json), ErrorCode::BadRequest.as_i32());
}

#[tokio::test]
async fn publish_reaches_channel_subscribers_and_users_with_the_websocket_rules() {
    let s = HttpServer::start().await;
    let mut alice = s.ws.raw_login("alice").await;
    alice.subscribe("news").await;
    let mut bob = s.ws.raw_login("bob").await;

    let (status, json) = s
        .post(
            "/publish",
            json!({"channel": "news", "message": "hello", "custom_type": "note",
                   "store_in_history": true}),
        )
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["channel"], "news");
    assert!(json["position"]["offset"].as_u64().is_some(), "{json}");
    let m = next_message(&mut alice).await;
    assert_eq!(&m.payload[..], b"hello");
    assert_eq!(m.publisher, "server");
    assert_eq!(m.custom_type, "note");
    assert_eq!(m.message_type, pb::MessageType::String as i32);

    // To a user, binary, under a publisher the backend names.
    let (status, json) = s
        .post(
            "/publish",
            json!({"channel_type": "user", "channel": "bob", "message_base64": "AAEC",
                   "publisher": "support"}),
        )
        .await;
    assert_eq!(status, 200, "{json}");
    let m = next_message(&mut bob).await;
    assert_eq!(&m.payload[..], &[0, 1, 2]);
    assert_eq!(m.publisher, "support");
    assert_eq!(m.message_type, pb::MessageType::Binary as i32);

    // The WebSocket rules, with their codes: R71 offline receiver (404), R63 payload
    // size, R2 channel names (` only with extended names), R65 custom type.
    let (status, json) = s
        .post(
            "/publish",
            json!({"channel_type": "user", "channel": "nobody", "message": "x"}),
        )
        .await;
    assert_eq!(status, 404, "{json}");
    assert_eq!(code(&json), ErrorCode::ChannelReceiverOffline.as_i32());
    let big = "x".repeat(32 * 1024 + 1);
    let (status, json) = s
        .post("/publish", json!({"channel": "news", "message": big}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        code(&json),
        ErrorCode::ChannelMessageLengthExceedLimitation.as_i32()
    );
    let (status, json) = s
        .post("/publish", json!({"channel": "a`b", "message": "x"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(code(&json), ErrorCode::InvalidChannelName.as_i32());
    let (status, json) = s
        .post(
            "/publish",
            json!({"channel": "news", "message": "x", "message_base64": "AA=="}),
        )
        .await;
    assert_eq!(status, 400, "{json}");

    // History kept the stored one (R72), read back over HTTP.
    let r = s
        .client
        .get(s.url(&format!("/v1/apps/{APP_ID}/history/message/news?count=10")))
        .basic_auth(API_KEY, Some(API_SECRET))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    let json: serde_json::Value = r.json().await.expect("JSON");
    let messages = json["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{json}");
    assert_eq!(messages[0]["message"], "hello");
    assert_eq!(messages[0]["publisher"], "server");
    assert_eq!(messages[0]["custom_type"], "note");
}

#[tokio::test]
async fn batch_publish_answers_each_message_on_its_own() {
    let s = HttpServer::start().await;
    let mut alice = s.ws.raw_login("alice").await;
    alice.subscribe("feed").await;
    let (status, json) = s
        .post(
            "/publish/batch",
            json!({"messages": [
                {"channel": "feed", "message": "one"},
                {"channel": "a`b", "message": "two"},
                {"channel": "feed", "message": "three"},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{json}");
    let results = json["results"].as_array().expect("results");
    assert_eq!(results.len(), 3, "{json}");
    assert!(
        results[0]["ok"].is_object() && results[2]["ok"].is_object(),
        "{json}"
    );
    assert_eq!(
        code(&results[1]["error"]),
        ErrorCode::InvalidChannelName.as_i32()
    );
    assert_eq!(&next_message(&mut alice).await.payload[..], b"one");
    assert_eq!(&next_message(&mut alice).await.payload[..], b"three");

    let too_many: Vec<_> = (0..101)
        .map(|i| json!({"channel": "feed", "message": format!("{i}")}))
        .collect();
    let (status, _) = s
        .post("/publish/batch", json!({"messages": too_many}))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn kick_ends_the_users_session_with_kicked_and_the_reason() {
    let s = HttpServer::start().await;
    let mut carol = s.ws.raw_login("carol").await;
    let (status, json) = s
        .post("/users/carol/kick", json!({"reason": "spamming the lobby"}))
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["sessions"], 1);
    let closing = carol.expect_closing(STEP).await;
    assert_eq!(closing.code, DisconnectCode::Kicked as u32);
    assert_eq!(closing.reason, "spamming the lobby");
    // Gone: a second kick finds nobody.
    let (status, json) = s.post("/users/carol/kick", json!({})).await;
    assert_eq!(status, 404, "{json}");
    assert_eq!(code(&json), ErrorCode::SessionNotFound.as_i32());
    assert_eq!(
        s.metric("switchboard_kicks_total", &[]).await,
        1.0,
        "the kick is counted"
    );
}

#[tokio::test]
async fn presence_who_now_and_where_now_see_websocket_members() {
    let s = HttpServer::start().await;
    let mut alice = s.ws.raw_login("alice").await;
    alice.subscribe("room").await;
    let mut bob = s.ws.raw_login("bob").await;
    bob.subscribe("room").await;
    let get = |path: String| {
        let s = &s;
        async move {
            let r = s
                .client
                .get(s.url(&format!("/v1/apps/{APP_ID}{path}")))
                .basic_auth(API_KEY, Some(API_SECRET))
                .send()
                .await
                .expect("GET");
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.expect("JSON"))
        }
    };
    let (status, json) = get("/presence/message/room?include_state=true".into()).await;
    assert_eq!(status, 200, "{json}");
    let mut users: Vec<&str> = json["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    users.sort();
    assert_eq!(users, ["alice", "bob"]);
    let (_, json) = get("/presence/message/room?include_users=false".into()).await;
    assert_eq!(json["total_occupancy"], 2);
    assert!(json["members"].as_array().unwrap().is_empty());

    let (status, json) = get("/users/alice/channels".into()).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(
        json["channels"],
        json!([{"channel_type": "message", "channel": "room"}])
    );

    // R125: presence takes MESSAGE or STREAM.
    let (status, json) = get("/presence/user/room".into()).await;
    assert_eq!(status, 400);
    assert_eq!(code(&json), ErrorCode::InvalidChannelType.as_i32());
}

#[tokio::test]
async fn metadata_set_update_get_remove_keep_the_revision_rules() {
    let s = HttpServer::start().await;
    let (status, json) = s
        .post(
            "/metadata/message/room/set",
            json!({"items": [{"key": "topic", "value": "rust"}, {"key": "mode", "value": "open"}],
                   "add_user_id": true}),
        )
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["total_count"], 2);
    let rev = json["major_revision"].as_i64().expect("revision");

    // R140: an outdated major revision is refused with 409.
    let (status, json) = s
        .post(
            "/metadata/message/room/update",
            json!({"items": [{"key": "topic", "value": "go"}], "major_revision": rev + 5}),
        )
        .await;
    assert_eq!(status, 409, "{json}");
    assert_eq!(code(&json), ErrorCode::StorageOutdatedRevision.as_i32());
    let (status, json) = s
        .post(
            "/metadata/message/room/update",
            json!({"items": [{"key": "topic", "value": "go"}], "major_revision": rev,
                   "add_user_id": true}),
        )
        .await;
    assert_eq!(status, 200, "{json}");

    // A WebSocket client reads what the backend wrote.
    let mut alice = s.ws.raw_login("alice").await;
    let reply = alice
        .request(client_message::Body::GetMetadata(pb::GetMetadataRequest {
            channel_type: pb::ChannelType::Message as i32,
            channel_name: "room".into(),
        }))
        .await;
    let server_message::Body::GetMetadata(got) = reply else {
        panic!("getChannelMetadata: {reply:?}")
    };
    let data = got.data.expect("data");
    let topic = data.items.iter().find(|i| i.key == "topic").expect("topic");
    assert_eq!(topic.value, "go");
    assert_eq!(topic.author_uid, "server");

    let (status, json) = s
        .post(
            "/metadata/message/room/remove",
            json!({"items": [{"key": "mode"}]}),
        )
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["total_count"], 1);
    let r = s
        .client
        .get(s.url(&format!("/v1/apps/{APP_ID}/metadata/message/room")))
        .basic_auth(API_KEY, Some(API_SECRET))
        .send()
        .await
        .expect("GET");
    let json: serde_json::Value = r.json().await.expect("JSON");
    assert_eq!(json["items"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["items"][0]["key"], "topic");

    // User metadata, and an unknown operation.
    let (status, json) = s
        .post(
            "/metadata/user/alice/set",
            json!({"items": [{"key": "tier", "value": "gold"}]}),
        )
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["channel_type"], "user");
    let (status, _) = s.post("/metadata/message/room/explode", json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn locks_are_listed_and_revoked_for_their_owner() {
    let s = HttpServer::start().await;
    let mut alice = s.ws.raw_login("alice").await;
    let reply = alice
        .request(client_message::Body::SetLock(pb::SetLockRequest {
            channel_type: pb::ChannelType::Message as i32,
            channel_name: "room".into(),
            lock_name: "mic".into(),
            ttl: 30,
        }))
        .await;
    assert!(
        matches!(reply, server_message::Body::SetLock(_)),
        "{reply:?}"
    );
    let reply = alice
        .request(client_message::Body::AcquireLock(pb::AcquireLockRequest {
            channel_type: pb::ChannelType::Message as i32,
            channel_name: "room".into(),
            lock_name: "mic".into(),
            retry: false,
        }))
        .await;
    assert!(
        matches!(reply, server_message::Body::AcquireLock(_)),
        "{reply:?}"
    );

    let list = || async {
        let r = s
            .client
            .get(s.url(&format!("/v1/apps/{APP_ID}/locks/message/room")))
            .basic_auth(API_KEY, Some(API_SECRET))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status().as_u16(), 200);
        r.json::<serde_json::Value>().await.expect("JSON")
    };
    let json = list().await;
    assert_eq!(
        json["locks"],
        json!([{"lock_name": "mic", "owner": "alice", "ttl": 30}])
    );

    let (status, json) = s
        .post("/locks/message/room/mic/revoke", json!({"owner": "alice"}))
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(list().await["locks"][0]["owner"], "");
    let (status, json) = s
        .post(
            "/locks/message/room/nosuchlock/revoke",
            json!({"owner": "alice"}),
        )
        .await;
    assert_eq!(status, 404, "{json}");
    assert_eq!(code(&json), ErrorCode::LockNotExist.as_i32());
}

#[tokio::test]
async fn issued_tokens_log_in_and_join() {
    let s = HttpServer::start().await;
    let (status, json) = s
        .post(
            "/tokens/rtm",
            json!({"user_id": "dave", "expire_seconds": 600}),
        )
        .await;
    assert_eq!(status, 200, "{json}");
    let token = json["token"].as_str().expect("token").to_string();
    assert!(json["expires_at"].as_u64().unwrap() > u64::from(now_secs()));
    let mut dave = s.ws.raw().await;
    let reply = dave.login(APP_ID, "dave", &token, 60).await;
    assert!(matches!(reply, server_message::Body::Login(_)), "{reply:?}");

    // The token is for dave only.
    let mut eve = s.ws.raw().await;
    let reply = eve.login(APP_ID, "eve", &token, 60).await;
    assert!(matches!(reply, server_message::Body::Error(_)), "{reply:?}");

    let (status, json) = s
        .post(
            "/tokens/rtc",
            json!({"channel": "stage", "user_id": "dave"}),
        )
        .await;
    assert_eq!(status, 200, "{json}");
    let rtc = json["token"].as_str().expect("token").to_string();
    let reply = dave
        .request(client_message::Body::Join(pb::JoinRequest {
            channel_name: "stage".into(),
            token: rtc,
            ..Default::default()
        }))
        .await;
    assert!(matches!(reply, server_message::Body::Join(_)), "{reply:?}");

    let (status, json) = s
        .post(
            "/tokens/rtm",
            json!({"user_id": "dave", "expire_seconds": 0}),
        )
        .await;
    assert_eq!(status, 400, "{json}");
    assert_eq!(code(&json), ErrorCode::InvalidParameter.as_i32());
}
