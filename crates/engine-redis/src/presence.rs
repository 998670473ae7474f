//! [`Presence`] on Redis. Per channel: a HASH user → `{q: quiet, s: state}` (`:pm`) and
//! a sorted set of visible users for paging (`:pv`). Per user: the channels where it is
//! visible (`pw`, for whereNow) and all its memberships (`pa`). One sorted set of user
//! deadlines (`pdue`) for expiry; the expiry script removes each member exactly once,
//! whichever node runs it, so departures are reported once.
//!
//! Each record names the node that entered it. `exit` leaves alone a record another node
//! entered, and a deadline set by `set_expiry` is the setting node's (`pdue` members are
//! `<len>:<node><len>:<app><user>`): it lapses only that node's memberships, so a member
//! that moved to another node is not removed by its old session. Each node keeps a SET of what it
//! entered and a heartbeat (Redis time, in the ZSET `nodes`, every
//! `RedisConfig::node_timeout / 5`). `expire_due` also removes — once, on whichever node
//! sweeps — the members of nodes whose heartbeat is older than `node_timeout`: the
//! members of a node that died.

use crate::broker::{Inner, RedisEngine, bad_reply};
use crate::config::reply;
use crate::keys::{cref, len_prefixed, parse_cref};
use crate::scripts::SCRIPTS;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use switchboard_engine::{
    ChannelKey, Departed, EngineError, Expired, Member, MemberPage, Presence, State,
};

/// Writes this node's memberships again each time the heartbeat finds them lost
/// (`Inner::members_lost`), until the engine shuts down. Started by the first `enter`.
async fn rewriter(inner: Arc<Inner>) {
    let mut shutdown = inner.broker.shutdown_signal();
    loop {
        tokio::select! {
            _ = inner.members_lost.notified() => rewrite(&inner).await,
            _ = shutdown.changed() => return,
        }
    }
}

/// Writes every membership this node entered again (after Redis lost them), as
/// `enter` would; the others are not told (no events: to them the members never left).
async fn rewrite(i: &Inner) {
    let all = i.members.all();
    let mut failed = 0usize;
    for ((channel, user), (quiet, state)) in &all {
        if enter_script(i, channel, user, *quiet, state).await.is_err() {
            failed += 1;
        }
    }
    tracing::warn!(
        node = %i.config.node_id,
        members = all.len(),
        failed,
        "redis: this node's members were gone from Redis (data lost, or the node taken for dead); written again"
    );
}

async fn enter_script(
    i: &Inner,
    channel: &ChannelKey,
    user: &str,
    quiet: bool,
    state: &State,
) -> Result<redis::Value, EngineError> {
    i.run(
        SCRIPTS
            .presence_enter
            .key(i.base(channel))
            .arg(i.prefix())
            .arg(&*channel.app)
            .arg(cref(channel))
            .arg(user)
            .arg(u8::from(quiet))
            .arg(state_json(state))
            .arg(&i.config.node_id),
    )
    .await
}

/// Most users one expiry sweep removes; the rest wait for the next sweep.
const EXPIRE_BATCH: usize = 1000;

fn state_json(state: &State) -> String {
    serde_json::Value::Object(
        state
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    )
    .to_string()
}

fn parse_state(v: &serde_json::Value) -> State {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect(),
        // An empty Lua table may come back as an array.
        _ => BTreeMap::new(),
    }
}

/// A member record: (quiet, state).
fn parse_record(b: &[u8]) -> Option<(bool, State)> {
    let v: serde_json::Value = serde_json::from_slice(b).ok()?;
    let quiet = v.get("q")?.as_i64()? == 1;
    Some((quiet, v.get("s").map(parse_state).unwrap_or_default()))
}

fn record(v: &redis::Value, what: &str) -> Result<(bool, State), EngineError> {
    reply::bytes(v)
        .and_then(parse_record)
        .ok_or_else(|| bad_reply(what))
}

#[async_trait::async_trait]
impl Presence for RedisEngine {
    async fn enter(
        &self,
        channel: &ChannelKey,
        user: &str,
        quiet: bool,
        state: State,
    ) -> Result<Option<bool>, EngineError> {
        let i = &*self.inner;
        if !i.rewriter_started.swap(true, Ordering::AcqRel) {
            tokio::spawn(rewriter(self.inner.clone()));
        }
        let v = enter_script(i, channel, user, quiet, &state).await?;
        i.members.entered(channel, user, quiet, state);
        Ok(match reply::int(&v) {
            Some(1) => Some(true),
            Some(-1) => Some(false),
            Some(0) => None,
            _ => return Err(bad_reply("presence enter")),
        })
    }

    async fn exit(
        &self,
        channel: &ChannelKey,
        user: &str,
    ) -> Result<Option<Departed>, EngineError> {
        let i = &*self.inner;
        let v = i
            .run(
                SCRIPTS
                    .presence_exit
                    .key(i.base(channel))
                    .arg(i.prefix())
                    .arg(&*channel.app)
                    .arg(cref(channel))
                    .arg(user)
                    .arg(&i.config.node_id),
            )
            .await?;
        // Gone from this node either way (removed, or entered by another node since).
        i.members.left(channel, user);
        if v == redis::Value::Nil {
            return Ok(None);
        }
        let (quiet, state) = record(&v, "presence exit")?;
        Ok(Some(Departed { quiet, state }))
    }

    async fn set_state(
        &self,
        channel: &ChannelKey,
        user: &str,
        items: State,
        max_keys: usize,
    ) -> Result<Option<State>, EngineError> {
        self.state_change(channel, user, "set", state_json(&items), max_keys)
            .await
    }

    async fn remove_state(
        &self,
        channel: &ChannelKey,
        user: &str,
        keys: &[String],
    ) -> Result<Option<State>, EngineError> {
        let json = serde_json::Value::Array(
            keys.iter()
                .map(|k| serde_json::Value::String(k.clone()))
                .collect(),
        )
        .to_string();
        self.state_change(channel, user, "remove", json, 0).await
    }

    async fn state(&self, channel: &ChannelKey, user: &str) -> Result<Option<State>, EngineError> {
        let i = &*self.inner;
        let v: redis::Value = i
            .cmd(
                redis::cmd("HGET")
                    .arg(format!("{}:pm", i.base(channel)))
                    .arg(user),
            )
            .await?;
        if v == redis::Value::Nil {
            return Ok(None);
        }
        let (quiet, state) = record(&v, "presence state")?;
        Ok((!quiet).then_some(state))
    }

    async fn list(
        &self,
        channel: &ChannelKey,
        after: Option<&str>,
        limit: usize,
    ) -> Result<MemberPage, EngineError> {
        let i = &*self.inner;
        let limit = limit.min(1 << 30);
        let v = i
            .run(
                SCRIPTS
                    .presence_list
                    .key(i.base(channel))
                    .arg(i.prefix())
                    .arg(after.unwrap_or(""))
                    .arg(limit as u64),
            )
            .await?;
        let items = reply::items(v);
        let mut members = Vec::new();
        for pair in items.chunks(2) {
            let [u, r] = pair else {
                return Err(bad_reply("presence list"));
            };
            let user = reply::string(u).ok_or_else(|| bad_reply("presence list"))?;
            let (_, state) = record(r, "presence list")?;
            members.push(Member {
                user: user.into(),
                state,
            });
        }
        let more = members.len() > limit;
        members.truncate(limit);
        Ok(MemberPage { members, more })
    }

    async fn count(&self, channel: &ChannelKey) -> Result<usize, EngineError> {
        let i = &*self.inner;
        let n: u64 = i
            .cmd(redis::cmd("ZCARD").arg(format!("{}:pv", i.base(channel))))
            .await?;
        Ok(n as usize)
    }

    async fn channels_of(&self, app: &str, user: &str) -> Result<Vec<ChannelKey>, EngineError> {
        let i = &*self.inner;
        let v: Vec<Vec<u8>> = i
            .cmd(
                redis::cmd("ZRANGE")
                    .arg(user_key(i.prefix(), app, user, "pw"))
                    .arg(0)
                    .arg(-1),
            )
            .await?;
        v.iter()
            .map(|c| parse_cref(c).ok_or_else(|| bad_reply("channels_of")))
            .collect()
    }

    async fn set_expiry(
        &self,
        app: &str,
        user: &str,
        expires_at_ms: Option<u64>,
    ) -> Result<(), EngineError> {
        let i = &*self.inner;
        let due = format!("{}pdue", i.prefix());
        // The deadline is this node's: it lapses the memberships this node entered.
        let member = format!(
            "{}{}{user}",
            len_prefixed(&i.config.node_id),
            len_prefixed(app)
        );
        match expires_at_ms {
            Some(at) => {
                i.cmd::<i64>(redis::cmd("ZADD").arg(due).arg(at).arg(member))
                    .await?
            }
            None => {
                i.cmd::<i64>(redis::cmd("ZREM").arg(due).arg(member))
                    .await?
            }
        };
        Ok(())
    }

    async fn expire_due(&self, now_ms: u64) -> Result<Vec<Expired>, EngineError> {
        let i = &*self.inner;
        let mut expired = Vec::new();
        loop {
            let v = i
                .run(
                    SCRIPTS
                        .presence_expire
                        .arg(i.prefix())
                        .arg(now_ms)
                        .arg(EXPIRE_BATCH as u64)
                        .arg(u64::try_from(i.config.node_timeout.as_millis()).unwrap_or(u64::MAX)),
                )
                .await?;
            let items = reply::items(v);
            let Some((swept, items)) = items.split_first() else {
                return Err(bad_reply("presence expire"));
            };
            for t in items.chunks(3) {
                let [c, u, r] = t else {
                    return Err(bad_reply("presence expire"));
                };
                let channel = reply::bytes(c)
                    .and_then(parse_cref)
                    .ok_or_else(|| bad_reply("presence expire"))?;
                let user = reply::string(u).ok_or_else(|| bad_reply("presence expire"))?;
                let (quiet, state) = record(r, "presence expire")?;
                i.members.left(&channel, &user);
                expired.push(Expired {
                    channel,
                    user: Arc::from(user),
                    departed: Departed { quiet, state },
                });
            }
            // Fewer users than a batch: the sweep is complete.
            if reply::int(swept).unwrap_or(0) < EXPIRE_BATCH as i64 {
                return Ok(expired);
            }
        }
    }
}

/// A per-user key (same layout as the scripts' `ukey`).
pub(crate) fn user_key(prefix: &str, app: &str, user: &str, suffix: &str) -> String {
    format!("{prefix}u{{{}{user}}}:{suffix}", len_prefixed(app))
}

impl RedisEngine {
    async fn state_change(
        &self,
        channel: &ChannelKey,
        user: &str,
        mode: &str,
        json: String,
        max_keys: usize,
    ) -> Result<Option<State>, EngineError> {
        let i = &*self.inner;
        let v = i
            .run(
                SCRIPTS
                    .presence_state
                    .key(i.base(channel))
                    .arg(i.prefix())
                    .arg(user)
                    .arg(mode)
                    .arg(json)
                    .arg(max_keys as u64),
            )
            .await?;
        let items = reply::items(v);
        match items.first().and_then(reply::string).as_deref() {
            Some("none") => Ok(None),
            Some("limit") => Err(EngineError::LimitReached(max_keys)),
            Some("ok") => {
                let (_, state) =
                    record(items.get(1).unwrap_or(&redis::Value::Nil), "presence state")?;
                i.members.state(channel, user, &state);
                Ok(Some(state))
            }
            _ => Err(bad_reply("presence state")),
        }
    }
}
