//! [`Sessions`] on Redis: the claim `u{app,user}:sess` → `<len>:<node><session id>`,
//! written by `session_claim.lua` (which PUBLISHes the kick on the former node's
//! `<prefix>ctl:<node>` channel) and removed by `session_release.lua` only if unchanged.
//! A node never kicks its own sessions this way: the server's registry does that.
//! `nodes` reads the heartbeat ZSET `<prefix>nodes` against Redis's clock.
//!
//! A session hand-over (a client resuming on another node) travels on the same control
//! channels, inside the kick's framing `<len>:<app><len>:<user><rest>` (a session id
//! never starts with `>` or `<`):
//! - request, on the holder's channel: rest =
//!   `><len>:<asking node><len>:<request id><len>:<deadline, ms since the epoch><session id>`;
//!   the holder ignores a request it hears too close to its deadline (the asker has
//!   given up by then and started a new session), so that a session is never handed to
//!   a node no longer waiting for it;
//! - reply, on the asker's channel: rest = `<<len>:<request id>` then `0`, or `1` and
//!   the session's state (the server's text, carried unread).

use crate::broker::{Inner, RedisEngine, bad_reply};
use crate::config::reply;
use crate::keys::{base, len_prefixed, split_len};
use crate::presence::user_key;
use crate::scripts::SCRIPTS;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;
use switchboard_engine::{ChannelKey, Claim, EngineError, KickHandler, NodeSeen, Sessions};
use tokio::sync::oneshot;

/// Hand-over requests waiting for their reply, by (asking node, request id); one map
/// for every engine of the process (tests run several nodes in one).
static PENDING: LazyLock<Mutex<Waiting>> = LazyLock::new(Default::default);

/// (asking node, request id) → where its reply goes.
type Waiting = HashMap<(String, String), oneshot::Sender<Option<String>>>;

/// A hand-over request heard less than this before its deadline is ignored: the
/// holder's answer must reach the asker while it still waits.
const HANDOVER_MARGIN_MS: u64 = 500;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2))
}

/// Request ids, unique within the process.
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

fn pending() -> std::sync::MutexGuard<'static, Waiting> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// What this node's control channel carries to the server's handler: kicks as they
/// are, hand-over requests answered through [`KickHandler::give_up`], hand-over
/// replies to the request waiting for them.
struct Control {
    handler: Arc<dyn KickHandler>,
    inner: Weak<Inner>,
}

impl KickHandler for Control {
    fn on_kick(&self, app: &str, user: &str, rest: &str) {
        if let Some(req) = rest.strip_prefix('>') {
            let Some((asker, req)) = split_str(req) else {
                return;
            };
            let Some((request, req)) = split_str(req) else {
                return;
            };
            let Some((deadline, session)) = split_str(req) else {
                return;
            };
            let late = match deadline.parse::<u64>() {
                Ok(d) => now_ms() + HANDOVER_MARGIN_MS >= d,
                Err(_) => true,
            };
            if late {
                tracing::info!(%user, node = %asker, "a session hand-over request heard too late; ignored");
                return;
            }
            let (handler, inner) = (self.handler.clone(), self.inner.clone());
            let (app, user) = (app.to_string(), user.to_string());
            let (asker, request, session) =
                (asker.to_string(), request.to_string(), session.to_string());
            tokio::spawn(async move {
                let state = handler.give_up(&app, &user, &session).await;
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                let given = state.is_some();
                let body = match state {
                    Some(s) => format!("1{s}"),
                    None => "0".to_string(),
                };
                let msg = format!(
                    "{}{}<{}{body}",
                    len_prefixed(&app),
                    len_prefixed(&user),
                    len_prefixed(&request)
                );
                let channel = format!("{}ctl:{asker}", inner.prefix());
                let sent: Result<i64, _> =
                    inner.cmd(redis::cmd("PUBLISH").arg(channel).arg(msg)).await;
                if given {
                    // Its memberships are the asking node's from now on: this node
                    // does not write them again after a loss of Redis data.
                    inner.members.forget_user(&app, &user);
                    if !matches!(sent, Ok(n) if n > 0) {
                        tracing::warn!(%user, node = %asker, "session handed over, but the asking node did not hear it");
                    }
                }
            });
        } else if let Some(reply) = rest.strip_prefix('<') {
            let Some((request, body)) = split_str(reply) else {
                return;
            };
            let Some(inner) = self.inner.upgrade() else {
                return;
            };
            let waiting = pending().remove(&(inner.config.node_id.clone(), request.to_string()));
            if let Some(tx) = waiting {
                let state = body.strip_prefix('1').map(str::to_string);
                let _ = tx.send(state);
            }
        } else {
            self.handler.on_kick(app, user, rest);
        }
    }
}

/// Splits `<len>:<head><rest>` of text.
fn split_str(s: &str) -> Option<(&str, &str)> {
    let (head, rest) = split_len(s.as_bytes())?;
    Some((
        std::str::from_utf8(head).ok()?,
        std::str::from_utf8(rest).ok()?,
    ))
}

fn parse_claim(v: &[u8]) -> Result<Claim, EngineError> {
    let (node, session) = split_len(v).ok_or_else(|| bad_reply("session claim"))?;
    let text = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(Arc::from)
            .map_err(|_| bad_reply("session claim"))
    };
    Ok(Claim {
        node: text(node)?,
        session_id: text(session)?,
    })
}

#[async_trait::async_trait]
impl Sessions for RedisEngine {
    fn set_kick_handler(&self, handler: Arc<dyn KickHandler>) {
        self.inner.broker.set_kick(Arc::new(Control {
            handler,
            inner: Arc::downgrade(&self.inner),
        }));
    }

    async fn claim_of(&self, app: &str, user: &str) -> Result<Option<Claim>, EngineError> {
        let i = &*self.inner;
        let v: Option<Vec<u8>> = i
            .cmd(redis::cmd("GET").arg(user_key(i.prefix(), app, user, "sess")))
            .await?;
        v.map(|v| parse_claim(&v)).transpose()
    }

    async fn take_session(
        &self,
        app: &str,
        user: &str,
        from: &Claim,
        deadline: Duration,
    ) -> Result<Option<String>, EngineError> {
        let i = &*self.inner;
        if *from.node == *i.config.node_id {
            return Ok(None);
        }
        let request = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed).to_string();
        let key = (i.config.node_id.clone(), request.clone());
        let (tx, rx) = oneshot::channel();
        pending().insert(key.clone(), tx);
        let until = now_ms() + u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX / 2);
        let msg = format!(
            "{}{}>{}{}{}{}",
            len_prefixed(app),
            len_prefixed(user),
            len_prefixed(&i.config.node_id),
            len_prefixed(&request),
            len_prefixed(&until.to_string()),
            from.session_id
        );
        let channel = format!("{}ctl:{}", i.prefix(), from.node);
        let heard: i64 = match i.cmd(redis::cmd("PUBLISH").arg(channel).arg(msg)).await {
            Ok(n) => n,
            Err(e) => {
                pending().remove(&key);
                return Err(e);
            }
        };
        if heard == 0 {
            // Nobody reads that node's channel: it is gone.
            pending().remove(&key);
            return Ok(None);
        }
        match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(state)) => Ok(state),
            _ => {
                pending().remove(&key);
                Ok(None)
            }
        }
    }

    async fn held_elsewhere(
        &self,
        user: &str,
        channels: &[ChannelKey],
    ) -> Result<Vec<bool>, EngineError> {
        let i = &*self.inner;
        let mut out = Vec::with_capacity(channels.len());
        for key in channels {
            let rec: Option<Vec<u8>> = i
                .cmd(
                    redis::cmd("HGET")
                        .arg(format!("{}:pm", base(i.prefix(), key)))
                        .arg(user),
                )
                .await?;
            let node = rec
                .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r).ok())
                .and_then(|v| v.get("n").and_then(|n| n.as_str()).map(str::to_string));
            out.push(node.is_some_and(|n| n != i.config.node_id));
        }
        Ok(out)
    }

    async fn claim_session(
        &self,
        app: &str,
        user: &str,
        session_id: &str,
        resuming: Option<&str>,
    ) -> Result<Option<Claim>, EngineError> {
        let i = &*self.inner;
        let v = i
            .run(
                SCRIPTS
                    .session_claim
                    .key(user_key(i.prefix(), app, user, "sess"))
                    .arg(i.prefix())
                    .arg(app)
                    .arg(user)
                    .arg(&i.config.node_id)
                    .arg(session_id)
                    .arg(resuming.unwrap_or("")),
            )
            .await?;
        let Some(old) = reply::bytes(&v) else {
            return Ok(None);
        };
        parse_claim(old).map(Some)
    }

    async fn release_session(
        &self,
        app: &str,
        user: &str,
        session_id: &str,
    ) -> Result<bool, EngineError> {
        let i = &*self.inner;
        let claim = format!("{}{session_id}", len_prefixed(&i.config.node_id));
        let v = i
            .run(
                SCRIPTS
                    .session_release
                    .key(user_key(i.prefix(), app, user, "sess"))
                    .arg(i.prefix())
                    .arg(claim)
                    .arg(&i.config.node_id),
            )
            .await?;
        Ok(reply::int(&v) == Some(1))
    }

    async fn nodes(&self) -> Result<Vec<NodeSeen>, EngineError> {
        let i = &*self.inner;
        let (secs, micros): (u64, u64) = i.cmd(&redis::cmd("TIME")).await?;
        let now_ms = secs * 1000 + micros / 1000;
        let beats: Vec<(String, f64)> = i
            .cmd(
                redis::cmd("ZRANGE")
                    .arg(format!("{}nodes", i.prefix()))
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES"),
            )
            .await?;
        let mut nodes: Vec<NodeSeen> = beats
            .into_iter()
            .map(|(id, at)| NodeSeen {
                this: id == i.config.node_id,
                id: id.into(),
                heartbeat_age_ms: now_ms.saturating_sub(at as u64),
            })
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }
}
