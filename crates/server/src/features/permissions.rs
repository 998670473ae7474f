//! RTM2 resource permissions (token.md §5 tree, T46, §16; docs/token.md "RTM2
//! permissions"): which resource and permission each request needs, and the check of a
//! session's grants against it, answered with the area's permission code.
//!
//! A session is bounded only when its app sets `rtm2_permissions` and its login token
//! rests on an RTM2 service (the grants are put on the session at login, resume and
//! `renewToken`); every other session, and the server API (which acts with the app's
//! own secret), passes. Resource types 2 (group channels) and 3 (server groups) name
//! nothing Switchboard has, so no request needs them.
//!
//! | request | resource | permission |
//! | --- | --- | --- |
//! | `subscribe`, `join` (with its topics and subscriptions) | the channel | read; also write when it sets a presence `state` |
//! | `joinTopic`, `subscribeTopic` | the stream channel | read |
//! | `publish` | the channel, or the target user for USER | write |
//! | `publishTopicMessage` | the stream channel | write |
//! | `getMessages` | the channel, or the peer user for USER | read |
//! | `whoNow`, `getState` | the channel | read |
//! | `whereNow` | the user asked about | read |
//! | `setState`, `removeState` | the channel | write |
//! | `getChannelMetadata` / `getUserMetadata`, `subscribeUserMetadata` | the channel / the user (empty = the caller) | read |
//! | set, update, remove of channel or user metadata | the channel / the user | write |
//! | `getLock` | the channel | read |
//! | `setLock`, `removeLock`, `acquireLock`, `releaseLock`, `revokeLock` | the channel | write |
//!
//! Leaving, unsubscribing, heartbeats, `renewToken` and `logout` need nothing: they only
//! give up what the session has. A request with an unknown channel type needs nothing
//! here and is refused by its handler (−10019).

use crate::session::Session;
use crate::wire::Failure;
use switchboard_protocol::ErrorCode;
use switchboard_protocol::pb::{self, client_message::Body};
use switchboard_token::Rtm2Grants;
use switchboard_token::rtm2::{MESSAGE_CHANNELS, READ, STREAM_CHANNELS, USERS, WRITE};

/// The area of a request, which picks the permission code of a refusal (api.md §12.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    /// Subscribing, joining, topics, presence reads: −11038.
    Subscribe,
    /// Publishing (channels, users, topics) and presence state: −11039.
    Publish,
    /// Metadata: −12020.
    Storage,
    /// Locks: −14010.
    Lock,
    /// History: −15006.
    History,
}

impl Area {
    fn code(self) -> ErrorCode {
        match self {
            Area::Subscribe => ErrorCode::ChannelSubscribePermissionDenied,
            Area::Publish => ErrorCode::ChannelPublishPermissionDenied,
            Area::Storage => ErrorCode::StoragePermissionDenied,
            Area::Lock => ErrorCode::LockPermissionDenied,
            Area::History => ErrorCode::HistoryPermissionDenied,
        }
    }
}

/// One permission a request needs: `permission` (read or write) on the resource `name`
/// of `resource` type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Need {
    resource: u16,
    permission: u16,
    name: String,
    area: Area,
}

/// The resource type of a wire channel type and name: (type, name). USER resolves an
/// empty name to the caller. `None` for an unknown channel type.
fn resource(channel_type: i32, name: &str, caller: &str) -> Option<(u16, String)> {
    match pb::ChannelType::try_from(channel_type) {
        Ok(pb::ChannelType::Message) => Some((MESSAGE_CHANNELS, name.to_owned())),
        Ok(pb::ChannelType::Stream) => Some((STREAM_CHANNELS, name.to_owned())),
        Ok(pb::ChannelType::User) if name.is_empty() => Some((USERS, caller.to_owned())),
        Ok(pb::ChannelType::User) => Some((USERS, name.to_owned())),
        _ => None,
    }
}

/// A user id of a request, the caller when empty.
fn or_caller<'a>(name: &'a str, caller: &'a str) -> &'a str {
    if name.is_empty() { caller } else { name }
}

/// What `body`, sent by `caller`, needs (possibly nothing).
pub(crate) fn needs(body: &Body, caller: &str) -> Vec<Need> {
    let need = |resource: u16, permission: u16, name: &str, area: Area| Need {
        resource,
        permission,
        name: name.to_owned(),
        area,
    };
    let on = |channel_type: i32, name: &str, permission: u16, area: Area| {
        resource(channel_type, name, caller)
            .map(|(resource, name)| Need {
                resource,
                permission,
                name,
                area,
            })
            .into_iter()
            .collect::<Vec<_>>()
    };
    match body {
        Body::Subscribe(r) => {
            let mut v = vec![need(
                MESSAGE_CHANNELS,
                READ,
                &r.channel_name,
                Area::Subscribe,
            )];
            if !r.state.is_empty() {
                v.push(need(
                    MESSAGE_CHANNELS,
                    WRITE,
                    &r.channel_name,
                    Area::Publish,
                ));
            }
            v
        }
        Body::Join(r) => {
            let mut v = vec![need(
                STREAM_CHANNELS,
                READ,
                &r.channel_name,
                Area::Subscribe,
            )];
            if !r.state.is_empty() {
                v.push(need(STREAM_CHANNELS, WRITE, &r.channel_name, Area::Publish));
            }
            v
        }
        Body::JoinTopic(r) => vec![need(
            STREAM_CHANNELS,
            READ,
            &r.channel_name,
            Area::Subscribe,
        )],
        Body::SubscribeTopic(r) => {
            vec![need(
                STREAM_CHANNELS,
                READ,
                &r.channel_name,
                Area::Subscribe,
            )]
        }
        Body::PublishTopicMessage(r) => {
            vec![need(STREAM_CHANNELS, WRITE, &r.channel_name, Area::Publish)]
        }
        Body::Publish(r) => on(r.channel_type, &r.channel_name, WRITE, Area::Publish),
        Body::GetMessages(r) => on(r.channel_type, &r.channel_name, READ, Area::History),
        Body::WhoNow(r) => on(r.channel_type, &r.channel_name, READ, Area::Subscribe),
        Body::GetState(r) => on(r.channel_type, &r.channel_name, READ, Area::Subscribe),
        Body::WhereNow(r) => vec![need(
            USERS,
            READ,
            or_caller(&r.user_id, caller),
            Area::Subscribe,
        )],
        Body::SetState(r) => on(r.channel_type, &r.channel_name, WRITE, Area::Publish),
        Body::RemoveState(r) => on(r.channel_type, &r.channel_name, WRITE, Area::Publish),
        Body::GetMetadata(r) => on(r.channel_type, &r.channel_name, READ, Area::Storage),
        Body::SetMetadata(r) | Body::UpdateMetadata(r) | Body::RemoveMetadata(r) => {
            on(r.channel_type, &r.channel_name, WRITE, Area::Storage)
        }
        Body::SubscribeUserMetadata(r) => {
            vec![need(
                USERS,
                READ,
                or_caller(&r.user_id, caller),
                Area::Storage,
            )]
        }
        Body::GetLock(r) => on(r.channel_type, &r.channel_name, READ, Area::Lock),
        Body::SetLock(r) => on(r.channel_type, &r.channel_name, WRITE, Area::Lock),
        Body::RemoveLock(r) => on(r.channel_type, &r.channel_name, WRITE, Area::Lock),
        Body::AcquireLock(r) => on(r.channel_type, &r.channel_name, WRITE, Area::Lock),
        Body::ReleaseLock(r) => on(r.channel_type, &r.channel_name, WRITE, Area::Lock),
        Body::RevokeLock(r) => on(r.channel_type, &r.channel_name, WRITE, Area::Lock),
        Body::Login(_)
        | Body::Logout(_)
        | Body::RenewToken(_)
        | Body::Heartbeat(_)
        | Body::Unsubscribe(_)
        | Body::Leave(_)
        | Body::LeaveTopic(_)
        | Body::UnsubscribeTopic(_)
        | Body::UnsubscribeUserMetadata(_) => Vec::new(),
    }
}

fn type_name(resource: u16) -> &'static str {
    match resource {
        MESSAGE_CHANNELS => "message channel",
        STREAM_CHANNELS => "stream channel",
        USERS => "user",
        _ => "resource",
    }
}

/// Refuses the first of `needs` that `grants` does not cover, with its area's code
/// and a reason naming the resource and the permission.
pub(crate) fn check(grants: Option<&Rtm2Grants>, needs: &[Need]) -> Result<(), Failure> {
    let Some(grants) = grants else {
        return Ok(());
    };
    for n in needs {
        if !grants.allows(n.resource, n.permission, &n.name) {
            let permission = if n.permission == WRITE {
                "write"
            } else {
                "read"
            };
            return Err(Failure::new(
                n.area.code(),
                format!(
                    "the RTM2 token's permissions do not grant {permission} on {} {} \
                     (resource type {}, permission type {}; T46)",
                    type_name(n.resource),
                    n.name,
                    n.resource,
                    n.permission
                ),
            ));
        }
    }
    Ok(())
}

/// Whether `session` may send `body`: its RTM2 grants (if any) against what the
/// request needs.
pub(crate) fn authorize(session: &Session, body: &Body) -> Result<(), Failure> {
    // Every request passes here: without enforcement (the default) no grants are ever
    // set, so the session's lock is not taken.
    if !session.app.tokens.rtm2_permissions {
        return Ok(());
    }
    let grants = session.lock().rtm2_grants.clone();
    match grants {
        None => Ok(()),
        Some(g) => check(Some(&g), &needs(body, &session.user)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_token::Rtm2Permission;

    fn grants(entries: &[(u16, u16, &str)]) -> Rtm2Grants {
        Rtm2Grants::new(
            entries
                .iter()
                .map(|&(resource_type, permission_type, name)| Rtm2Permission {
                    resource_type,
                    permission_type,
                    resources: vec![name.to_owned()],
                })
                .collect(),
        )
    }

    #[test]
    fn every_refusal_names_the_resource_and_uses_its_areas_code() {
        let g = grants(&[(MESSAGE_CHANNELS, READ, "lobby")]);
        let publish = Body::Publish(pb::PublishRequest {
            channel_type: pb::ChannelType::User as i32,
            channel_name: "bob".into(),
            ..Default::default()
        });
        let e = check(Some(&g), &needs(&publish, "alice")).unwrap_err();
        assert_eq!(e.code, ErrorCode::ChannelPublishPermissionDenied);
        assert!(e.reason.contains("write on user bob"), "{}", e.reason);
        let sub = Body::Subscribe(pb::SubscribeRequest {
            channel_name: "lobby".into(),
            ..Default::default()
        });
        assert!(check(Some(&g), &needs(&sub, "alice")).is_ok());
        // Setting presence state while subscribing also needs write.
        let mut with_state = pb::SubscribeRequest {
            channel_name: "lobby".into(),
            ..Default::default()
        };
        with_state.state.insert("k".into(), "v".into());
        let e = check(Some(&g), &needs(&Body::Subscribe(with_state), "alice")).unwrap_err();
        assert_eq!(e.code, ErrorCode::ChannelPublishPermissionDenied);
        // Unbounded sessions pass everything.
        assert!(check(None, &needs(&publish, "alice")).is_ok());
    }

    #[test]
    fn own_user_metadata_resolves_to_the_caller() {
        let g = grants(&[(USERS, READ, "alice")]);
        let own = Body::GetMetadata(pb::GetMetadataRequest {
            channel_type: pb::ChannelType::User as i32,
            channel_name: String::new(),
        });
        assert!(check(Some(&g), &needs(&own, "alice")).is_ok());
        let e = check(Some(&g), &needs(&own, "bob")).unwrap_err();
        assert_eq!(e.code, ErrorCode::StoragePermissionDenied);
    }
}
