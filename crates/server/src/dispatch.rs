//! The per-connection dispatch, on top of every layer: each request goes to the one
//! feature module that owns it (`features::…`), and its failure is answered with its
//! code, reason and operation name. A failed request changes nothing (R171); the
//! connection carries on. Logout, which only ends the session, is answered here.

use crate::features::{history, lock, login, messaging, permissions, presence, storage, stream};
use crate::session::client::Client;
use crate::session::lifecycle;
use crate::wire::Failure;
use std::ops::ControlFlow;
use switchboard_engine::WriteOp;
use switchboard_protocol::pb::{self, ClientMessage, client_message, server_message::Body};
use switchboard_protocol::{DisconnectCode, ErrorCode, now_ms};

/// Operation names as the SDKs report them (api.md §12.1).
fn operation(body: &client_message::Body) -> &'static str {
    use client_message::Body as B;
    match body {
        B::Login(_) => "login",
        B::Logout(_) => "logout",
        B::RenewToken(_) => "renewToken",
        B::Subscribe(_) => "subscribe",
        B::Unsubscribe(_) => "unsubscribe",
        B::Publish(_) => "publish",
        B::Heartbeat(_) => "heartbeat",
        B::GetMessages(_) => "getMessages",
        B::Join(_) => "join",
        B::Leave(_) => "leave",
        B::JoinTopic(_) => "joinTopic",
        B::LeaveTopic(_) => "leaveTopic",
        B::PublishTopicMessage(_) => "publishTopicMessage",
        B::SubscribeTopic(_) => "subscribeTopic",
        B::UnsubscribeTopic(_) => "unsubscribeTopic",
        B::WhoNow(_) => "whoNow",
        B::WhereNow(_) => "whereNow",
        B::SetState(_) => "setState",
        B::GetState(_) => "getState",
        B::RemoveState(_) => "removeState",
        B::SetMetadata(r) if r.channel_type == pb::ChannelType::User as i32 => "setUserMetadata",
        B::SetMetadata(_) => "setChannelMetadata",
        B::UpdateMetadata(r) if r.channel_type == pb::ChannelType::User as i32 => {
            "updateUserMetadata"
        }
        B::UpdateMetadata(_) => "updateChannelMetadata",
        B::RemoveMetadata(r) if r.channel_type == pb::ChannelType::User as i32 => {
            "removeUserMetadata"
        }
        B::RemoveMetadata(_) => "removeChannelMetadata",
        B::GetMetadata(r) if r.channel_type == pb::ChannelType::User as i32 => "getUserMetadata",
        B::GetMetadata(_) => "getChannelMetadata",
        B::SubscribeUserMetadata(_) => "subscribeUserMetadata",
        B::UnsubscribeUserMetadata(_) => "unsubscribeUserMetadata",
        B::SetLock(_) => "setLock",
        B::RemoveLock(_) => "removeLock",
        B::AcquireLock(_) => "acquireLock",
        B::ReleaseLock(_) => "releaseLock",
        B::RevokeLock(_) => "revokeLock",
        B::GetLock(_) => "getLock",
    }
}

/// At most 64 characters of a client-given name, for the log.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Handles messages in order, as [`handle`] each; a run of two or more consecutive
/// publishes (without storeInHistory) is one pipeline: every publish of the run starts
/// before the first reply comes (on Redis, their scripts reach the one multiplexed
/// connection in request order, so the channel's offsets follow it), their
/// deliveries are written together, and the replies go out in request order. On the
/// memory engine a publish completes at once, so nothing changes there.
pub(crate) async fn handle_batch(client: &mut Client, msgs: Vec<ClientMessage>) -> ControlFlow<()> {
    fn pipelinable(m: &ClientMessage) -> bool {
        m.id != 0
            && matches!(&m.body, Some(client_message::Body::Publish(r)) if !r.store_in_history)
    }
    let mut it = msgs.into_iter().peekable();
    while let Some(msg) = it.next() {
        if pipelinable(&msg) && it.peek().is_some_and(pipelinable) && client.attached.is_some() {
            let mut run = vec![msg];
            while let Some(m) = it.next_if(pipelinable) {
                run.push(m);
            }
            if client.out.is_closed() {
                return ControlFlow::Break(());
            }
            let Ok(session) = client.session() else {
                for m in run {
                    handle(client, m).await?;
                }
                continue;
            };
            let actor = session.actor();
            let node = client.node.clone();
            let (node, actor, session) = (&node, &actor, &*session);
            let futs = run.into_iter().map(|m| async move {
                let id = m.id;
                let Some(body) = m.body else {
                    return (
                        id,
                        Err(Failure::new(ErrorCode::BadRequest, "not a publish")),
                    );
                };
                // The same permission check as `handle` makes (T46), per publish.
                if let Err(f) = permissions::authorize(session, &body) {
                    return (id, Err(f));
                }
                match body {
                    client_message::Body::Publish(req) => {
                        (id, messaging::publish_as(node, actor, req).await)
                    }
                    _ => (
                        id,
                        Err(Failure::new(ErrorCode::BadRequest, "not a publish")),
                    ),
                }
            });
            for (id, r) in futures_util::future::join_all(futs).await {
                match r {
                    Ok(reply) => client.send(id, Body::Publish(reply)),
                    Err(f) => client.fail(id, "publish", f),
                }
            }
        } else {
            handle(client, msg).await?;
        }
        client.touch();
    }
    ControlFlow::Continue(())
}

/// Handles one client message. `Break` ends the connection.
pub(crate) async fn handle(client: &mut Client, msg: ClientMessage) -> ControlFlow<()> {
    use client_message::Body as B;
    // Once its session ended (kick, logout, expiry) or moved to another connection (a
    // resume), nothing more of this connection is served, not even what it had sent
    // already in the same frame or read ahead of the close.
    if client.out.is_closed() {
        return ControlFlow::Break(());
    }
    let id = msg.id;
    let Some(body) = msg.body else {
        let f = Failure::new(
            ErrorCode::BadRequest,
            "request without a known body (newer protocol?)",
        );
        client.fail(id, "unknown", f);
        return ControlFlow::Continue(());
    };
    let op = operation(&body);
    if id == 0 && !matches!(body, B::Heartbeat(_)) {
        // Id 0 marks pushes: a reply to it could not be told from one (protocol.md).
        client.out.close(
            DisconnectCode::ProtocolError,
            format!("request id 0 is only for heartbeats; {op} needs an id above 0"),
        );
        return ControlFlow::Break(());
    }
    if client.attached.is_none() && !matches!(body, B::Login(_) | B::Heartbeat(_)) {
        client.fail(id, op, Failure::not_logged_in());
        return ControlFlow::Continue(());
    }
    // An RTM2 login token's permission tree, when the app enforces it (T46).
    if let Some(a) = &client.attached {
        if let Err(f) = permissions::authorize(&a.session, &body) {
            client.fail(id, op, f);
            return ControlFlow::Continue(());
        }
    }
    let result = match body {
        B::Heartbeat(_) => {
            if id != 0 {
                client.send(
                    id,
                    Body::Heartbeat(pb::HeartbeatReply {
                        timestamp: now_ms(),
                    }),
                );
            }
            Ok(())
        }
        B::Login(req) => {
            let (app, user) = (clip(&req.app_id), clip(&req.user_id));
            match login::login(client, id, req).await {
                Ok(()) => {
                    client.node.metrics.logged_in();
                    Ok(())
                }
                Err(f) if client.attached.is_none() => {
                    client.node.metrics.login_failed(f.code);
                    // Never the token: the app, the user and why.
                    tracing::info!(%app, %user, code = f.code.as_i32(), reason = %f.reason, "login failed");
                    let reason = f.reason.clone();
                    // An app at its connection limit: closed as the node's limits
                    // close a connection (OVERLOADED), the others as a failed login.
                    let code = if f.code == ErrorCode::LoginNoServerResources {
                        DisconnectCode::Overloaded
                    } else {
                        DisconnectCode::LoginFailed
                    };
                    client.fail(id, op, f);
                    client.out.close(code, reason);
                    return ControlFlow::Break(());
                }
                Err(f) => Err(f),
            }
        }
        B::Logout(_) => {
            client.send(
                id,
                Body::Logout(pb::LogoutReply {
                    timestamp: now_ms(),
                }),
            );
            if let Some(a) = client.attached.take() {
                lifecycle::end(
                    &client.node,
                    &a.session,
                    Some((DisconnectCode::Logout, "logged out".into())),
                )
                .await;
            }
            client.out.close(DisconnectCode::Logout, "logged out");
            return ControlFlow::Break(());
        }
        B::RenewToken(req) if !req.channel_name.is_empty() => stream::renew_token(client, id, req),
        B::RenewToken(req) => login::renew_token(client, id, req),
        B::Join(req) => stream::join(client, id, req).await,
        B::Leave(req) => stream::leave(client, id, req).await,
        B::JoinTopic(req) => stream::join_topic(client, id, req).await,
        B::LeaveTopic(req) => stream::leave_topic(client, id, req).await,
        B::PublishTopicMessage(req) => stream::publish_topic_message(client, id, req).await,
        B::SubscribeTopic(req) => stream::subscribe_topic(client, id, req).await,
        B::UnsubscribeTopic(req) => stream::unsubscribe_topic(client, id, req).await,
        B::WhoNow(req) => presence::who_now(client, id, req).await,
        B::WhereNow(req) => presence::where_now(client, id, req).await,
        B::SetState(req) => presence::set_state(client, id, req).await,
        B::GetState(req) => presence::get_state(client, id, req).await,
        B::RemoveState(req) => presence::remove_state(client, id, req).await,
        B::Subscribe(req) => messaging::subscribe(client, id, req).await,
        B::Unsubscribe(req) => messaging::unsubscribe(client, id, req).await,
        B::Publish(req) => messaging::publish(client, id, req).await,
        B::GetMessages(req) => history::get_messages(client, id, req).await,
        B::SetMetadata(req) => storage::write_metadata(client, id, WriteOp::Set, req).await,
        B::UpdateMetadata(req) => storage::write_metadata(client, id, WriteOp::Update, req).await,
        B::RemoveMetadata(req) => storage::write_metadata(client, id, WriteOp::Remove, req).await,
        B::GetMetadata(req) => storage::get_metadata(client, id, req).await,
        B::SubscribeUserMetadata(req) => storage::subscribe_user_metadata(client, id, req).await,
        B::UnsubscribeUserMetadata(req) => {
            storage::unsubscribe_user_metadata(client, id, req).await
        }
        B::SetLock(req) => lock::set_lock(client, id, req).await,
        B::RemoveLock(req) => lock::remove_lock(client, id, req).await,
        B::AcquireLock(req) => lock::acquire_lock(client, id, req).await,
        B::ReleaseLock(req) => lock::release_lock(client, id, req).await,
        B::RevokeLock(req) => lock::revoke_lock(client, id, req).await,
        B::GetLock(req) => lock::get_lock(client, id, req).await,
    };
    if let Err(f) = result {
        client.fail(id, op, f);
    }
    ControlFlow::Continue(())
}
