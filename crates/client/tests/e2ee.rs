//! End-to-end encryption over a real server (api.md §2.2 `[decision]`, R19, R20): two
//! Rust clients with the same key exchange channel, USER and topic messages and read
//! encrypted history; a client without the key sees what the server relays — sealed
//! bytes, opened here with an independent AES-GCM/PBKDF2 to prove the format — and a
//! client with the wrong key gets the failure reported (−11023, `error_events()`) and
//! nothing delivered.

mod support;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use futures_util::{FutureExt, StreamExt};
use support::{OPEN_APP, TestServer, next};
use switchboard_client::{
    ChannelType, Client, ClientConfig, EncryptionMode, ErrorEvent, GetHistoryMessageOptions,
    JoinOptions, JoinTopicOptions, LinkState, MessageEvent, Payload, PublishOptions,
    PublishTopicOptions, SubscribeOptions,
};

const APP: &str = OPEN_APP;
const KEY: &str = "correct horse battery staple";
const SALT: &[u8] = b"switchboard e2ee test salt";

async fn start_server() -> TestServer {
    TestServer::start().await
}

async fn login(server: &TestServer, user: &str, key: Option<&str>) -> Client {
    let mut c = server.config();
    if let Some(key) = key {
        c = c.with_encryption(EncryptionMode::Aes256Gcm, key, SALT);
    }
    let client = Client::new(APP, user, c).expect("valid client");
    client.login("").await.expect("login");
    client
}

/// The bytes a keyless receiver got: the sealed payload (base64 text for STRING).
fn sealed_bytes(m: &MessageEvent) -> Vec<u8> {
    match &m.message {
        Payload::Text(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .expect("a sealed STRING travels as base64"),
        Payload::Binary(b) => b.to_vec(),
    }
}

/// Opens `nonce ‖ ciphertext ‖ tag` with a key derived here, independently of the SDK.
fn open_independently(sealed: &[u8]) -> Vec<u8> {
    let mut salt = [0u8; 32];
    salt[..SALT.len()].copy_from_slice(SALT);
    let mut okm = [0u8; 44];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(KEY.as_bytes(), &salt, 1000, &mut okm);
    let aes = Aes256Gcm::new_from_slice(&okm[..32]).expect("key");
    aes.decrypt(Nonce::from_slice(&sealed[..12]), &sealed[12..])
        .expect("opens with the derived key")
}

fn assert_relayed_sealed(m: &MessageEvent, plaintext: &[u8]) {
    let sealed = sealed_bytes(m);
    assert_eq!(sealed.len(), 12 + plaintext.len() + 16, "nonce ‖ ct ‖ tag");
    assert!(
        !sealed
            .windows(plaintext.len().max(1))
            .any(|w| w == plaintext),
        "the plaintext is not in what the server relays"
    );
    assert_eq!(open_independently(&sealed), plaintext);
}

fn text(p: &Payload) -> &str {
    match p {
        Payload::Text(s) => s,
        Payload::Binary(_) => panic!("expected text, got {p:?}"),
    }
}

/// R20: what the clients seal is relayed and stored (history) by the server as opaque
/// bytes — a client without the key gets them sealed, and they open with the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_channel_user_and_topic_messages_and_history() {
    let server = start_server().await;
    let alice = login(&server, "alice", Some(KEY)).await;
    let bob = login(&server, "bob", Some(KEY)).await;
    let eve = login(&server, "eve", None).await;

    // Channel messages: bob (the key) reads the plaintext, eve (no key) the sealed bytes.
    let mut bob_sub = bob
        .subscribe("room", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut eve_sub = eve
        .subscribe("room", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let (mut bob_msgs, mut eve_msgs) = (bob_sub.messages(), eve_sub.messages());
    let hello = "héllo, wörld 🌍";
    let stored = PublishOptions {
        store_in_history: true,
        ..Default::default()
    };
    alice
        .publish("room", hello, stored.clone())
        .await
        .expect("publish text");
    let blob: Vec<u8> = (0..=255u8).cycle().take(1024).collect();
    alice
        .publish("room", blob.clone(), stored)
        .await
        .expect("publish binary");
    let m = next(&mut bob_msgs, "bob's text").await;
    assert_eq!(
        text(&m.message),
        hello,
        "STRING stays STRING after decrypting"
    );
    assert_eq!(m.publisher, "alice");
    let m = next(&mut bob_msgs, "bob's binary").await;
    assert_eq!(m.message, Payload::Binary(blob.clone().into()));
    let m = next(&mut eve_msgs, "eve's text").await;
    assert!(
        matches!(m.message, Payload::Text(_)),
        "message type kept: STRING"
    );
    assert_relayed_sealed(&m, hello.as_bytes());
    let m = next(&mut eve_msgs, "eve's binary").await;
    assert!(
        matches!(m.message, Payload::Binary(_)),
        "message type kept: BINARY"
    );
    assert_relayed_sealed(&m, &blob);

    // USER messages: to bob (opened), and to eve (sealed).
    let mut bob_inbox = bob.user_messages();
    let mut eve_inbox = eve.user_messages();
    let opts = PublishOptions {
        channel_type: ChannelType::User,
        ..Default::default()
    };
    alice
        .publish("bob", "just for bob", opts.clone())
        .await
        .expect("USER publish");
    alice
        .publish("eve", "not for eve's eyes", opts)
        .await
        .expect("USER publish");
    let m = next(&mut bob_inbox, "bob's USER message").await;
    assert_eq!(text(&m.message), "just for bob");
    let m = next(&mut eve_inbox, "eve's USER message").await;
    assert_relayed_sealed(&m, b"not for eve's eyes");

    // Topic messages in a stream channel.
    let a_ch = alice.stream_channel("stage").expect("stream channel");
    a_ch.join(JoinOptions::default())
        .await
        .expect("alice joins");
    a_ch.join_topic("cursors", JoinTopicOptions::default())
        .await
        .expect("join topic");
    let mut followers = Vec::new();
    for c in [&bob, &eve] {
        let ch = c.stream_channel("stage").expect("stream channel");
        ch.join(JoinOptions::default()).await.expect("join");
        let r = ch
            .subscribe_topic("cursors", Some(vec!["alice".into()]))
            .await
            .expect("subscribe topic");
        assert_eq!(r.succeed_users, vec!["alice".to_string()]);
        followers.push(ch.messages());
    }
    a_ch.publish_topic_message("cursors", "x=10,y=20", PublishTopicOptions::default())
        .await
        .expect("publish topic message");
    let m = next(&mut followers[0], "bob's topic message").await;
    assert_eq!(
        (m.topic_name.as_str(), text(&m.message)),
        ("cursors", "x=10,y=20")
    );
    let m = next(&mut followers[1], "eve's topic message").await;
    assert_relayed_sealed(&m, b"x=10,y=20");

    // History stores what the server got (sealed) and bob's getMessages opens it.
    let page = bob
        .history()
        .get_messages(
            "room",
            ChannelType::Message,
            GetHistoryMessageOptions::default(),
        )
        .await
        .expect("getMessages");
    let got: Vec<Payload> = page
        .message_list
        .iter()
        .map(|m| m.message.clone())
        .collect();
    assert_eq!(
        got,
        vec![Payload::Binary(blob.into()), Payload::Text(hello.into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_reports_the_failure_and_delivers_nothing() {
    let server = start_server().await;
    let alice = login(&server, "alice", Some(KEY)).await;
    let mallory = login(&server, "mallory", Some("another key")).await;
    let mut errors = mallory.error_events();
    let mut events = mallory.events();
    let mut sub = mallory
        .subscribe("room", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut msgs = sub.messages();
    let mut inbox = mallory.user_messages();

    alice
        .publish("room", "secret plan", PublishOptions::default())
        .await
        .expect("publish");
    let e: ErrorEvent = next(&mut errors, "decrypt failure").await;
    assert_eq!(
        e.error.code, -11023,
        "RTM_ERROR_CHANNEL_ENCRYPT_MESSAGE_FAILED"
    );
    assert_eq!(e.error.operation, "decrypt");
    assert_eq!(
        (
            e.channel_type,
            e.channel_name.as_str(),
            e.publisher.as_str()
        ),
        (ChannelType::Message, "room", "alice")
    );
    alice
        .publish(
            "mallory",
            vec![1u8, 2, 3],
            PublishOptions {
                channel_type: ChannelType::User,
                ..Default::default()
            },
        )
        .await
        .expect("USER publish");
    let e = next(&mut errors, "USER decrypt failure").await;
    assert_eq!(
        (e.channel_type, e.publisher.as_str()),
        (ChannelType::User, "alice")
    );
    assert_eq!(e.error.code, -11023);

    // Each failure is reported where its message would have been delivered, so nothing
    // can still be on its way to the message streams: they must be empty now.
    assert!(
        msgs.next().now_or_never().is_none(),
        "no channel message delivered"
    );
    assert!(
        inbox.next().now_or_never().is_none(),
        "no USER message delivered"
    );
    while let Some(item) = events.next().now_or_never() {
        let e = item.expect("stream open").expect("not lagged");
        assert!(
            !matches!(e, switchboard_client::Event::Message(_)),
            "no message on events(): {e:?}"
        );
    }
    assert_eq!(
        mallory.link_state(),
        LinkState::Connected,
        "the link is unaffected"
    );
}

#[tokio::test]
async fn bad_encryption_settings_fail_the_constructor_with_10020() {
    // R19: a mode other than NONE needs a cipher key; a salt is at most 32 bytes.
    let base = ClientConfig::new("ws://127.0.0.1:9");
    let mut no_key = base.clone();
    no_key.encryption_mode = EncryptionMode::Aes128Gcm;
    let long_salt = base
        .clone()
        .with_encryption(EncryptionMode::Aes256Gcm, "k", vec![0u8; 33]);
    for config in [no_key, long_salt] {
        let e = Client::new(APP, "u", config).err().expect("refused");
        assert_eq!((e.code, e.operation.as_str()), (-10020, "new"));
    }
    let ok = base.with_encryption(EncryptionMode::Aes128Gcm, "k", vec![0u8; 32]);
    assert!(Client::new(APP, "u", ok).is_ok());
    assert!(
        !format!(
            "{:?}",
            ClientConfig::new("x").with_encryption(EncryptionMode::Aes128Gcm, "hunter2", b"")
        )
        .contains("hunter2"),
        "Debug hides the key"
    );
}
