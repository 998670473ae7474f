//! A bare protocol client for the load generator: one WebSocket per user, no SDK
//! machinery (no router, event bus, reconnect or per-client tasks). It logs in,
//! subscribes and publishes with `switchboard_protocol` framing, and decodes incoming
//! frames into [`LightServerMessage`], which skips every field the bench does not read.

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use switchboard_protocol::frame::{FrameDecoder, encode};
use switchboard_protocol::pb::{self, client_message::Body, server_message};
use tokio_tungstenite::tungstenite::Message;

/// The client side of one WebSocket.
pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Heartbeat period of raw clients (the server's default interval is 5 s; it declares
/// a connection lost after 7.5 s of silence).
pub(crate) const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// The fields of a `ServerMessage` the bench reads; prost skips the others, so a push
/// costs no string allocations.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LightServerMessage {
    /// Request id of a reply, 0 for a push.
    #[prost(uint32, tag = "1")]
    pub id: u32,
    /// A failed request.
    #[prost(message, optional, tag = "2")]
    pub error: Option<pb::Error>,
    /// A message push.
    #[prost(message, optional, tag = "100")]
    pub message: Option<LightPush>,
    /// The server is closing the connection.
    #[prost(message, optional, tag = "101")]
    pub closing: Option<pb::Closing>,
    /// A presence event (only its type and aggregate are read).
    #[prost(message, optional, tag = "103")]
    pub presence: Option<LightPresence>,
}

/// The parts of a `PresenceEvent` the presence scenario reads.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LightPresence {
    /// PresenceEventType.
    #[prost(int32, tag = "1")]
    pub event_type: i32,
    /// INTERVAL only.
    #[prost(message, optional, tag = "6")]
    pub interval: Option<LightInterval>,
}

/// The lists of an `IntervalDetail`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LightInterval {
    /// Users who joined.
    #[prost(string, repeated, tag = "1")]
    pub join: Vec<String>,
    /// Users who left.
    #[prost(string, repeated, tag = "2")]
    pub leave: Vec<String>,
}

/// The payload of a `MessagePush`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LightPush {
    /// Message payload.
    #[prost(bytes = "bytes", tag = "7")]
    pub payload: Bytes,
}

/// Decodes one binary frame; an undecodable frame yields an error item.
pub(crate) fn decode(frame: Bytes) -> FrameDecoder<LightServerMessage> {
    FrameDecoder::new(frame, usize::MAX)
}

/// A heartbeat without reply (id 0).
pub(crate) fn heartbeat() -> Message {
    Message::Binary(encode(&pb::ClientMessage {
        id: 0,
        body: Some(Body::Heartbeat(pb::Heartbeat {})),
    }))
}

/// The WebSocket URL for an endpoint, adding `/v1/ws` when it has no path.
pub(crate) fn ws_url(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    let after_scheme = e.split_once("://").map_or(e, |(_, rest)| rest);
    if after_scheme.contains('/') {
        e.to_string()
    } else {
        format!("{e}{}", switchboard_protocol::WS_PATH)
    }
}

/// One logged-in raw connection.
pub(crate) struct RawClient {
    /// The socket; owners read and write it directly in their loops.
    pub ws: Ws,
    next_id: u32,
}

impl RawClient {
    /// Connects and logs in as `user` (token minted from `cert` when given).
    pub async fn login(
        url: &str,
        app: &str,
        cert: Option<&str>,
        user: &str,
    ) -> anyhow::Result<RawClient> {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(
            ws_url(url),
            Some(switchboard_client::ws_config()),
            true,
        )
        .await
        .with_context(|| format!("{user}: connect to {url}"))?;
        let mut c = RawClient { ws, next_id: 1 };
        let token = match cert {
            Some(_) => super::setup::token(app, cert, user)?,
            // What the SDK sends for "no token" (token.md T61).
            None => app.to_string(),
        };
        let login = pb::LoginRequest {
            app_id: app.to_string(),
            user_id: user.to_string(),
            token,
            sdk: "switchboard-bench-raw".to_string(),
            ..Default::default()
        };
        c.request(Body::Login(login))
            .await
            .with_context(|| format!("{user}: login"))?;
        Ok(c)
    }

    /// Subscribes to a message channel with the default options.
    pub async fn subscribe(&mut self, channel: &str) -> anyhow::Result<()> {
        self.subscribe_with(channel, None).await
    }

    /// Subscribes to a message channel, with presence events or not (`None` = default).
    pub async fn subscribe_with(
        &mut self,
        channel: &str,
        with_presence: Option<bool>,
    ) -> anyhow::Result<()> {
        let req = pb::SubscribeRequest {
            channel_name: channel.to_string(),
            with_presence,
            ..Default::default()
        };
        self.request(Body::Subscribe(req))
            .await
            .with_context(|| format!("subscribe {channel}"))?;
        Ok(())
    }

    /// Joins a stream channel (RTC token minted from `cert` when given).
    pub async fn join(
        &mut self,
        app: &str,
        cert: Option<&str>,
        user: &str,
        channel: &str,
    ) -> anyhow::Result<()> {
        let token = match cert {
            Some(c) => switchboard_token::build_rtc_token(
                app,
                c,
                channel,
                user,
                switchboard_token::RtcRole::Publisher,
                86_400,
                86_400,
                (switchboard_protocol::now_ms() / 1000) as u32,
            )
            .map_err(|e| anyhow::anyhow!("rtc token: {e}"))?,
            None => app.to_string(),
        };
        let req = pb::JoinRequest {
            channel_name: channel.to_string(),
            token,
            with_presence: Some(false),
            ..Default::default()
        };
        self.request(Body::Join(req))
            .await
            .with_context(|| format!("join {channel}"))?;
        Ok(())
    }

    /// Becomes a publisher of `topic` in a joined stream channel.
    pub async fn join_topic(&mut self, channel: &str, topic: &str) -> anyhow::Result<()> {
        let req = pb::JoinTopicRequest {
            channel_name: channel.to_string(),
            topic_name: topic.to_string(),
            ..Default::default()
        };
        self.request(Body::JoinTopic(req))
            .await
            .with_context(|| format!("joinTopic {topic}"))?;
        Ok(())
    }

    /// Follows `users` in `topic`; fails unless every one succeeded.
    pub async fn subscribe_topic(
        &mut self,
        channel: &str,
        topic: &str,
        users: Vec<String>,
    ) -> anyhow::Result<()> {
        let req = pb::SubscribeTopicRequest {
            channel_name: channel.to_string(),
            topic_name: topic.to_string(),
            users,
        };
        match self.request(Body::SubscribeTopic(req)).await? {
            server_message::Body::SubscribeTopic(r) if r.failed.is_empty() => Ok(()),
            server_message::Body::SubscribeTopic(r) => {
                bail!("subscribeTopic {topic}: failed for {:?}", r.failed)
            }
            _ => bail!("subscribeTopic {topic}: unexpected reply"),
        }
    }

    /// The open-loop sender of the scenarios: on every `tick` until `stop`, sends
    /// `request(self, n)` (n = 0, 1, …), keeps heartbeats going, counts error replies,
    /// closings and a lost socket in `errors`, then [`RawClient::finish`]es. Returns how
    /// many requests it sent.
    pub async fn pump(
        mut self,
        mut tick: tokio::time::Interval,
        mut stop: tokio::sync::watch::Receiver<bool>,
        errors: &std::sync::atomic::AtomicU64,
        mut request: impl FnMut(&mut RawClient, u64) -> Message,
    ) -> u64 {
        let error = || {
            errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        };
        let mut sent = 0u64;
        let hb = heartbeat();
        let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let msg = request(&mut self, sent);
                    if self.ws.send(msg).await.is_err() {
                        error();
                        break;
                    }
                    sent += 1;
                }
                m = self.ws.next() => match m {
                    Some(Ok(Message::Binary(b))) => {
                        for m in decode(b) {
                            match m {
                                Ok(m) if m.error.is_none() && m.closing.is_none() => {}
                                _ => error(),
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => {
                        error();
                        break;
                    }
                },
                _ = beat.tick() => {
                    if self.ws.send(hb.clone()).await.is_err() {
                        error();
                        break;
                    }
                }
                _ = stop.changed() => break,
            }
        }
        let refused = self.finish().await;
        errors.fetch_add(refused, std::sync::atomic::Ordering::Relaxed);
        sent
    }

    /// Reads the replies still in flight (up to 2 s: until the reply to a heartbeat sent
    /// now, which comes after all of them), then logs out. Returns how many were
    /// failures. Without this a publisher that logs out at once may close its socket
    /// with unread data, which the kernel turns into a reset that discards its own last
    /// request before the server reads it (an unacknowledged publish, lost by the
    /// client, not the server).
    pub async fn finish(mut self) -> u64 {
        let id = self.take_id();
        let ping = Message::Binary(encode(&pb::ClientMessage {
            id,
            body: Some(Body::Heartbeat(pb::Heartbeat {})),
        }));
        let mut failed = 0;
        if self.ws.send(ping).await.is_ok() {
            let drain = tokio::time::sleep(std::time::Duration::from_secs(2));
            tokio::pin!(drain);
            'read: loop {
                tokio::select! {
                    m = self.ws.next() => match m {
                        Some(Ok(Message::Binary(b))) => {
                            for m in decode(b) {
                                match m {
                                    Ok(m) if m.id == id => break 'read,
                                    Ok(m) if m.error.is_none() && m.closing.is_none() => {}
                                    _ => failed += 1,
                                }
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                    _ = &mut drain => break,
                }
            }
        }
        self.logout().await;
        failed
    }

    /// A binary topic message request frame.
    pub fn publish_topic(&mut self, channel: &str, topic: &str, payload: Vec<u8>) -> Message {
        let id = self.take_id();
        Message::Binary(encode(&pb::ClientMessage {
            id,
            body: Some(Body::PublishTopicMessage(pb::PublishTopicMessageRequest {
                channel_name: channel.to_string(),
                topic_name: topic.to_string(),
                message_type: pb::MessageType::Binary as i32,
                payload: payload.into(),
                ..Default::default()
            })),
        }))
    }

    /// A subscribe (with `presence`) or unsubscribe request frame for `channel`.
    pub fn toggle(&mut self, channel: &str, subscribe: bool) -> Message {
        let id = self.take_id();
        let body = if subscribe {
            Body::Subscribe(pb::SubscribeRequest {
                channel_name: channel.to_string(),
                with_presence: Some(false),
                ..Default::default()
            })
        } else {
            Body::Unsubscribe(pb::UnsubscribeRequest {
                channel_name: channel.to_string(),
            })
        };
        Message::Binary(encode(&pb::ClientMessage {
            id,
            body: Some(body),
        }))
    }

    /// A binary publish request frame (the reply comes back with the returned id > 0).
    pub fn publish(&mut self, user_channel: bool, channel: &str, payload: Vec<u8>) -> Message {
        let id = self.take_id();
        let channel_type = if user_channel {
            pb::ChannelType::User
        } else {
            pb::ChannelType::Message
        };
        Message::Binary(encode(&pb::ClientMessage {
            id,
            body: Some(Body::Publish(pb::PublishRequest {
                channel_type: channel_type as i32,
                channel_name: channel.to_string(),
                message_type: pb::MessageType::Binary as i32,
                payload: payload.into(),
                ..Default::default()
            })),
        }))
    }

    /// Logs out (ending the session at once) and closes; errors are ignored.
    pub async fn logout(mut self) {
        let id = self.take_id();
        let msg = Message::Binary(encode(&pb::ClientMessage {
            id,
            body: Some(Body::Logout(pb::LogoutRequest {})),
        }));
        let _ = self.ws.send(msg).await;
        let _ = self.ws.close(None).await;
    }

    /// A request frame with a fresh id, and that id (its reply carries it).
    pub fn message(&mut self, body: Body) -> (u32, Message) {
        let id = self.take_id();
        let msg = Message::Binary(encode(&pb::ClientMessage {
            id,
            body: Some(body),
        }));
        (id, msg)
    }

    fn take_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Sends a request and waits for its reply; pushes before the reply are dropped
    /// (the scenarios send nothing to a client before it is set up).
    async fn request(&mut self, body: Body) -> anyhow::Result<server_message::Body> {
        let id = self.take_id();
        let frame = encode(&pb::ClientMessage {
            id,
            body: Some(body),
        });
        self.ws.send(Message::Binary(frame)).await?;
        loop {
            let msg = self
                .ws
                .next()
                .await
                .context("connection closed before the reply")??;
            let Message::Binary(b) = msg else { continue };
            for m in FrameDecoder::<pb::ServerMessage>::new(b, usize::MAX) {
                let m = m?;
                if m.id != id {
                    continue;
                }
                return match m.body {
                    Some(server_message::Body::Error(e)) => {
                        bail!("error {}: {}", e.code, e.reason)
                    }
                    Some(b) => Ok(b),
                    None => bail!("empty reply"),
                };
            }
        }
    }
}
