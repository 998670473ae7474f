//! Who may connect, per app: the browsers' origin allow-lists (the node's list, the
//! default, and an app's own list, which replaces it for that app) and each app's count
//! of logged-in connections against its `max_connections`. The gateway asks at the
//! handshake (is the origin allowed for any app?), the login once the app is known.

use super::config::{AppConfig, ServerConfig};
use crate::wire::Failure;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use switchboard_protocol::ErrorCode;

/// Whether `origin` is on `list` (`scheme://host[:port]`, host names in any case, a
/// trailing `/` ignored; `*` allows any); an empty list allows any.
pub(crate) fn origin_listed(list: &[String], origin: &str) -> bool {
    if list.is_empty() {
        return true;
    }
    let origin = origin.trim_end_matches('/');
    list.iter()
        .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// The allow-list that applies to `app`: its own when it has one, else the node's.
pub(crate) fn origins_of<'a>(config: &'a ServerConfig, app: &'a AppConfig) -> &'a [String] {
    app.allowed_origins
        .as_deref()
        .unwrap_or(&config.allowed_origins)
}

/// Whether a WebSocket handshake with this `Origin` header may go on: one without (not
/// a browser) always may; a browser's when some app would accept its origin (the app's
/// own list, or the node's for the apps without one). The login checks the app's list.
pub(crate) fn handshake_allowed(config: &ServerConfig, origin: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if config.apps.iter().all(|a| a.allowed_origins.is_none()) {
        return origin_listed(&config.allowed_origins, origin);
    }
    config
        .apps
        .iter()
        .any(|a| origin_listed(origins_of(config, a), origin))
}

/// Refuses a login to `app` from a browser whose origin the app does not allow
/// (−10012 `LOGIN_REJECTED` with the reason).
pub(crate) fn check_login_origin(
    config: &ServerConfig,
    app: &AppConfig,
    origin: Option<&str>,
) -> Result<(), Failure> {
    match origin {
        Some(o) if !origin_listed(origins_of(config, app), o) => Err(Failure::new(
            ErrorCode::LoginRejected,
            format!("origin {o} is not allowed for app {}", app.id),
        )),
        _ => Ok(()),
    }
}

/// Logged-in connections of each app.
pub(crate) struct AppConnections {
    counts: HashMap<String, Arc<AtomicUsize>>,
}

/// One connection's place in its app's count; freed when dropped.
pub(crate) struct AppSlot {
    count: Arc<AtomicUsize>,
}

impl Drop for AppSlot {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AppConnections {
    /// A zero count for each of `apps`.
    pub fn new(apps: &[AppConfig]) -> AppConnections {
        AppConnections {
            counts: apps
                .iter()
                .map(|a| (a.id.clone(), Arc::default()))
                .collect(),
        }
    }

    /// A place for one more connection of `app`: past its `max_connections` (0: no
    /// limit) the login fails with −10010 `LOGIN_NO_SERVER_RESOURCES` and the reason,
    /// unless `over_limit` (a resume: its session holds a place already, the
    /// connection it replaces is going).
    pub fn take(&self, app: &AppConfig, over_limit: bool) -> Result<AppSlot, Failure> {
        let Some(count) = self.counts.get(&app.id) else {
            return Err(Failure::new(
                ErrorCode::InvalidAppId,
                format!("app id {} is not configured on this server", app.id),
            ));
        };
        let max = app.limits.max_connections;
        let now = count.fetch_add(1, Ordering::Relaxed) + 1;
        let slot = AppSlot {
            count: count.clone(),
        };
        if max > 0 && now > max && !over_limit {
            drop(slot);
            return Err(Failure::new(
                ErrorCode::LoginNoServerResources,
                format!("app {} is at its limit of {max} connections", app.id),
            ));
        }
        Ok(slot)
    }

    /// The logged-in connections of `app` now.
    #[cfg(test)]
    pub fn count(&self, app: &str) -> usize {
        self.counts
            .get(app)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(global: &[&str], own: Option<&[&str]>) -> ServerConfig {
        let mut app = AppConfig::new("a1b2c3d4e5f60718293a4b5c6d7e8f90", None);
        app.allowed_origins = own.map(|l| l.iter().map(|s| s.to_string()).collect());
        let other = AppConfig::new("0123456789abcdef0123456789abcdef", None);
        ServerConfig {
            apps: vec![app, other],
            allowed_origins: global.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn an_apps_own_list_replaces_the_nodes_for_that_app() {
        let c = config(&["https://a.example"], Some(&["https://b.example"]));
        let (own, default) = (&c.apps[0], &c.apps[1]);
        // The handshake lets through what some app allows.
        assert!(handshake_allowed(&c, Some("https://a.example")));
        assert!(handshake_allowed(&c, Some("https://B.example/")));
        assert!(!handshake_allowed(&c, Some("https://c.example")));
        assert!(handshake_allowed(&c, None));
        // The login: the app's own list, else the node's.
        assert!(check_login_origin(&c, own, Some("https://b.example")).is_ok());
        let e = check_login_origin(&c, own, Some("https://a.example")).unwrap_err();
        assert_eq!(e.code, ErrorCode::LoginRejected);
        assert!(e.reason.contains("https://a.example"), "{}", e.reason);
        assert!(check_login_origin(&c, default, Some("https://a.example")).is_ok());
        assert!(check_login_origin(&c, default, Some("https://b.example")).is_err());
        assert!(check_login_origin(&c, own, None).is_ok(), "not a browser");
        // Without any list every origin goes.
        let open = config(&[], None);
        assert!(handshake_allowed(&open, Some("https://any.example")));
        assert!(check_login_origin(&open, &open.apps[0], Some("https://any.example")).is_ok());
    }

    #[test]
    fn an_apps_connections_are_counted_against_its_limit() {
        let mut app = AppConfig::new("a1b2c3d4e5f60718293a4b5c6d7e8f90", None);
        app.limits.max_connections = 2;
        let conns = AppConnections::new(std::slice::from_ref(&app));
        let take = |over_limit: bool, what: &str| match conns.take(&app, over_limit) {
            Ok(slot) => slot,
            Err(e) => panic!("{what}: {}", e.reason),
        };
        let first = take(false, "first");
        let _second = take(false, "second");
        let Err(e) = conns.take(&app, false) else {
            panic!("the third is refused");
        };
        assert_eq!(e.code, ErrorCode::LoginNoServerResources);
        assert!(e.reason.contains("limit of 2"), "{}", e.reason);
        assert_eq!(conns.count(&app.id), 2, "a refused one holds no place");
        let resumed = take(true, "a resume goes past the limit");
        drop((first, resumed));
        assert_eq!(conns.count(&app.id), 1);
        take(false, "a place came back");
    }
}
