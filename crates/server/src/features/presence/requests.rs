//! The presence requests (api.md §5, R122–R133): whoNow, whereNow, getState,
//! setState and removeState.

use super::events::{Change, report, user_state};
use super::state::{check_items, too_many_keys};
use crate::node::config::AppConfig;
use crate::node::{Actor, Node};
use crate::session::Session;
use crate::session::client::Client;
use crate::wire::{Failure, state_map, wire_type};
use std::collections::HashSet;
use std::sync::Arc;
use switchboard_engine::{ChannelKey, ChannelKind, EngineError, Presence, State};
use switchboard_protocol::pb::{self, server_message::Body};
use switchboard_protocol::{ErrorCode, names, now_ms};

/// Most state bytes in one whoNow page (the page ends early past it).
const WHO_NOW_PAGE_BYTES: usize = 1 << 20;

fn engine_failure(e: &EngineError) -> Failure {
    Failure::new(ErrorCode::PresenceOperationFailed, format!("engine: {e}"))
}

/// A presence call's channel: MESSAGE or STREAM (R125).
fn channel_key(session: &Session, channel_type: i32, name: &str) -> Result<ChannelKey, Failure> {
    key_in(&session.app, &session.app_id, channel_type, name)
}

/// [`channel_key`] in `app`, for a session or the server API.
fn key_in(
    app: &AppConfig,
    app_id: &Arc<str>,
    channel_type: i32,
    name: &str,
) -> Result<ChannelKey, Failure> {
    names::validate_channel_name(name, app.limits.name_rules())?;
    let key = |kind| ChannelKey::new(app_id.clone(), kind, name);
    match pb::ChannelType::try_from(channel_type) {
        Ok(pb::ChannelType::Message) => Ok(key(ChannelKind::Message)),
        Ok(pb::ChannelType::Stream) => Ok(key(ChannelKind::Stream)),
        _ => Err(Failure::new(
            ErrorCode::InvalidChannelType,
            "presence takes channel type MESSAGE or STREAM (R125)",
        )),
    }
}

/// Whether the session is in the channel, and quietly.
fn membership(session: &Session, key: &ChannelKey) -> Option<bool> {
    let st = session.lock();
    match key.kind {
        ChannelKind::Message => st.subscriptions.get(&key.name).map(|o| o.be_quiet),
        ChannelKind::Stream => st.streams.get(&key.name).map(|m| m.options.be_quiet),
        ChannelKind::User | ChannelKind::UserMetadata => None,
    }
}

fn presence_engine(client: &Client) -> Result<Arc<dyn Presence>, Failure> {
    engine_of(&client.node)
}

fn engine_of(node: &Node) -> Result<Arc<dyn Presence>, Failure> {
    node.presence.clone().ok_or_else(|| {
        Failure::new(
            ErrorCode::PresenceInactive,
            "presence is not available on this server",
        )
    })
}

/// `whoNow` (R122–R124).
pub(crate) async fn who_now(
    client: &mut Client,
    id: u32,
    req: pb::WhoNowRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    let actor = session.actor();
    let reply = who_now_as(&client.node, &actor, req).await?;
    client.send(id, Body::WhoNow(reply));
    Ok(())
}

/// The rules of `whoNow` (R122–R124) in `actor`'s app: the reply.
pub(crate) async fn who_now_as(
    node: &Node,
    actor: &Actor,
    req: pb::WhoNowRequest,
) -> Result<pb::WhoNowReply, Failure> {
    let key = key_in(
        &actor.app,
        &actor.app_id,
        req.channel_type,
        &req.channel_name,
    )?;
    let presence = engine_of(node)?;
    let reply = if req.include_user_id.unwrap_or(true) {
        let after = (!req.page.is_empty()).then_some(req.page.as_str());
        let size = actor.app.limits.who_now_page_size.max(1);
        let mut page = presence
            .list(&key, after, size)
            .await
            .map_err(|e| engine_failure(&e))?;
        if req.include_state {
            // A page also ends once its states pass WHO_NOW_PAGE_BYTES, so that a
            // reply always fits the connection's queue (R128 allows 512 KB of
            // state per member).
            let mut bytes = 0;
            let keep = page
                .members
                .iter()
                .position(|m| {
                    bytes += m
                        .state
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>();
                    bytes > WHO_NOW_PAGE_BYTES
                })
                .map_or(page.members.len(), |i| i.max(1));
            if keep < page.members.len() {
                page.members.truncate(keep);
                page.more = true;
            }
        }
        let next_page = match (page.more, page.members.last()) {
            (true, Some(m)) => m.user.to_string(),
            _ => String::new(),
        };
        pb::WhoNowReply {
            timestamp: now_ms(),
            total_occupancy: u32::try_from(page.members.len()).unwrap_or(u32::MAX),
            occupants: page
                .members
                .iter()
                .map(|m| {
                    let empty = State::new();
                    let state = if req.include_state { &m.state } else { &empty };
                    user_state(&m.user, state)
                })
                .collect(),
            next_page,
        }
    } else {
        let count = presence.count(&key).await.map_err(|e| engine_failure(&e))?;
        pb::WhoNowReply {
            timestamp: now_ms(),
            total_occupancy: u32::try_from(count).unwrap_or(u32::MAX),
            occupants: Vec::new(),
            next_page: String::new(),
        }
    };
    Ok(reply)
}

/// `whereNow` (R126).
pub(crate) async fn where_now(
    client: &mut Client,
    id: u32,
    req: pb::WhereNowRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    let actor = session.actor();
    let reply = where_now_as(&client.node, &actor, req).await?;
    client.send(id, Body::WhereNow(reply));
    Ok(())
}

/// The rules of `whereNow` (R126) in `actor`'s app: the reply.
pub(crate) async fn where_now_as(
    node: &Node,
    actor: &Actor,
    req: pb::WhereNowRequest,
) -> Result<pb::WhereNowReply, Failure> {
    names::validate_user_id(&req.user_id, actor.app.limits.name_rules())?;
    let presence = engine_of(node)?;
    let channels = presence
        .channels_of(&actor.app_id, &req.user_id)
        .await
        .map_err(|e| engine_failure(&e))?;
    Ok(pb::WhereNowReply {
        timestamp: now_ms(),
        channels: channels
            .iter()
            .map(|k| pb::ChannelRef {
                channel_type: wire_type(k.kind),
                channel_name: k.name.to_string(),
            })
            .collect(),
    })
}

/// `getState` (R131).
pub(crate) async fn get_state(
    client: &mut Client,
    id: u32,
    req: pb::GetStateRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    let key = channel_key(&session, req.channel_type, &req.channel_name)?;
    names::validate_user_id(&req.user_id, session.app.limits.name_rules())?;
    let presence = presence_engine(client)?;
    let Some(state) = presence
        .state(&key, &req.user_id)
        .await
        .map_err(|e| engine_failure(&e))?
    else {
        return Err(Failure::new(
            ErrorCode::PresenceUserNotExist,
            format!(
                "user {} is not present in channel {} (R131)",
                req.user_id, req.channel_name
            ),
        ));
    };
    client.send(
        id,
        Body::GetState(pb::GetStateReply {
            timestamp: now_ms(),
            user_id: req.user_id,
            states: state_map(&state),
        }),
    );
    Ok(())
}

/// `setState` (R127–R129): applied now when the caller is in the channel, else kept
/// in the session and applied when it enters.
pub(crate) async fn set_state(
    client: &mut Client,
    id: u32,
    req: pb::SetStateRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    let key = channel_key(&session, req.channel_type, &req.channel_name)?;
    let limits = session.app.limits;
    check_items(&limits, &req.states)?;
    let presence = presence_engine(client)?;
    let items: State = req.states.into_iter().collect();
    let applied = match membership(&session, &key) {
        Some(quiet) => presence
            .set_state(&key, &session.user, items.clone(), limits.max_state_keys)
            .await
            .map_err(|e| match e {
                EngineError::LimitReached(_) => too_many_keys(&limits),
                other => engine_failure(&other),
            })?
            .map(|s| (quiet, s)),
        None => None,
    };
    match applied {
        Some((quiet, state)) => {
            if !quiet {
                report(
                    &client.node,
                    &limits,
                    &key,
                    &session.user,
                    Change::State(state),
                )
                .await;
            }
        }
        None => {
            let mut st = session.lock();
            // A session can enter at most this many channels, so it keeps state for
            // no more than that many it is not in yet (each up to R128's size).
            let most = limits.max_subscriptions + limits.max_stream_channels;
            if !st.pending_states.contains_key(&key) && st.pending_states.len() >= most {
                return Err(Failure::new(
                    ErrorCode::ChannelInstanceExceedLimitation,
                    format!(
                        "state is already kept for {most} channels not entered yet, as \
                         many as a client can be in (R129)"
                    ),
                ));
            }
            let kept = st.pending_states.get(&key);
            let added = items
                .keys()
                .filter(|k| !kept.is_some_and(|p| p.contains_key(*k)))
                .count();
            if kept.map_or(0, |p| p.len()) + added > limits.max_state_keys {
                return Err(too_many_keys(&limits));
            }
            st.pending_states.entry(key).or_default().extend(items);
        }
    }
    client.send(
        id,
        Body::SetState(pb::SetStateReply {
            timestamp: now_ms(),
        }),
    );
    Ok(())
}

/// `removeState` (R130).
pub(crate) async fn remove_state(
    client: &mut Client,
    id: u32,
    req: pb::RemoveStateRequest,
) -> Result<(), Failure> {
    let session = client.session()?;
    let key = channel_key(&session, req.channel_type, &req.channel_name)?;
    let mut seen = HashSet::new();
    for k in &req.keys {
        names::validate_state_key(k)?;
        if !seen.insert(k.as_str()) {
            return Err(Failure::new(
                ErrorCode::PresenceStateDuplicateKey,
                format!("key {k} is listed twice (R130)"),
            ));
        }
    }
    let presence = presence_engine(client)?;
    let limits = session.app.limits;
    let applied = match membership(&session, &key) {
        Some(quiet) => presence
            .remove_state(&key, &session.user, &req.keys)
            .await
            .map_err(|e| engine_failure(&e))?
            .map(|s| (quiet, s)),
        None => None,
    };
    match applied {
        Some((quiet, state)) => {
            if !quiet {
                report(
                    &client.node,
                    &limits,
                    &key,
                    &session.user,
                    Change::State(state),
                )
                .await;
            }
        }
        None => {
            let mut st = session.lock();
            if req.keys.is_empty() {
                st.pending_states.remove(&key);
            } else if let Some(p) = st.pending_states.get_mut(&key) {
                for k in &req.keys {
                    p.remove(k);
                }
            }
        }
    }
    client.send(
        id,
        Body::RemoveState(pb::RemoveStateReply {
            timestamp: now_ms(),
        }),
    );
    Ok(())
}
