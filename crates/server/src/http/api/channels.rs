//! The channel list and a channel's live tail, for the console: `GET …/channels`
//! (the app's channels with subscribers on this node, with member counts and message
//! rates, searched and paged) and `GET …/tail/{channel_type}/{channel}` (the
//! publications after a position, from the broker's recovery log). Rates come from the
//! broker's positions sampled when the list is read, so nothing counts per channel on
//! the hot path.

use super::channel_type;
use crate::http::auth::authorize;
use crate::http::error::{ApiError, ErrorBody};
use crate::node::Node;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::HeaderMap;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_engine::{ChannelKey, ChannelKind, EventKind, MessageKind, StreamPosition};
use switchboard_protocol::pb;
use utoipa::ToSchema;

/// Default and largest page of the channel list.
const PAGE: usize = 50;
const MAX_PAGE: usize = 200;
/// Most publications one tail answer carries.
const TAIL_LIMIT: usize = 100;
/// A rate is computed over at least this long; a read sooner reuses the last rate.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Rate samples of channels not listed for this long are dropped.
const RATE_FORGET: Duration = Duration::from_secs(300);

/// The last position seen of each listed channel, to compute its rate from.
#[derive(Default)]
pub(crate) struct ChannelRates {
    seen: Mutex<HashMap<ChannelKey, RateSample>>,
}

#[derive(Clone, Copy)]
struct RateSample {
    at: Instant,
    position: StreamPosition,
    rate: f64,
}

impl ChannelRates {
    /// Publications per second of `key` now at `position` (0 on its first sighting).
    fn rate(&self, key: &ChannelKey, position: StreamPosition) -> f64 {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() > 10_000 {
            seen.retain(|_, s| now.duration_since(s.at) < RATE_FORGET);
        }
        match seen.get_mut(key) {
            Some(s) if now.duration_since(s.at) < RATE_WINDOW => s.rate,
            Some(s) => {
                let dt = now.duration_since(s.at).as_secs_f64();
                let rate = if s.position.epoch == position.epoch {
                    position.offset.saturating_sub(s.position.offset) as f64 / dt
                } else {
                    0.0
                };
                *s = RateSample {
                    at: now,
                    position,
                    rate,
                };
                rate
            }
            None => {
                seen.insert(
                    key.clone(),
                    RateSample {
                        at: now,
                        position,
                        rate: 0.0,
                    },
                );
                0.0
            }
        }
    }
}

/// One channel of the list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ChannelRow {
    /// `message` or `stream`.
    pub channel_type: String,
    /// The channel name.
    pub channel: String,
    /// Sessions of this node subscribed to (or joined in) it.
    pub subscribers: usize,
    /// Members present (presence occupancy); absent without presence.
    pub members: Option<usize>,
    /// Publications (messages and events) per second, measured between list reads.
    pub rate_per_s: f64,
    /// Offset of its latest publication under the current epoch.
    pub offset: u64,
}

/// A page of the channel list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ChannelList {
    /// Channels matching the search (all pages).
    pub total: usize,
    /// This page, by type then name.
    pub channels: Vec<ChannelRow>,
    /// Pass as `page` for the next page; empty on the last.
    pub next_page: String,
}

/// `GET /v1/apps/{app_id}/channels`: the app's message and stream channels with
/// subscribers on this node.
#[utoipa::path(get, path = "/v1/apps/{app_id}/channels", tag = "console",
    params(("app_id" = String, Path, description = "the app id"),
           ("search" = Option<String>, Query, description = "only names containing this (case-insensitive)"),
           ("channel_type" = Option<String>, Query, description = "message or stream (default both)"),
           ("page" = Option<String>, Query, description = "next_page of the previous page"),
           ("limit" = Option<u32>, Query, description = "channels per page (1..=200, default 50)")),
    responses((status = 200, body = ChannelList),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn list(
    State(node): State<Arc<Node>>,
    Extension(rates): Extension<Arc<ChannelRates>>,
    Path(app_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<ChannelList>, ApiError> {
    const OP: &str = "listChannels";
    let app = authorize(&node, &app_id, &headers, OP)?;
    let paging = super::Paging::from_query(&q, PAGE, MAX_PAGE, OP)?;
    let only = match q.get("channel_type").map(String::as_str) {
        None | Some("") => None,
        Some("message") => Some(ChannelKind::Message),
        Some("stream") => Some(ChannelKind::Stream),
        Some(other) => {
            return Err(ApiError::new(
                switchboard_protocol::ErrorCode::InvalidChannelType,
                format!("channel_type {other:?}: use message or stream"),
                OP,
            ));
        }
    };
    let search = q
        .get("search")
        .map(|s| s.to_lowercase())
        .unwrap_or_default();
    let mut all: Vec<(ChannelKey, usize)> = node
        .hub
        .channels_of(&app.id)
        .into_iter()
        .filter(|(k, _)| match only {
            Some(kind) => k.kind == kind,
            None => matches!(k.kind, ChannelKind::Message | ChannelKind::Stream),
        })
        .filter(|(k, _)| search.is_empty() || k.name.to_lowercase().contains(&search))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let total = all.len();
    let mut channels = Vec::new();
    for (key, subscribers) in all.iter().skip(paging.start).take(paging.limit) {
        let position = node.broker.position(key).await.unwrap_or_default();
        let members = match &node.presence {
            Some(p) => p.count(key).await.ok(),
            None => None,
        };
        channels.push(ChannelRow {
            channel_type: kind_name(key.kind).into(),
            channel: key.name.to_string(),
            subscribers: *subscribers,
            members,
            rate_per_s: rates.rate(key, position),
            offset: position.offset,
        });
    }
    Ok(Json(ChannelList {
        total,
        channels,
        next_page: paging.next_page(total),
    }))
}

fn kind_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Stream => "stream",
        ChannelKind::User => "user",
        ChannelKind::UserMetadata => "user_metadata",
        ChannelKind::Message => "message",
    }
}

/// One publication of a tail.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct TailItem {
    /// Its offset in the channel's stream.
    pub offset: u64,
    /// The publisher's user id.
    pub publisher: String,
    /// `text`, `binary`, or the event's kind (`presence`, `storage`, `lock`, `topic`).
    pub kind: String,
    /// The text (text messages only).
    pub message: Option<String>,
    /// The payload in base64 (binary messages only).
    pub message_base64: Option<String>,
    /// Its custom type; empty for none.
    pub custom_type: String,
    /// Stream channels: its topic.
    pub topic: String,
    /// Server time of the publish, ms since the epoch.
    pub timestamp_ms: u64,
}

/// The publications after a position.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Tail {
    /// Pass as `since` for the next read: `EPOCH:OFFSET`.
    pub position: String,
    /// False when the log no longer held everything after `since` (a gap).
    pub complete: bool,
    /// Oldest first; at most 100. Empty without `since` (start tailing from now).
    pub messages: Vec<TailItem>,
}

/// `GET /v1/apps/{app_id}/tail/{channel_type}/{channel}`: the channel's publications
/// after `since`, from the recovery log.
#[utoipa::path(get, path = "/v1/apps/{app_id}/tail/{channel_type}/{channel}", tag = "console",
    params(("app_id" = String, Path, description = "the app id"),
           ("channel_type" = super::PathChannelType, Path, description = "message, stream or user"),
           ("channel" = String, Path, description = "the channel name (user: the user id)"),
           ("since" = Option<String>, Query, description = "EPOCH:OFFSET, the position of the previous answer")),
    responses((status = 200, body = Tail),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("basic" = [])))]
pub(crate) async fn tail(
    State(node): State<Arc<Node>>,
    Path((app_id, kind, channel)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Tail>, ApiError> {
    const OP: &str = "tail";
    let app = authorize(&node, &app_id, &headers, OP)?;
    let kind = match pb::ChannelType::try_from(channel_type(&kind, OP)?) {
        Ok(pb::ChannelType::Stream) => ChannelKind::Stream,
        Ok(pb::ChannelType::User) => ChannelKind::User,
        _ => ChannelKind::Message,
    };
    let names = app.limits.name_rules();
    let checked = if kind == ChannelKind::User {
        switchboard_protocol::names::validate_user_id(&channel, names)
    } else {
        switchboard_protocol::names::validate_channel_name(&channel, names)
    };
    checked.map_err(|i| ApiError::new(i.code, format!("channel: {}", i.reason), OP))?;
    let key = ChannelKey::new(app.id.as_str(), kind, channel.as_str());
    let unavailable = |e: switchboard_engine::EngineError| {
        ApiError::new(
            switchboard_protocol::ErrorCode::EngineUnavailable,
            e.to_string(),
            OP,
        )
    };
    let since =
        match q.get("since").map(String::as_str) {
            None | Some("") => None,
            Some(s) => Some(parse_position(s).ok_or_else(|| {
                ApiError::bad_request(format!("since {s:?}: use EPOCH:OFFSET"), OP)
            })?),
        };
    let Some(since) = since else {
        let position = node.broker.position(&key).await.map_err(unavailable)?;
        return Ok(Json(Tail {
            position: format!("{}:{}", position.epoch, position.offset),
            complete: true,
            messages: Vec::new(),
        }));
    };
    let r = node
        .broker
        .recover(&key, since, TAIL_LIMIT)
        .await
        .map_err(unavailable)?;
    // Where the next read starts: after the last one returned, or the channel's end.
    let next = r.publications.last().map_or(r.position, |p| p.position);
    let b64 = base64::engine::general_purpose::STANDARD;
    let messages = r
        .publications
        .iter()
        .map(|p| {
            let (kind, message, message_base64) = match p.kind {
                MessageKind::Text => (
                    "text",
                    Some(String::from_utf8_lossy(&p.payload).into_owned()),
                    None,
                ),
                MessageKind::Binary => ("binary", None, Some(b64.encode(&p.payload))),
                MessageKind::Event(e) => (
                    match e {
                        EventKind::Presence => "presence",
                        EventKind::Storage => "storage",
                        EventKind::Lock => "lock",
                        EventKind::Topic => "topic",
                    },
                    None,
                    None,
                ),
            };
            TailItem {
                offset: p.position.offset,
                publisher: p.publisher.to_string(),
                kind: kind.into(),
                message,
                message_base64,
                custom_type: p.custom_type.to_string(),
                topic: p.topic.to_string(),
                timestamp_ms: p.timestamp_ms,
            }
        })
        .collect();
    Ok(Json(Tail {
        position: format!("{}:{}", next.epoch, next.offset),
        complete: r.complete,
        messages,
    }))
}

/// `EPOCH:OFFSET` as a position.
fn parse_position(s: &str) -> Option<StreamPosition> {
    let (e, o) = s.split_once(':')?;
    Some(StreamPosition {
        epoch: e.parse().ok()?,
        offset: o.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_or_not() {
        assert_eq!(
            parse_position("7:42"),
            Some(StreamPosition {
                epoch: 7,
                offset: 42
            })
        );
        assert_eq!(parse_position("7"), None);
        assert_eq!(parse_position("x:1"), None);
        assert_eq!(parse_position("1:-1"), None);
    }

    #[test]
    fn a_rate_is_the_offsets_between_two_reads() {
        let rates = ChannelRates::default();
        let key = ChannelKey::new("app", ChannelKind::Message, "c");
        let at = |offset| StreamPosition { epoch: 1, offset };
        assert_eq!(rates.rate(&key, at(5)), 0.0);
        // Within the window: the last rate again.
        assert_eq!(rates.rate(&key, at(9)), 0.0);
        // Backdate the sample by two seconds: 10 more publications = 5 per second.
        {
            let mut seen = rates.seen.lock().unwrap();
            let s = seen.get_mut(&key).unwrap();
            s.at -= Duration::from_secs(2);
        }
        let r = rates.rate(&key, at(15));
        assert!((r - 5.0).abs() < 0.1, "rate {r}");
    }
}
