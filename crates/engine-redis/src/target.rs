//! Where the engine's Redis is: one server (`redis://…`) or the master of a Sentinel
//! group (`redis+sentinel://…`), and resolving that to a client at every (re)connect.

use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use switchboard_engine::EngineError;

/// Sentinel's default port, used when a sentinel address has none.
const SENTINEL_PORT: u16 = 26379;

/// The engine's Redis, as configured by its URL.
pub(crate) enum Target {
    /// One server; reconnects go to the same address.
    Direct(redis::Client),
    /// The master named `master`, asked of the sentinels at every (re)connect.
    Sentinel {
        sentinel: tokio::sync::Mutex<Sentinel>,
        master: String,
        node: SentinelNodeConnectionInfo,
    },
}

fn bad_url(why: &str) -> EngineError {
    EngineError::Unavailable(format!("redis: bad Redis URL: {why}"))
}

/// The parts of `redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/MASTER[/DB]`:
/// the sentinel URLs, the master's name and the master's connection settings.
pub(crate) fn parse_sentinel_url(
    url: &str,
) -> Result<(Vec<String>, String, redis::RedisConnectionInfo), EngineError> {
    let rest = url
        .strip_prefix("redis+sentinel://")
        .ok_or_else(|| bad_url("a Sentinel URL starts with redis+sentinel://"))?;
    let (authority, path) = rest.split_once('/').ok_or_else(|| {
        bad_url("redis+sentinel://HOST:PORT[,HOST:PORT…]/MASTER_NAME[/DB] needs the master's name")
    })?;
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let mut sentinels = Vec::new();
    for h in hosts.split(',') {
        let h = h.trim();
        if h.is_empty() {
            return Err(bad_url("an empty sentinel address"));
        }
        let with_port = match h.rsplit_once(':') {
            Some((_, p)) if !h.ends_with(']') => {
                p.parse::<u16>()
                    .map_err(|_| bad_url(&format!("sentinel address {h:?}: bad port")))?;
                h.to_string()
            }
            _ => format!("{h}:{SENTINEL_PORT}"),
        };
        sentinels.push(format!("redis://{with_port}"));
    }
    let path = path.split('?').next().unwrap_or("");
    let mut parts = path.trim_end_matches('/').splitn(2, '/');
    let master = parts.next().unwrap_or("").to_string();
    if master.is_empty() {
        return Err(bad_url(
            "the master's name after the sentinel addresses is empty",
        ));
    }
    let db = match parts.next() {
        None | Some("") => 0,
        Some(d) => d
            .parse::<i64>()
            .map_err(|_| bad_url(&format!("database {d:?} is not a number")))?,
    };
    // The credentials are the master's (percent-decoded as in a redis:// URL).
    let auth = match userinfo {
        Some(u) => format!("redis://{u}@localhost/{db}"),
        None => format!("redis://localhost/{db}"),
    };
    let info = redis::Client::open(auth.as_str())
        .map_err(|e| bad_url(&e.to_string()))?
        .get_connection_info()
        .redis_settings()
        .clone();
    Ok((sentinels, master, info))
}

impl Target {
    /// The target of `url`: `redis://…`/`rediss://…`/`unix://…` as the `redis` crate
    /// reads them, or `redis+sentinel://…`.
    pub(crate) fn parse(url: &str) -> Result<Target, EngineError> {
        if url.starts_with("redis+sentinel://") {
            let (sentinels, master, info) = parse_sentinel_url(url)?;
            let sentinel = Sentinel::build(sentinels).map_err(|e| bad_url(&e.to_string()))?;
            Ok(Target::Sentinel {
                sentinel: tokio::sync::Mutex::new(sentinel),
                master,
                node: SentinelNodeConnectionInfo::default().set_redis_connection_info(info),
            })
        } else {
            Ok(Target::Direct(redis::Client::open(url).map_err(|e| {
                EngineError::Unavailable(format!("redis: {e}"))
            })?))
        }
    }

    /// Whether the address can change (Sentinel): a lost connection or a READONLY
    /// reply means asking the sentinels again.
    pub(crate) fn follows_master(&self) -> bool {
        matches!(self, Target::Sentinel { .. })
    }

    /// A client of the server to use now: the configured one, or the master the
    /// sentinels name (checked to call itself master).
    pub(crate) async fn client(&self) -> Result<redis::Client, EngineError> {
        match self {
            Target::Direct(c) => Ok(c.clone()),
            Target::Sentinel {
                sentinel,
                master,
                node,
            } => sentinel
                .lock()
                .await
                .async_master_for(master, Some(node))
                .await
                .map_err(|e| {
                    EngineError::Unavailable(format!(
                        "redis: no master {master:?} from the sentinels: {e}"
                    ))
                }),
        }
    }
}

/// `url` with its password (if any) replaced by `***`, for logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            let host = &rest[userinfo.len()..];
            format!("{scheme}://{user}:***{host}")
        }
        _ => url.to_string(),
    }
}

/// Whether `e` says the connection no longer reaches the master: lost, refused, timed
/// out, or READONLY (the server was demoted to a replica by a failover).
pub(crate) fn lost_master(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        )
}

#[cfg(test)]
mod tests {
    use super::parse_sentinel_url;

    #[test]
    fn sentinel_urls_name_sentinels_master_db_and_password() {
        let (s, m, info) =
            parse_sentinel_url("redis+sentinel://:se%40cret@10.0.0.1:26380,10.0.0.2/mymaster/3")
                .unwrap();
        assert_eq!(s, ["redis://10.0.0.1:26380", "redis://10.0.0.2:26379"]);
        assert_eq!(m, "mymaster");
        assert_eq!(info.db(), 3);
        assert_eq!(info.password(), Some("se@cret"));
        let (s, m, info) = parse_sentinel_url("redis+sentinel://127.0.0.1:5000/m").unwrap();
        assert_eq!((s.len(), m.as_str(), info.db()), (1, "m", 0));
        assert_eq!(info.password(), None);
    }

    #[test]
    fn passwords_are_redacted_for_logs() {
        use super::redacted;
        assert_eq!(
            redacted("redis+sentinel://:pw@a:1,b:2/m"),
            "redis+sentinel://:***@a:1,b:2/m"
        );
        assert_eq!(redacted("redis://u:pw@h:6379/0"), "redis://u:***@h:6379/0");
        assert_eq!(redacted("redis://h:6379"), "redis://h:6379");
    }

    #[test]
    fn bad_sentinel_urls_are_refused_with_a_reason() {
        for (url, why) in [
            ("redis+sentinel://127.0.0.1:26379", "master's name"),
            ("redis+sentinel://127.0.0.1:26379/", "empty"),
            ("redis+sentinel://127.0.0.1:x/m", "bad port"),
            ("redis+sentinel://a:1,,b:2/m", "empty sentinel"),
            ("redis+sentinel://a:1/m/zero", "not a number"),
        ] {
            let e = parse_sentinel_url(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
    }
}
