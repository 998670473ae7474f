//! [`Sessions`] on Redis: the claim `u{app,user}:sess` → `<len>:<node><session id>`,
//! written by `session_claim.lua` (which PUBLISHes the kick on the former node's
//! `<prefix>ctl:<node>` channel) and removed by `session_release.lua` only if unchanged.
//! A node never kicks its own sessions this way: the server's registry does that.
//! `nodes` reads the heartbeat ZSET `<prefix>nodes` against Redis's clock.

use crate::broker::{RedisEngine, bad_reply};
use crate::config::reply;
use crate::keys::{len_prefixed, split_len};
use crate::presence::user_key;
use crate::scripts::SCRIPTS;
use std::sync::Arc;
use switchboard_engine::{Claim, EngineError, KickHandler, NodeSeen, Sessions};

#[async_trait::async_trait]
impl Sessions for RedisEngine {
    fn set_kick_handler(&self, handler: Arc<dyn KickHandler>) {
        self.inner.broker.set_kick(handler);
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
        let (node, session) = split_len(old).ok_or_else(|| bad_reply("session claim"))?;
        let text = |b: &[u8]| {
            std::str::from_utf8(b)
                .map(Arc::from)
                .map_err(|_| bad_reply("session claim"))
        };
        Ok(Some(Claim {
            node: text(node)?,
            session_id: text(session)?,
        }))
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
