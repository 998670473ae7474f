//! The connection task: one per login. It owns the socket, numbers requests and
//! matches replies, batches queued requests into one frame, sends heartbeats every half
//! interval and, when the link has been quiet for a quarter of the link-loss timeout, a
//! probe heartbeat; declares the link lost when a heartbeat goes unanswered for the
//! link-loss timeout (4 s by default, R46) or after 1.5 heartbeat intervals without
//! server traffic, and
//! hands pushes to the router (messages, topic, presence, storage and lock events wait
//! for room: lossless). Every positioned push advances its channel's position (stream
//! channels included; a lock EXPIRED the user's own inbox), and one the app already has
//! is dropped; SNAPSHOTs are not publications and do neither, and user-metadata storage
//! events carry no position. With end-to-end encryption on, message payloads are opened
//! here; one that does not open is consumed and reported as an `ErrorEvent`.

use crate::crypto::Cipher;
use crate::decode::{lock_event, message_event, presence_event, storage_event, topic_event};
use crate::positions::{Positions, advance};
use crate::router::{Extra, Router};
use crate::transport::Stream;
use crate::types::{
    ChannelType, ErrorEvent, Event, LockEventType, MessageEvent, PresenceEventType, RtmError,
    StorageEventType, TopicEventType,
};
use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use switchboard_protocol::pb::{
    self, ClientMessage, ServerMessage, client_message, server_message,
};
use switchboard_protocol::{DisconnectCode, ErrorCode, frame};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// WebSocket settings of the SDK's connections: an 8 KiB read buffer. tungstenite's
/// default of 128 KiB is zeroed again before every read, which cost a receiving client
/// more CPU than everything else it did (bench fanout's load generator: 35 % in
/// `memset`).
pub fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(8 * 1024)
}

/// The reply a request waits for.
pub(crate) type ReplyTx = oneshot::Sender<Result<server_message::Body, RtmError>>;

/// One request handed to the connection task.
pub(crate) struct Request {
    pub body: client_message::Body,
    pub op: &'static str,
    pub reply: Option<ReplyTx>,
}

/// How the connection ended.
#[derive(Debug, Clone)]
pub(crate) enum Ended {
    /// The server sent `Closing` with this code and reason.
    Closed(DisconnectCode, String),
    /// No traffic from the server within the keep-alive timeout.
    KeepAliveTimeout,
    /// The socket failed or closed without a `Closing`.
    ConnectionLost,
    /// The client asked for it (logout or drop).
    ByClient,
}

type Ws = WebSocketStream<Stream>;

/// Called with a `ChannelLeft` push (the server left a stream channel for the client).
pub(crate) type OnChannelLeft = Box<dyn Fn(pb::ChannelLeft) + Send + Sync>;

/// What a connection task works with besides its socket and request queue.
pub(crate) struct Context {
    /// Where pushes go.
    pub router: Arc<Router>,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// How long a ping may go unanswered before the link counts as lost (R46).
    pub link_loss_timeout: Duration,
    /// Last positions handed to the app.
    pub positions: Positions,
    /// This client's user id (the key of its USER inbox).
    pub user_id: String,
    /// Called with a `ChannelLeft` push.
    pub on_channel_left: OnChannelLeft,
    /// Opens received message payloads when end-to-end encryption is on.
    pub cipher: Option<Arc<Cipher>>,
}

/// The error event of a received message whose payload did not decrypt (`why`).
fn decrypt_failure(e: &MessageEvent, why: String) -> ErrorEvent {
    ErrorEvent {
        error: RtmError::new(
            ErrorCode::ChannelEncryptMessageFailed,
            "decrypt",
            format!("a received payload did not decrypt: {why}"),
        ),
        channel_type: e.channel_type,
        channel_name: e.channel_name.clone(),
        topic_name: e.topic_name.clone(),
        publisher: e.publisher.clone(),
        timestamp: e.timestamp,
        position: e.position,
    }
}

/// The requests a connection sent and got no reply to before it ended, and its queue
/// of requests never sent: settled by the caller only once it has reported the end
/// (the link event comes first).
pub(crate) struct Unanswered {
    sent: Vec<(ReplyTx, &'static str)>,
    queue: mpsc::Receiver<Request>,
}

impl Unanswered {
    /// Fails every sent one with −10025, saying how the connection ended; the queued
    /// ones are dropped unsent (a kept request goes out again on the next connection).
    pub fn fail(self, ended: &Ended) {
        let why = match ended {
            Ended::Closed(code, reason) => {
                format!("connection closed by the server ({code:?}): {reason}")
            }
            Ended::KeepAliveTimeout => "connection closed: the link was lost (keep-alive)".into(),
            Ended::ConnectionLost => "connection closed: the link was lost".into(),
            Ended::ByClient => "connection closed".into(),
        };
        for (tx, op) in self.sent {
            let _ = tx.send(Err(RtmError::new(ErrorCode::NotConnected, op, why.clone())));
        }
        drop(self.queue);
    }
}

/// Runs the connection until it ends; returns why, and the requests left unanswered.
pub(crate) async fn run(
    ws: Ws,
    mut requests: mpsc::Receiver<Request>,
    ctx: Context,
) -> (Ended, Unanswered) {
    let Context {
        router,
        heartbeat,
        link_loss_timeout,
        positions,
        user_id,
        on_channel_left,
        cipher,
    } = ctx;
    let (mut sink, mut stream) = ws.split();
    let mut pending: HashMap<u32, (ReplyTx, &'static str)> = HashMap::new();
    let mut next_id: u32 = 0;
    let keep_alive = heartbeat.mul_f32(1.5);
    let mut last_rx = Instant::now();
    let mut beat = tokio::time::interval(heartbeat / 2);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // R46: the link counts as lost when the server has sent nothing for
    // `link_loss_timeout` since the first heartbeat it left unanswered — an
    // interruption it recovers from sooner changes no state. Besides the billing
    // heartbeat, a probe heartbeat goes out when the link has been quiet for a quarter
    // of it (a busy link needs none). Heartbeats, not WebSocket pings: a ping's pong is
    // written by the server's WebSocket layer past its outbound queue, which changes
    // how a slow consumer's connection ends.
    let probe_period = link_loss_timeout / 4;
    let mut probe = tokio::time::interval(probe_period / 2);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unanswered_since: Option<Instant> = None;
    let loss_deadline = |since: Option<Instant>| since.map(|t| t + link_loss_timeout);
    let mut closing: Option<(DisconnectCode, String)> = None;
    let ended = loop {
        tokio::select! {
            req = requests.recv() => {
                let Some(first) = req else { break Ended::ByClient };
                let mut buf = BytesMut::new();
                let mut add = |r: Request, buf: &mut BytesMut| {
                    next_id = next_id.wrapping_add(1).max(1);
                    if let Some(tx) = r.reply {
                        pending.insert(next_id, (tx, r.op));
                    }
                    frame::encode_into(&ClientMessage { id: next_id, body: Some(r.body) }, buf);
                };
                add(first, &mut buf);
                while buf.len() < 64 * 1024 {
                    let Ok(r) = requests.try_recv() else { break };
                    add(r, &mut buf);
                }
                if sink.send(Message::Binary(buf.freeze())).await.is_err() {
                    break Ended::ConnectionLost;
                }
            }
            _ = beat.tick() => {
                next_id = next_id.wrapping_add(1).max(1);
                let hb = ClientMessage { id: next_id, body: Some(client_message::Body::Heartbeat(pb::Heartbeat {})) };
                if sink.send(Message::Binary(frame::encode(&hb))).await.is_err() {
                    break Ended::ConnectionLost;
                }
                unanswered_since.get_or_insert_with(Instant::now);
            }
            _ = probe.tick() => {
                if unanswered_since.is_some() || last_rx.elapsed() < probe_period {
                    continue;
                }
                next_id = next_id.wrapping_add(1).max(1);
                let hb = ClientMessage { id: next_id, body: Some(client_message::Body::Heartbeat(pb::Heartbeat {})) };
                if sink.send(Message::Binary(frame::encode(&hb))).await.is_err() {
                    break Ended::ConnectionLost;
                }
                unanswered_since = Some(Instant::now());
            }
            _ = tokio::time::sleep_until(last_rx + keep_alive) => break Ended::KeepAliveTimeout,
            _ = tokio::time::sleep_until(loss_deadline(unanswered_since).unwrap_or(last_rx)), if unanswered_since.is_some() => {
                break Ended::KeepAliveTimeout;
            }
            msg = stream.next() => {
                last_rx = Instant::now();
                unanswered_since = None;
                let data = match msg {
                    Some(Ok(Message::Binary(data))) => data,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        break match closing.take() {
                            Some((code, reason)) => Ended::Closed(code, reason),
                            None => Ended::ConnectionLost,
                        };
                    }
                    Some(Ok(_)) => continue,
                };
                for msg in frame::FrameDecoder::<ServerMessage>::new(data, usize::MAX) {
                    let Ok(msg) = msg else { break };
                    let Some(body) = msg.body else { continue };
                    if msg.id != 0 {
                        if let Some((tx, op)) = pending.remove(&msg.id) {
                            let result = match body {
                                server_message::Body::Error(e) => Err(RtmError {
                                    code: e.code,
                                    reason: e.reason,
                                    operation: if e.operation.is_empty() { op.to_string() } else { e.operation },
                                }),
                                other => Ok(other),
                            };
                            let _ = tx.send(result);
                        }
                        continue;
                    }
                    match body {
                        server_message::Body::Message(mut m) => {
                            // Opened before decoding: the message type is the plaintext's.
                            let failed = match cipher.as_deref().map(|c| c.open_payload(m.message_type, &m.payload)) {
                                Some(Ok(plain)) => {
                                    m.payload = plain;
                                    None
                                }
                                Some(Err(why)) => Some(why),
                                None => None,
                            };
                            let e = message_event(m);
                            let name = if e.channel_type == ChannelType::User { user_id.clone() } else { e.channel_name.clone() };
                            if advance(&positions, (e.channel_type, name), e.position) {
                                match failed {
                                    None => router.deliver(Event::Message(e)).await,
                                    Some(why) => {
                                        // Never delivered as garbage: consumed and reported.
                                        let error = decrypt_failure(&e, why);
                                        tracing::warn!(channel = %error.channel_name, publisher = %error.publisher, reason = %error.error.reason, "message not delivered");
                                        router.notify_extra(Extra::Error(error));
                                    }
                                }
                            }
                        }
                        server_message::Body::Topic(t) => {
                            let Some(e) = topic_event(t) else { continue };
                            // A SNAPSHOT is not a publication: it carries the position
                            // it was taken at, which must neither be dropped as a
                            // duplicate nor skip pushes still on their way.
                            let positioned = e.event_type != TopicEventType::Snapshot && e.position.offset > 0;
                            let key = (ChannelType::Stream, e.channel_name.clone());
                            if !positioned || advance(&positions, key, e.position) {
                                router.deliver(Event::Topic(e)).await;
                            }
                        }
                        server_message::Body::Presence(p) => {
                            let Some(e) = presence_event(p) else { continue };
                            // Like the topic SNAPSHOT: the position a presence SNAPSHOT
                            // was taken at is no publication of its own.
                            let positioned = e.event_type != PresenceEventType::Snapshot && e.position.offset > 0;
                            let key = (e.channel_type, e.channel_name.clone());
                            if !positioned || advance(&positions, key, e.position) {
                                router.deliver(Event::Presence(e)).await;
                            }
                        }
                        server_message::Body::Storage(s) => {
                            let Some(e) = storage_event(s) else { continue };
                            // Channel metadata events are in the channel's stream (a
                            // SNAPSHOT only says where it was taken); user metadata
                            // events have no position.
                            let positioned = e.channel_type != ChannelType::User
                                && e.event_type != StorageEventType::Snapshot
                                && e.position.offset > 0;
                            let key = (e.channel_type, e.channel_name.clone());
                            if !positioned || advance(&positions, key, e.position) {
                                router.deliver(Event::Storage(e)).await;
                            }
                        }
                        server_message::Body::Lock(l) => {
                            let Some(e) = lock_event(l) else { continue };
                            // EXPIRED is in this user's inbox, like a USER message; the
                            // others in the lock's channel; a SNAPSHOT moves nothing.
                            let positioned = e.event_type != LockEventType::Snapshot && e.position.offset > 0;
                            let key = if e.event_type == LockEventType::Expired {
                                (ChannelType::User, user_id.clone())
                            } else {
                                (e.channel_type, e.channel_name.clone())
                            };
                            if !positioned || advance(&positions, key, e.position) {
                                router.deliver(Event::Lock(e)).await;
                            }
                        }
                        server_message::Body::ChannelLeft(c) => on_channel_left(c),
                        server_message::Body::TokenWillExpire(t) => {
                            let ch = (!t.channel_name.is_empty()).then_some(t.channel_name);
                            router.will_expire(ch);
                        }
                        server_message::Body::Closing(c) => {
                            let code = DisconnectCode::from_u32(c.code).unwrap_or(DisconnectCode::ProtocolError);
                            closing = Some((code, c.reason));
                        }
                        _ => {}
                    }
                }
            }
        }
    };
    let _ = sink.close().await;
    let unanswered = Unanswered {
        sent: pending.into_values().collect(),
        queue: requests,
    };
    (ended, unanswered)
}
