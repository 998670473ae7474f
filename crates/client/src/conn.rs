//! The connection task: one per login. It owns the socket, numbers requests and
//! matches replies, batches queued requests into one frame, sends heartbeats every half
//! interval, declares the link lost after 1.5 intervals without server traffic, and
//! hands pushes to the router (messages, topic, presence, storage and lock events wait
//! for room: lossless). Every positioned push advances its channel's position (stream
//! channels included; a lock EXPIRED the user's own inbox), and one the app already has
//! is dropped; SNAPSHOTs are not publications and do neither, and user-metadata storage
//! events carry no position.

use crate::router::Router;
use crate::types::{
    ChannelType, Event, IntervalDetail, LockEventType, MessageEvent, Payload, PresenceEvent,
    PresenceEventType, PublishInfo, RtmError, StorageEventType, StreamPosition, TopicDetail,
    TopicEvent, TopicEventType, UserState,
};
use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::time::Duration;
use switchboard_protocol::pb::{
    self, ClientMessage, ServerMessage, client_message, server_message,
};
use switchboard_protocol::{DisconnectCode, ErrorCode, frame};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

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

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Called with a `ChannelLeft` push (the server left a stream channel for the client).
pub(crate) type OnChannelLeft = Box<dyn Fn(pb::ChannelLeft) + Send + Sync>;

pub(crate) fn position(p: Option<pb::StreamPosition>) -> StreamPosition {
    p.map(|p| StreamPosition {
        epoch: p.epoch,
        offset: p.offset,
    })
    .unwrap_or_default()
}

/// Converts a message push into the app's event.
fn message_event(m: pb::MessagePush) -> MessageEvent {
    let channel_type = match pb::ChannelType::try_from(m.channel_type) {
        Ok(pb::ChannelType::User) => ChannelType::User,
        Ok(pb::ChannelType::Stream) => ChannelType::Stream,
        _ => ChannelType::Message,
    };
    let message = if m.message_type == pb::MessageType::String as i32 {
        match String::from_utf8(m.payload.to_vec()) {
            Ok(s) => Payload::Text(s),
            Err(e) => Payload::Binary(e.into_bytes().into()),
        }
    } else {
        Payload::Binary(m.payload)
    };
    MessageEvent {
        channel_type,
        channel_name: m.channel_name,
        topic_name: m.topic_name,
        message,
        custom_type: m.custom_type,
        publisher: m.publisher,
        timestamp: m.timestamp,
        position: position(m.position),
        send_ts: m.send_ts,
    }
}

/// Converts a topic event push into the app's event; `None` for an unknown type.
fn topic_event(t: pb::TopicEvent) -> Option<TopicEvent> {
    let event_type = match pb::TopicEventType::try_from(t.event_type) {
        Ok(pb::TopicEventType::Snapshot) => TopicEventType::Snapshot,
        Ok(pb::TopicEventType::RemoteJoin) => TopicEventType::RemoteJoin,
        Ok(pb::TopicEventType::RemoteLeave) => TopicEventType::RemoteLeave,
        _ => return None,
    };
    let topic_infos: Vec<TopicDetail> = t
        .topics
        .into_iter()
        .map(|info| {
            let publishers: Vec<PublishInfo> = info
                .publishers
                .into_iter()
                .map(|p| PublishInfo {
                    publisher_user_id: p.user_id,
                    publisher_meta: p.meta,
                })
                .collect();
            TopicDetail {
                topic_name: info.topic_name,
                total_publisher: u32::try_from(publishers.len()).unwrap_or(u32::MAX),
                publishers,
            }
        })
        .collect();
    Some(TopicEvent {
        event_type,
        channel_name: t.channel_name,
        publisher: t.publisher,
        total_topics: u32::try_from(topic_infos.len()).unwrap_or(u32::MAX),
        topic_infos,
        timestamp: t.timestamp,
        position: position(t.position),
    })
}

/// Converts a presence event push into the app's event; `None` for an unknown type or
/// a channel type presence does not have.
pub(crate) fn presence_event(p: pb::PresenceEvent) -> Option<PresenceEvent> {
    let event_type = match pb::PresenceEventType::try_from(p.event_type) {
        Ok(pb::PresenceEventType::Snapshot) => PresenceEventType::Snapshot,
        Ok(pb::PresenceEventType::Interval) => PresenceEventType::Interval,
        Ok(pb::PresenceEventType::RemoteJoin) => PresenceEventType::RemoteJoin,
        Ok(pb::PresenceEventType::RemoteLeave) => PresenceEventType::RemoteLeave,
        Ok(pb::PresenceEventType::RemoteTimeout) => PresenceEventType::RemoteTimeout,
        Ok(pb::PresenceEventType::RemoteStateChanged) => PresenceEventType::RemoteStateChanged,
        Ok(pb::PresenceEventType::ErrorOutOfService) => PresenceEventType::ErrorOutOfService,
        _ => return None,
    };
    let channel_type = match pb::ChannelType::try_from(p.channel_type) {
        Ok(pb::ChannelType::Message) => ChannelType::Message,
        Ok(pb::ChannelType::Stream) => ChannelType::Stream,
        _ => return None,
    };
    let states = |list: Vec<pb::UserState>| -> Vec<UserState> {
        list.into_iter()
            .map(|u| UserState::new(u.user_id, u.states))
            .collect()
    };
    let interval = (event_type == PresenceEventType::Interval).then(|| {
        let d = p.interval.unwrap_or_default();
        IntervalDetail {
            join: d.join.into(),
            leave: d.leave.into(),
            timeout: d.timeout.into(),
            user_state_list: states(d.user_state_list),
            total_occupancy: d.total_occupancy,
        }
    });
    let snapshot = (event_type == PresenceEventType::Snapshot).then(|| states(p.snapshot));
    Some(PresenceEvent {
        event_type,
        channel_type,
        channel_name: p.channel_name,
        publisher: p.publisher,
        state_changed: p.state_changed.into_iter().collect(),
        interval,
        snapshot,
        timestamp: p.timestamp,
        position: position(p.position),
    })
}

/// Last position handed to the app, per channel: (channel type, name) → position; the
/// user's own inbox is under (User, own user id).
pub(crate) type Positions =
    std::sync::Arc<std::sync::Mutex<HashMap<(ChannelType, String), StreamPosition>>>;

/// Records `pos` for `key` unless it is not newer than what the app already has (same
/// epoch); returns whether the message is new. Duplicates are dropped here, so the app
/// sees each message once even if a replay overlaps what it already got.
pub(crate) fn advance(
    positions: &Positions,
    key: (ChannelType, String),
    pos: StreamPosition,
) -> bool {
    let mut map = positions.lock().unwrap_or_else(|e| e.into_inner());
    match map.get(&key) {
        Some(last) if last.epoch == pos.epoch && pos.offset <= last.offset => false,
        _ => {
            map.insert(key, pos);
            true
        }
    }
}

/// Sets the starting position of `key` if the app has none yet (from a login or
/// subscribe reply). Never moves an existing position: replayed messages may still be on
/// their way behind the reply.
pub(crate) fn baseline(positions: &Positions, key: (ChannelType, String), pos: StreamPosition) {
    let mut map = positions.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(key).or_insert(pos);
}

/// Runs the connection until it ends; returns why.
pub(crate) async fn run(
    ws: Ws,
    mut requests: mpsc::Receiver<Request>,
    router: std::sync::Arc<Router>,
    heartbeat: Duration,
    positions: Positions,
    user_id: String,
    on_channel_left: OnChannelLeft,
) -> Ended {
    let (mut sink, mut stream) = ws.split();
    let mut pending: HashMap<u32, (ReplyTx, &'static str)> = HashMap::new();
    let mut next_id: u32 = 0;
    let keep_alive = heartbeat.mul_f32(1.5);
    let mut last_rx = Instant::now();
    let mut beat = tokio::time::interval(heartbeat / 2);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
            }
            _ = tokio::time::sleep_until(last_rx + keep_alive) => break Ended::KeepAliveTimeout,
            msg = stream.next() => {
                last_rx = Instant::now();
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
                        server_message::Body::Message(m) => {
                            let e = message_event(m);
                            let name = if e.channel_type == ChannelType::User { user_id.clone() } else { e.channel_name.clone() };
                            if advance(&positions, (e.channel_type, name), e.position) {
                                router.deliver(Event::Message(e)).await;
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
                            let Some(e) = crate::storage::storage_event(s) else { continue };
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
                            let Some(e) = crate::lock::lock_event(l) else { continue };
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
                            router.notify(Event::TokenPrivilegeWillExpire(ch));
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
    for (_, (tx, op)) in pending.drain() {
        let _ = tx.send(Err(RtmError::new(
            ErrorCode::NotConnected,
            op,
            "connection closed",
        )));
    }
    let _ = sink.close().await;
    ended
}
