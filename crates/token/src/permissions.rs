//! RTM2 resource permissions (token.md §5 "RTM2 permission tree", T46, §16): the grants
//! an RTM2 login token carries, how a resource name matches an entry of the tree, and
//! which tree bounds a login.
//!
//! token.md gives only the layout of the tree. The decisions taken here, where it is
//! silent (docs/token.md, "RTM2 permissions"):
//!
//! - a grant is a (resource type, permission type, resource name) triple; read and
//!   write are separate grants (write does not imply read);
//! - a resource name in the tree matches a name exactly (byte-wise); `*` alone matches
//!   every name; a name ending in `*` matches every name starting with what comes
//!   before it (`room-*` matches `room-1` and `room-`); no other wildcard;
//! - a login granted by an RTM service (type 2) is not bounded by any tree; a login
//!   granted only by RTM2 services (type 8) is bounded by the union of the trees of
//!   those that match the user and whose login privilege has not lapsed.

use crate::ids::privilege;
use crate::service::{Rtm2Permission, Service};
use crate::token::AccessToken;
use crate::verify::VerifyOptions;

/// What an RTM2 login token lets its session do: the union of its permission trees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rtm2Grants {
    permissions: Vec<Rtm2Permission>,
}

impl Rtm2Grants {
    /// Grants made of these tree entries.
    pub fn new(permissions: Vec<Rtm2Permission>) -> Rtm2Grants {
        Rtm2Grants { permissions }
    }

    /// The tree entries, in token order.
    pub fn permissions(&self) -> &[Rtm2Permission] {
        &self.permissions
    }

    /// Whether `permission_type` on the resource `name` of `resource_type` is granted.
    pub fn allows(&self, resource_type: u16, permission_type: u16, name: &str) -> bool {
        self.permissions.iter().any(|p| {
            p.resource_type == resource_type
                && p.permission_type == permission_type
                && p.resources.iter().any(|r| resource_matches(r, name))
        })
    }
}

/// Whether the tree's resource name `pattern` covers `name`: equal, `*` (every name),
/// or `prefix*` (every name starting with `prefix`).
pub fn resource_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

impl AccessToken {
    /// The grants that bound a login of `user_id` with this token at `now`, for a
    /// deployment that enforces RTM2 permissions: `None` when the login does not rest
    /// on an RTM2 service (an RTM service for the user or the wildcard with an unlapsed
    /// login privilege grants it, or RTM2 is not accepted, `opts.accept_rtm2` false);
    /// otherwise the union of the trees of the RTM2 services for the user (or the
    /// wildcard) whose login privilege has not lapsed — empty, so granting nothing,
    /// when none qualifies. Call it after [`AccessToken::check_login`] succeeded.
    pub fn login_grants(
        &self,
        user_id: &str,
        now: u64,
        opts: &VerifyOptions,
    ) -> Option<Rtm2Grants> {
        if !opts.accept_rtm2 {
            return None;
        }
        let for_user = |u: &str| u.is_empty() || u == user_id;
        let mut permissions = Vec::new();
        for service in &self.services {
            match service {
                Service::Rtm { user_id: u, .. }
                    if for_user(u.as_str()) && self.login_unlapsed(service, now, opts) =>
                {
                    return None;
                }
                Service::Rtm2 {
                    user_id: u,
                    permissions: tree,
                    ..
                } if for_user(u.as_str()) && self.login_unlapsed(service, now, opts) => {
                    permissions.extend(tree.iter().cloned());
                }
                _ => {}
            }
        }
        Some(Rtm2Grants { permissions })
    }

    /// Whether `service` carries the login privilege and it has not lapsed (T29–T31).
    fn login_unlapsed(&self, service: &Service, now: u64, opts: &VerifyOptions) -> bool {
        let token_end = self.honoured_until(opts);
        match service.privileges().get(&privilege::RTM_LOGIN) {
            Some(0) => now < token_end,
            Some(&v) => now < token_end.min(u64::from(self.issue_ts) + u64::from(v)),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenBuilder;
    use crate::ids::rtm2::{MESSAGE_CHANNELS, READ, STREAM_CHANNELS, USERS, WRITE};

    const APP: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const CERT: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";

    fn perm(resource_type: u16, permission_type: u16, names: &[&str]) -> Rtm2Permission {
        Rtm2Permission {
            resource_type,
            permission_type,
            resources: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn on() -> VerifyOptions {
        VerifyOptions {
            accept_rtm2: true,
            ..Default::default()
        }
    }

    #[test]
    fn names_match_exactly_or_by_star_or_by_prefix() {
        assert!(resource_matches("lobby", "lobby"));
        assert!(!resource_matches("lobby", "Lobby"));
        assert!(!resource_matches("lobby", "lobby2"));
        assert!(!resource_matches("lobby", "lob"));
        assert!(resource_matches("*", "anything"));
        assert!(resource_matches("*", ""));
        assert!(resource_matches("room-*", "room-1"));
        assert!(resource_matches("room-*", "room-"));
        assert!(!resource_matches("room-*", "room"));
        assert!(!resource_matches("room-*", "xroom-1"));
        // A star elsewhere is a literal character.
        assert!(resource_matches("a*b", "a*b"));
        assert!(!resource_matches("a*b", "axb"));
    }

    #[test]
    fn grants_are_per_resource_type_permission_and_name() {
        let g = Rtm2Grants::new(vec![
            perm(MESSAGE_CHANNELS, READ, &["lobby", "news"]),
            perm(MESSAGE_CHANNELS, WRITE, &["lobby"]),
            perm(STREAM_CHANNELS, READ, &["room-*"]),
            perm(USERS, WRITE, &["*"]),
        ]);
        assert!(g.allows(MESSAGE_CHANNELS, READ, "news"));
        assert!(
            !g.allows(MESSAGE_CHANNELS, WRITE, "news"),
            "write is its own grant"
        );
        assert!(g.allows(MESSAGE_CHANNELS, WRITE, "lobby"));
        assert!(
            !g.allows(STREAM_CHANNELS, READ, "lobby"),
            "types do not mix"
        );
        assert!(g.allows(STREAM_CHANNELS, READ, "room-7"));
        assert!(!g.allows(STREAM_CHANNELS, WRITE, "room-7"));
        assert!(g.allows(USERS, WRITE, "bob"));
        assert!(!g.allows(USERS, READ, "bob"));
        assert!(!Rtm2Grants::default().allows(MESSAGE_CHANNELS, READ, "lobby"));
    }

    #[test]
    fn t46_an_rtm_service_leaves_the_login_unbounded_rtm2_alone_bounds_it() {
        let tree = vec![perm(MESSAGE_CHANNELS, READ, &["lobby"])];
        let ts = 1_700_000_000;
        let only_rtm2 = TokenBuilder::new(APP, CERT, 3600)
            .issue_ts(ts)
            .add_service(Service::rtm2("dave", tree.clone(), 3600))
            .build()
            .unwrap();
        let t = AccessToken::parse(&only_rtm2).unwrap();
        let now = u64::from(ts) + 10;
        assert_eq!(
            t.login_grants("dave", now, &on()),
            Some(Rtm2Grants::new(tree.clone()))
        );
        assert_eq!(
            t.login_grants("dave", now, &VerifyOptions::default()),
            None,
            "RTM2 not accepted: no tree applies"
        );
        // Another user's RTM2 service grants nothing to this one.
        assert_eq!(
            t.login_grants("erin", now, &on()),
            Some(Rtm2Grants::default())
        );

        let both = TokenBuilder::new(APP, CERT, 3600)
            .issue_ts(ts)
            .add_service(Service::rtm("dave", 3600))
            .add_service(Service::rtm2("dave", tree.clone(), 3600))
            .build()
            .unwrap();
        let t = AccessToken::parse(&both).unwrap();
        assert_eq!(t.login_grants("dave", now, &on()), None);

        // A lapsed RTM login privilege leaves the RTM2 tree in charge.
        let lapsed_rtm = TokenBuilder::new(APP, CERT, 3600)
            .issue_ts(ts)
            .add_service(Service::rtm("dave", 5))
            .add_service(Service::rtm2("", tree.clone(), 3600))
            .build()
            .unwrap();
        let t = AccessToken::parse(&lapsed_rtm).unwrap();
        assert_eq!(
            t.login_grants("dave", now, &on()),
            Some(Rtm2Grants::new(tree))
        );
    }
}
