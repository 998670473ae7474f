//! Issue 21's SDK items over a real server: the `token` event beside
//! tokenPrivilegeWillExpire (R38, api.md §9.8), publishes kept while reconnecting (R59),
//! and the §3 response objects of logout, subscribe, unsubscribe and renewToken.

mod support;

use std::time::Duration;
use support::*;
use switchboard_client::{
    ChannelType, Client, JoinOptions, LinkState, Payload, PublishOptions, SubscribeOptions,
    TokenEventType,
};

/// Waits on `links` until the login link is in `state`.
async fn wait_link(
    links: &mut switchboard_client::EventStream<switchboard_client::LinkStateEvent>,
    state: LinkState,
) {
    loop {
        let l = next(links, "link state").await;
        if l.service_type == "MESSAGE" && l.current_state == state {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r38_token_event_comes_with_every_will_expire_notice() {
    let server = TestServer::start().await;
    let alice = Client::new(APP, "alice", server.config()).expect("client");
    let mut notices = alice.token_events();
    let mut tokens = alice.token_notices();
    // Less than 30 s left: the will-expire notice comes at once (T54).
    alice.login(&token("alice", 4)).await.expect("login");
    assert_eq!(next(&mut notices, "tokenPrivilegeWillExpire").await, None);
    let t = next(&mut tokens, "token event").await;
    assert_eq!(t.event_type, TokenEventType::WillExpire, "R38");
    assert_eq!(t.event_type.as_str(), "WILL_EXPIRE");
    assert!(
        t.affected_resources.message_channels.is_empty(),
        "the login token names no channel"
    );
    assert!(t.timestamp > 0);

    // A stream channel's RTC token: the token event names the channel (R39, [decision]).
    let arena = alice.stream_channel("arena").expect("channel");
    let options = JoinOptions {
        token: Some(rtc_token("arena", "alice", 20)),
        ..Default::default()
    };
    arena.join(options).await.expect("join");
    assert_eq!(
        next(&mut notices, "RTC will-expire").await,
        Some("arena".to_string())
    );
    let t = next(&mut tokens, "RTC token event").await;
    assert_eq!(
        (t.event_type, t.affected_resources.message_channels),
        (TokenEventType::WillExpire, vec!["arena".to_string()])
    );

    // The login token expires: the session ends, and a `token` event says so (§9.8).
    let t = next(&mut tokens, "token event at expiry").await;
    assert_eq!(t.event_type, TokenEventType::WillExpire);
    assert!(t.affected_resources.message_channels.is_empty());
    assert_eq!(
        alice.link_state(),
        LinkState::Failed,
        "the expiry ended the session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r59_publishes_are_kept_while_reconnecting_and_sent_when_the_link_is_back() {
    let server = TestServer::start().await;
    let relay = Relay::start(&server.addr).await;
    let bob = login(server.config(), "bob").await;
    let mut sub = bob
        .subscribe("room", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut room = sub.messages();
    let mut inbox = bob.user_messages();

    let alice = login(support::config_for(&relay.endpoint), "alice").await;
    let mut links = alice.link_state_events();
    relay.set_up(false);
    relay.cut();
    wait_link(&mut links, LinkState::Disconnected).await;
    // The relay refuses connections: the link cannot be back before we let it.
    assert_ne!(alice.link_state(), LinkState::Connected);
    let (a1, a2) = (alice.clone(), alice.clone());
    let channel_publish = tokio::spawn(async move {
        a1.publish("room", "sent while down", PublishOptions::default())
            .await
    });
    let user_publish = tokio::spawn(async move {
        let to_bob = PublishOptions {
            channel_type: ChannelType::User,
            ..Default::default()
        };
        a2.publish("bob", "direct, while down", to_bob).await
    });
    relay.set_up(true);
    let r = channel_publish
        .await
        .expect("task")
        .expect("kept, then sent (R59)");
    assert_eq!(r.channel_name, "room");
    user_publish
        .await
        .expect("task")
        .expect("USER publish kept, then sent (R59)");
    let m = next(&mut room, "the kept channel message").await;
    assert_eq!(m.message, Payload::Text("sent while down".into()));
    let m = next(&mut inbox, "the kept USER message").await;
    assert_eq!(m.message, Payload::Text("direct, while down".into()));
    assert_eq!(alice.link_state(), LinkState::Connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r59_a_kept_publish_times_out_with_11026_and_not_logged_in_fails_at_once() {
    let server = TestServer::start().await;
    let relay = Relay::start(&server.addr).await;
    let mut config = support::config_for(&relay.endpoint);
    config.request_timeout = Duration::from_millis(800);
    let alice = login(config, "alice").await;
    let mut links = alice.link_state_events();
    relay.set_up(false);
    relay.cut();
    wait_link(&mut links, LinkState::Disconnected).await;
    let e = alice
        .publish("room", "never sent", PublishOptions::default())
        .await
        .expect_err("the link never came back");
    assert_eq!(
        e.code, -11026,
        "RTM_ERROR_CHANNEL_PUBLISH_MESSAGE_TIMEOUT, not -10025"
    );
    alice.logout().await.expect("logout");
    let e = alice
        .publish("room", "x", PublishOptions::default())
        .await
        .expect_err("not logged in");
    assert_eq!(e.code, -10002, "R24: at once, not kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn section3_responses_of_subscribe_unsubscribe_renew_token_and_logout() {
    let server = TestServer::start().await;
    let alice = login(server.config(), "alice").await;
    let before = switchboard_protocol::now_ms();
    let sub = alice
        .subscribe("room", SubscribeOptions::default())
        .await
        .expect("subscribe");
    assert_eq!(
        sub.response().channel_name,
        "room",
        "§3.4 SubscribeResponse"
    );
    assert!(sub.response().timestamp + 1000 >= before);
    let r = alice
        .renew_token(&token("alice", 3600))
        .await
        .expect("renew");
    assert!(r.timestamp + 1000 >= before, "§3.7 RenewTokenResponse");
    let r = alice.unsubscribe("room").await.expect("unsubscribe");
    assert_eq!(r.channel_name, "room", "§3.5 UnsubscribeResponse");
    assert!(r.timestamp + 1000 >= before);
    let r = alice.logout().await.expect("logout");
    assert!(r.timestamp + 1000 >= before, "§3.2 LogoutResponse");
    // Logging out when logged out resolves at once, with a timestamp too.
    assert!(alice.logout().await.expect("logout again").timestamp >= r.timestamp);
}
