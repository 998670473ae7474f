//! Helpers for tests that drive the server through the Rust SDK (`switchboard-client`).

use super::proxy::FaultProxy;
use super::server::{APP_ID, CERT, STEP, TestServer, now_secs, token};
use super::wait::next_within;
use futures_util::StreamExt;
use std::time::Duration;
use switchboard_client::{
    ChannelType, Client, ClientConfig, ErrorCode, EventStream, JoinOptions, LinkState,
    LinkStateEvent, MessageEvent, Payload, PublishOptions, StreamChannel, SubscribeOptions,
    Subscription,
};
use switchboard_server::ServerConfig;
use switchboard_token::RtcRole;
use tokio::time::Instant;

/// Reads `events` until a change to `state`; panics after `timeout`.
pub async fn wait_link(
    events: &mut EventStream<LinkStateEvent>,
    state: LinkState,
    timeout: Duration,
) -> LinkStateEvent {
    let what = format!("link state {state:?}");
    wait_link_where(events, timeout, &what, |e| e.current_state == state).await
}

/// Reads `events` until one satisfies `wanted`; panics after `timeout`.
pub async fn wait_link_where(
    events: &mut EventStream<LinkStateEvent>,
    timeout: Duration,
    what: &str,
    wanted: impl Fn(&LinkStateEvent) -> bool,
) -> LinkStateEvent {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = next_within(events, left, what)
            .await
            .expect("link state stream ended")
            .expect("link state stream lagged");
        if wanted(&e) {
            return e;
        }
    }
}

/// The next item of an SDK event stream within [`STEP`]; panics on timeout, end or lag.
pub async fn next_event<T>(stream: &mut EventStream<T>, what: &str) -> T {
    next_within(stream, STEP, what)
        .await
        .unwrap_or_else(|| panic!("stream ended while waiting for {what}"))
        .unwrap_or_else(|e| panic!("stream lagged while waiting for {what}: {e}"))
}

/// The next message of a message stream; panics on timeout, end or lag.
pub async fn next_message(stream: &mut EventStream<MessageEvent>, what: &str) -> MessageEvent {
    next_event(stream, what).await
}

/// Asserts that `stream` yields nothing within `wait`: the window is what is tested
/// (something that must not come), not a wait for a state.
pub async fn assert_quiet<T: std::fmt::Debug>(
    stream: &mut EventStream<T>,
    wait: Duration,
    what: &str,
) {
    if let Ok(item) = tokio::time::timeout(wait, stream.next()).await {
        panic!("{what}: expected nothing, got {item:?}");
    }
}

/// Asserts that `stream` ends (yields `None`) within [`STEP`].
pub async fn assert_ends<T: std::fmt::Debug>(stream: &mut EventStream<T>, what: &str) {
    let item = next_within(stream, STEP, what).await;
    assert!(item.is_none(), "{what}: expected the end, got {item:?}");
}

/// Polls with USER-channel publishes from `from` until `user` is offline (−11033);
/// returns whether it went offline within [`STEP`], and the last result.
pub async fn wait_offline(from: &Client, user: &str) -> (bool, String) {
    let opts = PublishOptions {
        channel_type: ChannelType::User,
        ..Default::default()
    };
    let deadline = Instant::now() + STEP;
    loop {
        let r = from.publish(user, "?", opts.clone()).await;
        let done = matches!(&r, Err(e) if e.code == ErrorCode::ChannelReceiverOffline.as_i32());
        if done || Instant::now() > deadline {
            return (done, format!("{r:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The text of a payload; panics for a binary one.
pub fn text(p: &Payload) -> &str {
    match p {
        Payload::Text(s) => s,
        Payload::Binary(b) => panic!("expected a STRING payload, got BINARY {b:?}"),
    }
}

/// The text of a message event.
pub fn message_text(m: &MessageEvent) -> String {
    text(&m.message).to_string()
}

/// Publish options for a USER message.
pub fn to_user() -> PublishOptions {
    PublishOptions {
        channel_type: ChannelType::User,
        ..Default::default()
    }
}

/// Subscribes `client` to the MESSAGE channel `channel` with default options; panics
/// unless it succeeds.
pub async fn subscribed(client: &Client, channel: &str) -> Subscription {
    client
        .subscribe(channel, SubscribeOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{} subscribes {channel}: {e}", client.user_id()))
}

/// Server ranges that allow 1 s heartbeats and presence timeouts from 1 s.
pub fn short_timeouts(c: &mut ServerConfig) {
    c.heartbeat_interval_range = (1, 1800);
    c.presence_timeout_range = (1, 300);
}

/// No publish rate limit in any app (tests that publish in bulk).
pub fn no_publish_rate(c: &mut ServerConfig) {
    for app in &mut c.apps {
        app.limits.publish_rate_per_channel = 0;
    }
}

/// SDK settings that dial through `proxy`: 1 s heartbeats, presence timeout `presence`
/// s, a 2 s login timeout and fast reconnects (50–200 ms backoff).
pub fn proxied(server: &TestServer, proxy: &FaultProxy, presence: u32) -> ClientConfig {
    let mut c = server.client_config();
    c.endpoint = proxy.url();
    c.heartbeat_interval = 1;
    c.presence_timeout = presence;
    c.login_timeout = Duration::from_secs(2);
    c.reconnect_base_delay = Duration::from_millis(50);
    c.reconnect_max_delay = Duration::from_millis(200);
    c
}

/// An SDK client of [`APP_ID`] logged in with `config` and a valid token.
pub async fn login_with(user: &str, config: ClientConfig) -> Client {
    let c = Client::new(APP_ID, user, config).expect("valid client");
    c.login(&token(user))
        .await
        .unwrap_or_else(|e| panic!("{user} logs in: {e}"));
    c
}

/// An RTC token (publisher) of [`APP_ID`] to join `channel` as `user` for an hour.
pub fn rtc_for(channel: &str, user: &str) -> String {
    rtc_for_secs(channel, user, 3600)
}

/// An RTC token (publisher) of [`APP_ID`] to join `channel` as `user`, whose token and
/// join privilege last `secs` seconds from now.
pub fn rtc_for_secs(channel: &str, user: &str, secs: u32) -> String {
    switchboard_token::build_rtc_token(
        APP_ID,
        CERT,
        channel,
        user,
        RtcRole::Publisher,
        secs,
        secs,
        now_secs(),
    )
    .expect("RTC token builds")
}

/// The stream channel `name` of `client`, joined with `options` (token filled in by
/// [`rtc_for`]).
pub async fn join_stream(client: &Client, name: &str, options: JoinOptions) -> StreamChannel {
    let ch = client.stream_channel(name).expect("valid channel name");
    let options = JoinOptions {
        token: Some(rtc_for(name, client.user_id())),
        ..options
    };
    ch.join(options)
        .await
        .unwrap_or_else(|e| panic!("{} joins {name}: {e}", client.user_id()));
    ch
}

/// A link state event on one line, for assertion messages.
pub fn link_summary(e: &LinkStateEvent) -> String {
    format!(
        "{} {:?} {}→{} {} {} resumed={} gaps={:?} unrestored={:?} ({})",
        e.service_type,
        e.affected_channels,
        e.previous_state.as_str(),
        e.current_state.as_str(),
        e.operation.as_str(),
        e.reason_code.as_str(),
        e.is_resumed,
        e.gap_channels,
        e.unrestored_channels,
        e.reason
    )
}

/// Reads link events until one of `service` (`"MESSAGE"` or `"STREAM"`) reaches `state`.
pub async fn wait_service(
    links: &mut EventStream<LinkStateEvent>,
    service: &str,
    state: LinkState,
    timeout: Duration,
) -> LinkStateEvent {
    let what = format!("{service} link state {state:?}");
    wait_link_where(links, timeout, &what, |e| {
        e.service_type == service && e.current_state == state
    })
    .await
}

/// Publishes USER probes from `from` to `user` until one is refused with −11033 (its
/// session ended, R53); panics on any other error or after [`STEP`].
pub async fn wait_session_gone(from: &Client, user: &str) {
    let deadline = Instant::now() + STEP;
    loop {
        match from.publish(user, "probe", to_user()).await {
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::ChannelReceiverOffline.as_i32() => return,
            Err(e) => panic!("USER probe to {user}: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "{user}'s session still alive after {STEP:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
