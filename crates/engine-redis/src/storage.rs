//! [`MetadataStore`] and [`Locks`] on Redis. An object's items are a HASH key → `{v, r,
//! t, a}` (`:md`) with its major revision beside it (`:mj`, kept when every item is
//! removed); a channel's locks are a HASH name → `{t: ttl, o: owner, d: deadline}`
//! (`:lk`) under the same hash tag, so a write's lock gate, its guards and its items are
//! checked and applied by one script. Waiters are a LIST per lock; lost owners'
//! deadlines one sorted set; each user has a SET of the locks it owns and waits for, so
//! `owner_lost`, `release_all` and `owned_by` do not scan. The app's budgets of object
//! bytes and lock definitions are checked by the same scripts. The lock owners and
//! waiters this node made are written again after Redis lost them (`restore_locks`).

use crate::broker::{RedisEngine, bad_reply};
use crate::config::reply;
use crate::keys::{cref, parse_cref};
use crate::scripts::SCRIPTS;
use redis::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use switchboard_engine::{
    Acquire, ChannelKey, EngineError, Freed, HandoverHandler, Item, LockInfo, LockRejection, Locks,
    MetadataObject, MetadataStore, MetadataWrite, Rejection, WriteOp,
};

fn parse_item(b: &[u8]) -> Option<Item> {
    let v: serde_json::Value = serde_json::from_slice(b).ok()?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    Some(Item {
        value: s("v")?,
        revision: s("r")?.parse().ok()?,
        updated: s("t")?.parse().ok()?,
        author: s("a")?,
    })
}

/// `major, key, item json, ...` into an object.
fn parse_object(major: &Value, rest: &[Value]) -> Option<MetadataObject> {
    let mut items = BTreeMap::new();
    for pair in rest.chunks(2) {
        let [k, v] = pair else { return None };
        items.insert(reply::string(k)?, parse_item(reply::bytes(v)?)?);
    }
    Some(MetadataObject {
        major_revision: reply::int(major)?,
        items,
    })
}

#[async_trait::async_trait]
impl MetadataStore for RedisEngine {
    fn set_budgets(&self, budgets: switchboard_engine::Budgets) {
        self.inner.set_budgets(budgets);
    }

    async fn write(
        &self,
        object: &ChannelKey,
        write: MetadataWrite,
    ) -> Result<Result<Arc<MetadataObject>, Rejection>, EngineError> {
        let i = &*self.inner;
        let base = i.base(object);
        let op = match write.op {
            WriteOp::Set => "set",
            WriteOp::Update => "update",
            WriteOp::Remove => "remove",
        };
        let (gate_lock, gate_user) = write
            .lock_gate
            .as_ref()
            .map_or(("", ""), |(l, u)| (&**l, &**u));
        let mut inv = SCRIPTS.meta_write.key(&base);
        inv.arg(i.prefix())
            .arg(op)
            .arg(write.major_revision)
            .arg(gate_lock)
            .arg(gate_user)
            .arg(
                write
                    .timestamp_ms
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            )
            .arg(write.author.as_deref().unwrap_or(""))
            .arg(write.items.len() as u64);
        for it in &write.items {
            inv.arg(&it.key).arg(&it.value).arg(it.revision);
        }
        let budget = i.budgets(&object.app).metadata_object_bytes;
        inv.arg(budget as u64);
        let items = reply::items(i.run(&inv).await?);
        match items.first().and_then(reply::string).as_deref() {
            Some("ok") => {
                let [_, major, rest @ ..] = items.as_slice() else {
                    return Err(bad_reply("metadata write"));
                };
                let o = parse_object(major, rest).ok_or_else(|| bad_reply("metadata write"))?;
                Ok(Ok(Arc::new(o)))
            }
            Some("outdated") => Ok(Err(Rejection::Outdated(
                items.get(1).and_then(reply::string).unwrap_or_default(),
            ))),
            Some("locknotheld") => Ok(Err(Rejection::LockNotHeld)),
            Some("overbudget") => {
                let after = items.get(1).and_then(reply::int).unwrap_or_default();
                Err(EngineError::OverBudget(format!(
                    "the metadata would hold {after} bytes of keys and values, over \
                     the app's limit of {budget} per object (limits.max_metadata_object_bytes)"
                )))
            }
            _ => Err(bad_reply("metadata write")),
        }
    }

    async fn get(&self, object: &ChannelKey) -> Result<Arc<MetadataObject>, EngineError> {
        let i = &*self.inner;
        let items = reply::items(
            i.run(SCRIPTS.meta_get.key(i.base(object)).arg(i.prefix()))
                .await?,
        );
        let [major, rest @ ..] = items.as_slice() else {
            return Err(bad_reply("metadata get"));
        };
        Ok(Arc::new(
            parse_object(major, rest).ok_or_else(|| bad_reply("metadata get"))?,
        ))
    }
}

fn text(v: &Value) -> Result<Arc<str>, EngineError> {
    reply::string(v)
        .map(Arc::from)
        .ok_or_else(|| bad_reply("locks"))
}

fn opt(v: &Value) -> Result<Option<Arc<str>>, EngineError> {
    let s = text(v)?;
    Ok((!s.is_empty()).then_some(s))
}

/// Five values `cref, lock, ttl, former, next` into a [`Freed`].
fn freed(v: &[Value]) -> Result<Freed, EngineError> {
    let [c, l, t, f, n] = v else {
        return Err(bad_reply("locks"));
    };
    Ok(Freed {
        channel: reply::bytes(c)
            .and_then(parse_cref)
            .ok_or_else(|| bad_reply("locks"))?,
        lock: text(l)?,
        ttl_s: reply::int(t)
            .and_then(|t| u32::try_from(t).ok())
            .ok_or_else(|| bad_reply("locks"))?,
        former: opt(f)?,
        next: opt(n)?,
    })
}

/// Writes this node's lock owners and waiters again each time the heartbeat finds that
/// Redis lost this node's data (`Inner::locks_lost`), until the engine shuts down.
/// Started by the first `acquire`.
async fn lock_restorer(inner: Arc<crate::broker::Inner>) {
    let mut shutdown = inner.broker.shutdown_signal();
    loop {
        tokio::select! {
            _ = inner.locks_lost.notified() => restore_locks(&inner, &mut shutdown).await,
            _ = shutdown.changed() => return,
        }
    }
}

/// Writes every lock ownership this node made again, at once; then, two heartbeat
/// periods later (by when every node has written its owners again), its waiters: a waiter
/// whose lock is free then gets it (the hand-over notice answers its `acquireLock`),
/// the others queue again. Lines are rebuilt per node, in each node's order; across
/// nodes, the owners written first win.
async fn restore_locks(
    inner: &crate::broker::Inner,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) {
    let (owned, _) = inner.locks_local.all();
    let mut failed = 0usize;
    let mut taken = 0usize;
    for ((channel, lock), o) in &owned {
        let deadline = o.deadline.map(|d| d.to_string()).unwrap_or_default();
        match restore_one(inner, channel, lock, o.ttl_s, &o.user, &deadline, "").await {
            Ok(t) if t == "taken" => {
                taken += 1;
                tracing::warn!(channel = ?channel, lock = %lock, owner = %o.user, "redis: a lock this node's user owned was taken by another user after Redis lost its data");
                inner.locks_local.freed(channel, lock, Some(&*o.user), None);
            }
            Ok(_) => {}
            Err(_) => failed += 1,
        }
    }
    // Every node finds the loss within one heartbeat period of Redis coming back.
    let period = (inner.config.node_timeout / 5).max(std::time::Duration::from_millis(10));
    tokio::select! {
        _ = tokio::time::sleep(period * 2) => {}
        _ = shutdown.changed() => return,
    }
    let (_, waiting) = inner.locks_local.all();
    for (channel, lock, user, ttl_s) in &waiting {
        match restore_one(inner, channel, lock, *ttl_s, "", "", user).await {
            // `already`: the waiter owns it by now (the node's periodic check answers it).
            Ok(t) if t == "acquired" || t == "already" => {
                inner.locks_local.acquired(channel, lock, user, *ttl_s)
            }
            Ok(_) => {}
            Err(_) => failed += 1,
        }
    }
    tracing::warn!(
        node = %inner.config.node_id,
        owners = owned.len(),
        waiters = waiting.len(),
        taken,
        failed,
        "redis: this node's lock owners and waiters were gone from Redis (data lost); written again"
    );
}

async fn restore_one(
    inner: &crate::broker::Inner,
    channel: &ChannelKey,
    lock: &str,
    ttl_s: u32,
    owner: &str,
    deadline: &str,
    waiter: &str,
) -> Result<String, EngineError> {
    let mut inv = SCRIPTS.locks.arg(inner.prefix());
    inv.arg("restore")
        .arg(cref(channel))
        .arg(lock)
        .arg(ttl_s)
        .arg(owner)
        .arg(deadline)
        .arg(waiter);
    let items = reply::items(inner.run(&inv).await?);
    items
        .first()
        .and_then(reply::string)
        .ok_or_else(|| bad_reply("lock restore"))
}

impl RedisEngine {
    /// Starts the task that writes this node's locks again after a data loss (once).
    fn start_lock_restorer(&self) {
        let i = &self.inner;
        if !i
            .lock_restorer_started
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            tokio::spawn(lock_restorer(i.clone()));
        }
    }

    /// Runs one lock operation; returns the reply's tag and the rest.
    async fn lock_op(&self, op: &str, args: &[&[u8]]) -> Result<(String, Vec<Value>), EngineError> {
        let i = &*self.inner;
        let mut inv = SCRIPTS.locks.arg(i.prefix());
        inv.arg(op);
        for a in args {
            inv.arg(*a);
        }
        let v = i.run(&inv).await?;
        if let Value::Int(n) = v {
            return Ok((n.to_string(), Vec::new()));
        }
        let mut items = reply::items(v);
        if items.is_empty() {
            return Err(bad_reply("locks"));
        }
        let tag = reply::string(&items.remove(0)).ok_or_else(|| bad_reply("locks"))?;
        Ok((tag, items))
    }

    fn rejection(tag: &str, rest: &[Value]) -> Result<LockRejection, EngineError> {
        Ok(match tag {
            "exists" => LockRejection::AlreadyExists,
            "notdefined" => LockRejection::NotDefined,
            "notowner" => LockRejection::NotOwner,
            "held" => LockRejection::HeldBy(text(rest.first().unwrap_or(&Value::Nil))?),
            _ => return Err(bad_reply("locks")),
        })
    }

    fn freed_list(rest: &[Value]) -> Result<Vec<Freed>, EngineError> {
        rest.chunks(5).map(freed).collect()
    }

    async fn free_op(
        &self,
        channel: &ChannelKey,
        lock: &str,
        user: &str,
    ) -> Result<Result<Freed, LockRejection>, EngineError> {
        let c = cref(channel);
        let (tag, rest) = self
            .lock_op("release", &[c.as_bytes(), lock.as_bytes(), user.as_bytes()])
            .await?;
        if tag == "ok" {
            let f = freed(&rest)?;
            self.inner.locks_local.apply(&f);
            Ok(Ok(f))
        } else {
            Ok(Err(Self::rejection(&tag, &rest)?))
        }
    }
}

#[async_trait::async_trait]
impl Locks for RedisEngine {
    fn set_budgets(&self, budgets: switchboard_engine::Budgets) {
        self.inner.set_budgets(budgets);
    }

    async fn set(
        &self,
        channel: &ChannelKey,
        lock: &str,
        ttl_s: u32,
        max_locks: usize,
    ) -> Result<Result<(), LockRejection>, EngineError> {
        let c = cref(channel);
        let (ttl, max) = (ttl_s.to_string(), max_locks.to_string());
        let budget = self
            .inner
            .budgets(&channel.app)
            .lock_definitions
            .to_string();
        let (tag, rest) = self
            .lock_op(
                "set",
                &[
                    c.as_bytes(),
                    lock.as_bytes(),
                    ttl.as_bytes(),
                    max.as_bytes(),
                    budget.as_bytes(),
                ],
            )
            .await?;
        match tag.as_str() {
            "ok" => Ok(Ok(())),
            "toomany" => Ok(Err(LockRejection::TooMany(max_locks))),
            "overbudget" => {
                let count = rest.first().and_then(reply::int).unwrap_or_default();
                Err(EngineError::OverBudget(format!(
                    "the app has {count} locks defined, its limit across all channels \
                     (limits.max_lock_definitions)"
                )))
            }
            t => Ok(Err(Self::rejection(t, &rest)?)),
        }
    }

    async fn remove(
        &self,
        channel: &ChannelKey,
        lock: &str,
    ) -> Result<Result<Freed, LockRejection>, EngineError> {
        let c = cref(channel);
        let (tag, rest) = self
            .lock_op("remove", &[c.as_bytes(), lock.as_bytes()])
            .await?;
        if tag == "ok" {
            self.inner.locks_local.removed(channel, lock);
            Ok(Ok(freed(&rest)?))
        } else {
            Ok(Err(Self::rejection(&tag, &rest)?))
        }
    }

    async fn acquire(
        &self,
        channel: &ChannelKey,
        lock: &str,
        user: &str,
        wait: bool,
    ) -> Result<Result<Acquire, LockRejection>, EngineError> {
        let c = cref(channel);
        let w: &[u8] = if wait { b"1" } else { b"0" };
        self.start_lock_restorer();
        let (tag, rest) = self
            .lock_op(
                "acquire",
                &[c.as_bytes(), lock.as_bytes(), user.as_bytes(), w],
            )
            .await?;
        let ttl = || {
            rest.first()
                .and_then(reply::int)
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| bad_reply("acquire"))
        };
        let local = &self.inner.locks_local;
        Ok(match tag.as_str() {
            "acquired" => {
                let ttl_s = ttl()?;
                local.acquired(channel, lock, user, ttl_s);
                Ok(Acquire::Acquired { ttl_s })
            }
            "already" => Ok(Acquire::AlreadyOwner),
            "queued" => {
                local.queued(channel, lock, user, ttl()?);
                Ok(Acquire::Queued)
            }
            t => Err(Self::rejection(t, &rest)?),
        })
    }

    async fn release(
        &self,
        channel: &ChannelKey,
        lock: &str,
        user: &str,
    ) -> Result<Result<Freed, LockRejection>, EngineError> {
        self.free_op(channel, lock, user).await
    }

    async fn revoke(
        &self,
        channel: &ChannelKey,
        lock: &str,
        owner: &str,
    ) -> Result<Result<Freed, LockRejection>, EngineError> {
        self.free_op(channel, lock, owner).await
    }

    async fn cancel_wait(
        &self,
        channel: &ChannelKey,
        lock: &str,
        user: &str,
    ) -> Result<bool, EngineError> {
        let c = cref(channel);
        let (tag, _) = self
            .lock_op("cancel", &[c.as_bytes(), lock.as_bytes(), user.as_bytes()])
            .await?;
        self.inner.locks_local.cancelled(channel, lock, user);
        Ok(tag == "1")
    }

    fn set_handover_handler(&self, handler: Arc<dyn HandoverHandler>) -> bool {
        self.inner.broker.set_handover(handler);
        true
    }

    async fn list(&self, channel: &ChannelKey) -> Result<Vec<LockInfo>, EngineError> {
        let i = &*self.inner;
        let all: Vec<(String, Vec<u8>)> = i
            .cmd(redis::cmd("HGETALL").arg(format!("{}:lk", i.base(channel))))
            .await?;
        let mut out = Vec::with_capacity(all.len());
        for (name, rec) in all {
            let v: serde_json::Value =
                serde_json::from_slice(&rec).map_err(|_| bad_reply("lock list"))?;
            let owner = v.get("o").and_then(|o| o.as_str()).unwrap_or_default();
            out.push(LockInfo {
                name: name.into(),
                owner: (!owner.is_empty()).then(|| owner.into()),
                ttl_s: v
                    .get("t")
                    .and_then(|t| t.as_u64())
                    .and_then(|t| u32::try_from(t).ok())
                    .ok_or_else(|| bad_reply("lock list"))?,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn owner_lost(&self, app: &str, user: &str, now_ms: u64) -> Result<(), EngineError> {
        let now = now_ms.to_string();
        self.lock_op("lost", &[app.as_bytes(), user.as_bytes(), now.as_bytes()])
            .await?;
        self.inner.locks_local.deadline(app, user, Some(now_ms));
        Ok(())
    }

    async fn owner_back(&self, app: &str, user: &str) -> Result<(), EngineError> {
        self.lock_op("back", &[app.as_bytes(), user.as_bytes(), b"0"])
            .await?;
        self.inner.locks_local.deadline(app, user, None);
        Ok(())
    }

    async fn expire_due(&self, now_ms: u64) -> Result<Vec<Freed>, EngineError> {
        let now = now_ms.to_string();
        let (_, rest) = self.lock_op("expire_due", &[now.as_bytes()]).await?;
        let all = Self::freed_list(&rest)?;
        all.iter().for_each(|f| self.inner.locks_local.apply(f));
        Ok(all)
    }

    async fn release_all(&self, app: &str, user: &str) -> Result<Vec<Freed>, EngineError> {
        let (_, rest) = self
            .lock_op("release_all", &[app.as_bytes(), user.as_bytes()])
            .await?;
        let all = Self::freed_list(&rest)?;
        self.inner.locks_local.left_lines(app, user);
        all.iter().for_each(|f| self.inner.locks_local.apply(f));
        Ok(all)
    }

    async fn owned_by(
        &self,
        app: &str,
        user: &str,
    ) -> Result<Vec<(ChannelKey, Arc<str>)>, EngineError> {
        let (_, rest) = self
            .lock_op("owned", &[app.as_bytes(), user.as_bytes()])
            .await?;
        rest.chunks(2)
            .map(|p| match p {
                [c, l] => Ok((
                    reply::bytes(c)
                        .and_then(parse_cref)
                        .ok_or_else(|| bad_reply("owned_by"))?,
                    text(l)?,
                )),
                _ => Err(bad_reply("owned_by")),
            })
            .collect()
    }

    async fn due(&self, now_ms: u64) -> Result<Vec<(ChannelKey, Arc<str>, Arc<str>)>, EngineError> {
        let now = now_ms.to_string();
        let (_, rest) = self.lock_op("due", &[now.as_bytes()]).await?;
        rest.chunks(3)
            .map(|p| match p {
                [c, l, o] => Ok((
                    reply::bytes(c)
                        .and_then(parse_cref)
                        .ok_or_else(|| bad_reply("due"))?,
                    text(l)?,
                    text(o)?,
                )),
                _ => Err(bad_reply("due")),
            })
            .collect()
    }

    async fn expire(
        &self,
        channel: &ChannelKey,
        lock: &str,
        owner: &str,
        now_ms: u64,
    ) -> Result<Option<Freed>, EngineError> {
        let c = cref(channel);
        let now = now_ms.to_string();
        let (tag, rest) = self
            .lock_op(
                "expire",
                &[
                    c.as_bytes(),
                    lock.as_bytes(),
                    owner.as_bytes(),
                    now.as_bytes(),
                ],
            )
            .await?;
        if tag == "ok" {
            let f = freed(&rest)?;
            self.inner.locks_local.apply(&f);
            Ok(Some(f))
        } else {
            Ok(None)
        }
    }
}
