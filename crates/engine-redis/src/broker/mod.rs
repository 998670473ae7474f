//! [`Broker`] on Redis: the publish script (offset, recovery log, idempotency, shared
//! rate limit, PUBLISH in one step), node subscriptions over one pub/sub connection
//! (batched SUBSCRIBE, resubscribe after reconnect), a reader that never blocks (it
//! hands each message to the worker that owns its channel), workers that deliver in
//! offset order and recover anything missed from the log, and the liveness probe.

use crate::config::{Health, RedisConfig, Stats, check_version, reply};
use crate::keys::{decode_entry, encode_body, split_num};
use crate::scripts::SCRIPTS;
use async_trait::async_trait;
use futures_util::StreamExt;
use redis::Value;
use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use switchboard_engine::{
    Broker, ChannelKey, EngineError, HandoverHandler, KickHandler, Publication, PublicationHandler,
    PublishOptions, PublishOutcome, Recovery, StreamPosition,
};
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// Most publications fetched from the log in one recovery step.
const RECOVER_CHUNK: usize = 1000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One channel this node is subscribed to.
struct Sub {
    key: ChannelKey,
    worker: usize,
    /// Position of the latest publication handed to the handler; written only under
    /// `gate`.
    delivered: watch::Sender<StreamPosition>,
    /// Held while a publication is handed to the handler: the channel's worker and a
    /// task publishing on this node (which delivers its own publication at once when
    /// it is the next one) never deliver at the same time, and each delivery checks
    /// `delivered` under it, so the handler sees every offset once, in order.
    gate: tokio::sync::Mutex<()>,
    active: AtomicBool,
    resync_queued: AtomicBool,
}

/// A message for a worker: the channel and the raw pub/sub payload.
type Work = (Arc<Sub>, Vec<u8>);

struct Worker {
    tx: mpsc::Sender<Work>,
    rx: Mutex<Option<mpsc::Receiver<Work>>>,
    pending: Mutex<Vec<Arc<Sub>>>,
    wake: Notify,
}

enum Ctl {
    Subscribe(String, oneshot::Sender<Result<(), EngineError>>),
    Unsubscribe(String, oneshot::Sender<Result<(), EngineError>>),
}

#[derive(Default)]
struct Counters {
    reconnects: AtomicU64,
    probe_restarts: AtomicU64,
    overflows: AtomicU64,
    recovered: AtomicU64,
    gaps: AtomicU64,
    master_switches: AtomicU64,
}

/// The broker's part of the engine.
pub(crate) struct BrokerState {
    handler: OnceLock<Arc<dyn PublicationHandler>>,
    subs: Mutex<HashMap<String, Arc<Sub>>>,
    workers: Vec<Worker>,
    ctl: OnceLock<mpsc::UnboundedSender<Ctl>>,
    connected: AtomicBool,
    counters: Counters,
    probe_channel: String,
    probe_seen: AtomicU64,
    /// Where every node hears of lock hand-overs (`locks.lua`).
    handover_channel: String,
    handover: OnceLock<Arc<dyn HandoverHandler>>,
    /// This node's control channel (`session_claim.lua` kicks sessions over it).
    pub(crate) ctl_channel: String,
    kick: OnceLock<Arc<dyn KickHandler>>,
    shutdown: watch::Sender<bool>,
    /// Told when the command connection moved to a new master (Sentinel): the pub/sub
    /// connection, possibly still on the demoted one, reconnects to the new master too.
    master_moved: Notify,
}

impl BrokerState {
    pub(crate) fn new(config: &RedisConfig) -> Self {
        let workers = (0..config.workers.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(config.worker_queue.max(1));
                Worker {
                    tx,
                    rx: Mutex::new(Some(rx)),
                    pending: Mutex::new(Vec::new()),
                    wake: Notify::new(),
                }
            })
            .collect();
        BrokerState {
            handler: OnceLock::new(),
            subs: Mutex::new(HashMap::new()),
            workers,
            ctl: OnceLock::new(),
            connected: AtomicBool::new(false),
            counters: Counters::default(),
            probe_channel: format!("{}node:{}:probe", config.prefix, config.node_id),
            probe_seen: AtomicU64::new(0),
            handover_channel: format!("{}locks:handover", config.prefix),
            handover: OnceLock::new(),
            ctl_channel: format!("{}ctl:{}", config.prefix, config.node_id),
            kick: OnceLock::new(),
            shutdown: watch::channel(false).0,
            master_moved: Notify::new(),
        }
    }

    pub(crate) fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            subscriptions: lock(&self.subs).len(),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            probe_restarts: c.probe_restarts.load(Ordering::Relaxed),
            overflows: c.overflows.load(Ordering::Relaxed),
            recovered: c.recovered.load(Ordering::Relaxed),
            gaps: c.gaps.load(Ordering::Relaxed),
            master_switches: c.master_switches.load(Ordering::Relaxed),
        }
    }

    /// Counts the command connection moving to the master the sentinels named and has
    /// the pub/sub connection follow it (a demoted master still relays publications
    /// replicated from the new one, so nothing else would move it).
    pub(crate) fn master_switched(&self) {
        self.counters
            .master_switches
            .fetch_add(1, Ordering::Relaxed);
        self.master_moved.notify_one();
    }

    /// Changes when the engine shuts down.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub(crate) fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Installs the lock hand-over handler (once; later calls are ignored).
    pub(crate) fn set_handover(&self, handler: Arc<dyn HandoverHandler>) {
        let _ = self.handover.set(handler);
    }

    /// Installs the session kick handler (once; later calls are ignored).
    pub(crate) fn set_kick(&self, handler: Arc<dyn KickHandler>) {
        let _ = self.kick.set(handler);
    }

    fn queue_resync(&self, sub: &Arc<Sub>) {
        if !sub.resync_queued.swap(true, Ordering::AcqRel) {
            let w = &self.workers[sub.worker];
            lock(&w.pending).push(sub.clone());
            w.wake.notify_one();
        }
    }
}

/// Starts the workers and the pub/sub supervisor; returns once the first pub/sub
/// connection is up.
pub(crate) async fn start(inner: &Arc<Inner>) -> Result<(), EngineError> {
    for i in 0..inner.broker.workers.len() {
        let rx = lock(&inner.broker.workers[i].rx).take();
        if let Some(rx) = rx {
            tokio::spawn(Scoped {
                inner: inner.clone(),
                fut: Box::pin(work(inner.clone(), i, rx)),
            });
        }
    }
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let _ = inner.broker.ctl.set(ctl_tx);
    let (first_tx, first_rx) = oneshot::channel();
    tokio::spawn(supervise(inner.clone(), ctl_rx, first_tx));
    match tokio::time::timeout(inner.config.command_timeout * 2, first_rx).await {
        Ok(Ok(r)) => r,
        _ => {
            inner.broker.shutdown();
            Err(unavailable("pub/sub connection not established"))
        }
    }
}

async fn subscribe_batched(
    sink: &mut redis::aio::PubSubSink,
    names: &[String],
    timeout: Duration,
) -> Result<(), EngineError> {
    for chunk in names.chunks(512) {
        tokio::time::timeout(timeout, sink.subscribe(chunk))
            .await
            .map_err(|_| unavailable("SUBSCRIBE timed out"))?
            .map_err(unavailable)?;
    }
    Ok(())
}

/// Applies queued (un)subscriptions in order, consecutive ones of a kind in one command.
async fn apply(
    inner: &Inner,
    sink: &mut redis::aio::PubSubSink,
    batch: Vec<Ctl>,
) -> Result<(), EngineError> {
    let timeout = inner.config.command_timeout;
    let mut batch = batch.into_iter().peekable();
    let mut failed: Option<EngineError> = None;
    while let Some(first) = batch.next() {
        let subscribe = matches!(first, Ctl::Subscribe(..));
        let mut group = vec![first];
        while let Some(next) = batch.next_if(|c| matches!(c, Ctl::Subscribe(..)) == subscribe) {
            group.push(next);
        }
        let mut names = Vec::new();
        let mut replies = Vec::new();
        {
            let subs = lock(&inner.broker.subs);
            for c in group {
                let (Ctl::Subscribe(n, r) | Ctl::Unsubscribe(n, r)) = c;
                // Skip what a later call already undid.
                if subs.contains_key(&n) == subscribe {
                    names.push(n);
                }
                replies.push(r);
            }
        }
        let result = if let Some(e) = &failed {
            Err(e.clone())
        } else if names.is_empty() {
            Ok(())
        } else if subscribe {
            subscribe_batched(sink, &names, timeout).await
        } else {
            let mut r = Ok(());
            for chunk in names.chunks(512) {
                r = match tokio::time::timeout(timeout, sink.unsubscribe(chunk)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(unavailable(e)),
                    Err(_) => Err(unavailable("UNSUBSCRIBE timed out")),
                };
                if r.is_err() {
                    break;
                }
            }
            r
        };
        if let Err(e) = &result {
            failed.get_or_insert(e.clone());
        }
        for r in replies {
            let _ = r.send(result.clone());
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Keeps the pub/sub connection up: connect, subscribe everything, read, probe; on any
/// failure (or a probe not seen back in time) start over and recover every channel.
async fn supervise(
    inner: Arc<Inner>,
    mut ctl_rx: mpsc::UnboundedReceiver<Ctl>,
    first: oneshot::Sender<Result<(), EngineError>>,
) {
    let b = &inner.broker;
    let cfg = &inner.config;
    let mut shutdown = b.shutdown.subscribe();
    let mut first = Some(first);
    let mut backoff = Duration::from_millis(20);
    let mut connects = 0u64;
    let mut nonce = 0u64;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let attempt = async {
            // With Sentinel, the master as the sentinels name it now.
            let client = inner.target.client().await?;
            let ps = tokio::time::timeout(cfg.command_timeout, client.get_async_pubsub())
                .await
                .map_err(|_| unavailable("pub/sub connect timed out"))?
                .map_err(unavailable)?;
            let (mut sink, stream) = ps.split();
            let names: Vec<String> = [
                b.probe_channel.clone(),
                b.handover_channel.clone(),
                b.ctl_channel.clone(),
            ]
            .into_iter()
            .chain(lock(&b.subs).keys().cloned())
            .collect();
            subscribe_batched(&mut sink, &names, cfg.command_timeout).await?;
            Ok::<_, EngineError>((sink, stream))
        };
        let (mut sink, stream) = match attempt.await {
            Ok(c) => c,
            Err(e) => {
                if let Some(f) = first.take() {
                    let _ = f.send(Err(e));
                    return;
                }
                tracing::warn!(node = %cfg.node_id, error = %e, "redis pub/sub: reconnect failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(20);
        b.connected.store(true, Ordering::Release);
        if connects > 0 {
            b.counters.reconnects.fetch_add(1, Ordering::Relaxed);
            let subs: Vec<Arc<Sub>> = lock(&b.subs).values().cloned().collect();
            tracing::info!(node = %cfg.node_id, channels = subs.len(), "redis pub/sub: reconnected and resubscribed");
            for s in &subs {
                b.queue_resync(s);
            }
        }
        connects += 1;
        if let Some(f) = first.take() {
            let _ = f.send(Ok(()));
        }
        let (done_tx, mut done_rx) = oneshot::channel();
        let reader = tokio::spawn(read(inner.clone(), stream, done_tx));
        let mut probe = tokio::time::interval(cfg.probe_interval);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut outstanding: Option<(u64, Instant)> = None;
        let why = loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    reader.abort();
                    return;
                }
                _ = &mut done_rx => break "connection closed".to_string(),
                _ = b.master_moved.notified() => break "the master moved".to_string(),
                c = ctl_rx.recv() => {
                    let Some(c) = c else {
                        reader.abort();
                        return;
                    };
                    let mut batch = vec![c];
                    while let Ok(c) = ctl_rx.try_recv() {
                        batch.push(c);
                    }
                    if let Err(e) = apply(&inner, &mut sink, batch).await {
                        break e.to_string();
                    }
                }
                _ = probe.tick() => {
                    if let Some((n, at)) = outstanding {
                        if b.probe_seen.load(Ordering::Acquire) >= n {
                            outstanding = None;
                        } else if at.elapsed() >= cfg.probe_timeout {
                            b.counters.probe_restarts.fetch_add(1, Ordering::Relaxed);
                            break "liveness probe not delivered".to_string();
                        }
                    }
                    if outstanding.is_none() {
                        nonce += 1;
                        outstanding = Some((nonce, Instant::now()));
                        // Sent from its own task so that a slow command connection never
                        // holds up (un)subscriptions. A PUBLISH that fails says nothing
                        // about pub/sub (the command connection is the one in trouble),
                        // so it counts as seen; the next probe tests again.
                        let probe = inner.clone();
                        tokio::spawn(async move {
                            let b = &probe.broker;
                            let cmd = redis::cmd("PUBLISH").arg(&b.probe_channel).arg(nonce).clone();
                            if probe.cmd::<i64>(&cmd).await.is_err() {
                                b.probe_seen.fetch_max(nonce, Ordering::AcqRel);
                            }
                        });
                    }
                }
            }
        };
        tracing::warn!(node = %cfg.node_id, reason = %why, "redis pub/sub: restarting the connection");
        b.connected.store(false, Ordering::Release);
        reader.abort();
        drop(sink);
    }
}

/// Reads pub/sub messages and hands each to its channel's worker; never waits on one.
async fn read(inner: Arc<Inner>, mut stream: redis::aio::PubSubStream, done: oneshot::Sender<()>) {
    let b = &inner.broker;
    while let Some(msg) = stream.next().await {
        let name = msg.get_channel_name();
        if name == b.probe_channel {
            if let Some(n) = std::str::from_utf8(msg.get_payload_bytes())
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
            {
                b.probe_seen.fetch_max(n, Ordering::AcqRel);
            }
            continue;
        }
        if name == b.handover_channel {
            on_lock_notice(&inner, b.handover.get(), msg.get_payload_bytes());
            continue;
        }
        if name == b.ctl_channel {
            if let Some(h) = b.kick.get() {
                on_kick(&**h, msg.get_payload_bytes());
            }
            continue;
        }
        let Some(sub) = lock(&b.subs).get(name).cloned() else {
            continue;
        };
        // This node's own publications were delivered by the publishing task already
        // (see `publish`): their copies are dropped here without waking the worker.
        if delivered_already(&sub, msg.get_payload_bytes()) {
            continue;
        }
        let w = &b.workers[sub.worker];
        match w
            .tx
            .try_send((sub.clone(), msg.get_payload_bytes().to_vec()))
        {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                b.counters.overflows.fetch_add(1, Ordering::Relaxed);
                b.queue_resync(&sub);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
    let _ = done.send(());
}

/// A kick `<len>:<app><len>:<user><session id>` to the handler; a malformed one is
/// ignored.
fn on_kick(h: &dyn KickHandler, payload: &[u8]) {
    let parsed = (|| {
        let (app, rest) = crate::keys::split_len(payload)?;
        let (user, session) = crate::keys::split_len(rest)?;
        Some((
            std::str::from_utf8(app).ok()?,
            std::str::from_utf8(user).ok()?,
            std::str::from_utf8(session).ok()?,
        ))
    })();
    if let Some((app, user, session)) = parsed {
        h.on_kick(app, user, session);
    }
}

/// A lock notice (`lua/locks.lua`): a free `<len>:<cref><len>:<lock><len>:<former><next>`
/// updates what this node recorded of the lock and, when it went to a waiter, goes to
/// the handler; a removal `-<len>:<cref><lock>` drops the lock's owner and line. A
/// malformed notice is ignored.
fn on_lock_notice(inner: &Inner, h: Option<&Arc<dyn HandoverHandler>>, payload: &[u8]) {
    if let Some(removed) = payload.strip_prefix(b"-") {
        let parsed = (|| {
            let (cref, lock) = crate::keys::split_len(removed)?;
            Some((
                crate::keys::parse_cref(cref)?,
                std::str::from_utf8(lock).ok()?,
            ))
        })();
        if let Some((channel, lock)) = parsed {
            inner.locks_local.removed(&channel, lock);
        }
        return;
    }
    let parsed = (|| {
        let (cref, rest) = crate::keys::split_len(payload)?;
        let (lock, rest) = crate::keys::split_len(rest)?;
        let (former, next) = crate::keys::split_len(rest)?;
        let channel = crate::keys::parse_cref(cref)?;
        Some((
            channel,
            std::str::from_utf8(lock).ok()?,
            std::str::from_utf8(former).ok()?,
            std::str::from_utf8(next).ok()?,
        ))
    })();
    let Some((channel, lock, former, next)) = parsed else {
        return;
    };
    let former = (!former.is_empty()).then_some(former);
    let next = (!next.is_empty()).then_some(next);
    inner.locks_local.freed(&channel, lock, former, next);
    if let (Some(h), Some(user)) = (h, next) {
        h.on_handover(&channel, lock, user);
    }
}

/// One delivery worker: messages of its channels in arrival order, then any channel
/// queued for recovery.
async fn work(inner: Arc<Inner>, index: usize, mut rx: mpsc::Receiver<Work>) {
    let b = &inner.broker;
    let w = &b.workers[index];
    let mut shutdown = b.shutdown.subscribe();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            _ = w.wake.notified() => {}
            m = rx.recv() => match m {
                Some((sub, payload)) => on_message(&inner, &sub, &payload).await,
                None => return,
            },
        }
        let pending = std::mem::take(&mut *lock(&w.pending));
        for sub in pending {
            sub.resync_queued.store(false, Ordering::Release);
            if sub.active.load(Ordering::Acquire) {
                catch_up(&inner, &sub, None).await;
            }
        }
    }
}

/// A delivery worker, each of whose polls runs inside the handler's
/// [`delivery_scope`](PublicationHandler::delivery_scope): the messages one poll
/// delivers (all that were queued, up to the runtime's budget) reach each local
/// connection as one write instead of one write per message.
struct Scoped<F> {
    inner: Arc<Inner>,
    fut: std::pin::Pin<Box<F>>,
}

impl<F: Future<Output = ()>> Future for Scoped<F> {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let _scope = self
            .inner
            .broker
            .handler
            .get()
            .and_then(|h| h.delivery_scope());
        self.fut.as_mut().poll(cx)
    }
}

/// Recovery failed (Redis unreachable): try the channel again a little later, so that a
/// publication missed meanwhile is delivered even if no newer one arrives.
fn retry_later(inner: &Arc<Inner>, sub: &Arc<Sub>) {
    let (inner, sub) = (Arc::downgrade(inner), sub.clone());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(inner) = inner.upgrade() {
            if sub.active.load(Ordering::Acquire) {
                inner.broker.queue_resync(&sub);
            }
        }
    });
}

/// Whether the publication `<epoch>,<offset>,…` was handed to the handler already.
fn delivered_already(sub: &Sub, payload: &[u8]) -> bool {
    let Some((epoch, rest)) = split_num(payload) else {
        return false;
    };
    let Some((offset, _)) = split_num(rest) else {
        return false;
    };
    let last = *sub.delivered.borrow();
    epoch == last.epoch && offset <= last.offset
}

fn decode_message(payload: &[u8]) -> Option<Publication> {
    let (epoch, entry) = split_num(payload)?;
    decode_entry(epoch, entry)
}

/// Hands `p` to the handler and records its position; the caller holds `sub.gate`.
fn hand(inner: &Inner, sub: &Sub, p: Publication) {
    let position = p.position;
    let p = Arc::new(p);
    if let Some(h) = inner.broker.handler.get() {
        h.on_publication(&sub.key, &p);
    }
    sub.delivered.send_replace(position);
}

/// Delivers `p` unless it was delivered already (same epoch, offset not past the
/// delivered one); true if it went.
async fn deliver(inner: &Inner, sub: &Sub, p: Publication) -> bool {
    let _gate = sub.gate.lock().await;
    let last = *sub.delivered.borrow();
    if p.position.epoch == last.epoch && p.position.offset <= last.offset {
        return false;
    }
    hand(inner, sub, p);
    true
}

async fn on_message(inner: &Arc<Inner>, sub: &Arc<Sub>, payload: &[u8]) {
    if !sub.active.load(Ordering::Acquire) {
        return;
    }
    let Some(p) = decode_message(payload) else {
        tracing::warn!(channel = ?sub.key, "redis pub/sub: undecodable message dropped");
        return;
    };
    let last = *sub.delivered.borrow();
    if p.position.epoch == last.epoch {
        if p.position.offset <= last.offset {
            return;
        }
        if p.position.offset == last.offset + 1 {
            deliver(inner, sub, p).await;
            return;
        }
    }
    catch_up(inner, sub, Some(p)).await;
}

/// Delivers everything after the channel's delivered position from the recovery log
/// (then `upto`, if the log no longer had it); what the log lost is counted as a gap.
async fn catch_up(inner: &Arc<Inner>, sub: &Arc<Sub>, upto: Option<Publication>) {
    let b = &inner.broker;
    for _ in 0..10_000 {
        let last = *sub.delivered.borrow();
        let r = match recover(inner, &sub.key, last, RECOVER_CHUNK).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(channel = ?sub.key, error = %e, "redis: recovery failed; retrying");
                // `upto` is in the log too; the retry delivers it in order.
                retry_later(inner, sub);
                return;
            }
        };
        if r.position.epoch != last.epoch {
            b.counters.gaps.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(channel = ?sub.key, old = ?last, new = ?r.position, "redis: channel epoch changed; publications of the old epoch lost");
            let _gate = sub.gate.lock().await;
            sub.delivered.send_replace(StreamPosition {
                epoch: r.position.epoch,
                offset: 0,
            });
            continue;
        }
        if !r.complete {
            b.counters.gaps.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(channel = ?sub.key, after = last.offset, "redis: publications no longer in the recovery log");
        }
        let n = r.publications.len();
        for p in r.publications {
            if p.position.offset > sub.delivered.borrow().offset
                && deliver(inner, sub, Publication::clone(&p)).await
            {
                b.counters.recovered.fetch_add(1, Ordering::Relaxed);
            }
        }
        if n < RECOVER_CHUNK || sub.delivered.borrow().offset >= r.position.offset {
            break;
        }
    }
    if let Some(p) = upto {
        let last = *sub.delivered.borrow();
        if p.position.epoch == last.epoch && p.position.offset > last.offset {
            if p.position.offset > last.offset + 1 {
                b.counters.gaps.fetch_add(1, Ordering::Relaxed);
            }
            deliver(inner, sub, p).await;
        }
    }
}

fn parse_position(epoch: &redis::Value, offset: &redis::Value) -> Option<StreamPosition> {
    Some(StreamPosition {
        epoch: reply::string(epoch)?.parse().ok()?,
        offset: u64::try_from(reply::int(offset)?).ok()?,
    })
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

async fn position(inner: &Inner, channel: &ChannelKey) -> Result<StreamPosition, EngineError> {
    let base = inner.base(channel);
    let v = inner
        .run(
            SCRIPTS
                .position
                .key(&base)
                .arg(inner.prefix())
                .arg(ms(inner.config.position_ttl)),
        )
        .await?;
    let items = reply::items(v);
    match items.as_slice() {
        [e, o] => parse_position(e, o).ok_or_else(|| bad_reply("position")),
        _ => Err(bad_reply("position")),
    }
}

async fn recover(
    inner: &Inner,
    channel: &ChannelKey,
    since: StreamPosition,
    limit: usize,
) -> Result<Recovery, EngineError> {
    let base = inner.base(channel);
    let v = inner
        .run(
            SCRIPTS
                .recover
                .key(&base)
                .arg(inner.prefix())
                .arg(ms(inner.config.position_ttl))
                .arg(since.epoch.to_string())
                .arg(since.offset)
                .arg(limit.min(1 << 40) as u64)
                .arg(ms(inner.config.retention.max_age)),
        )
        .await?;
    let items = reply::items(v);
    let [e, o, c, entries @ ..] = items.as_slice() else {
        return Err(bad_reply("recover"));
    };
    let position = parse_position(e, o).ok_or_else(|| bad_reply("recover"))?;
    let complete = reply::int(c) == Some(1);
    let mut publications = Vec::with_capacity(entries.len());
    for entry in entries {
        let p = reply::bytes(entry)
            .and_then(|b| decode_entry(position.epoch, b))
            .ok_or_else(|| bad_reply("recover"))?;
        publications.push(Arc::new(p));
    }
    Ok(Recovery {
        publications,
        position,
        complete,
    })
}

#[async_trait]
impl Broker for RedisEngine {
    fn set_handler(&self, handler: Arc<dyn PublicationHandler>) {
        let _ = self.inner.broker.handler.set(handler);
    }

    fn set_budgets(&self, budgets: switchboard_engine::Budgets) {
        self.inner.set_budgets(budgets);
    }

    async fn publish(
        &self,
        channel: &ChannelKey,
        publication: Publication,
        options: &PublishOptions,
    ) -> Result<PublishOutcome, EngineError> {
        let inner = &*self.inner;
        let base = inner.base(channel);
        let body = encode_body(&publication);
        let rate = options.rate_limit;
        let budgets = inner.budgets(&channel.app);
        let v = inner
            .run(
                SCRIPTS
                    .publish
                    .key(&base)
                    .arg(inner.prefix())
                    .arg(body)
                    .arg(inner.config.retention.max_count.max(1) as u64)
                    .arg(ms(inner.config.retention.max_age))
                    .arg(ms(inner.config.position_ttl).max(ms(inner.config.retention.max_age)))
                    .arg(options.idempotency_key.as_deref().unwrap_or(""))
                    .arg(rate.map_or(0, |r| r.per_second))
                    .arg(rate.map_or(0, |r| r.burst))
                    .arg(if options.require_receiver { "1" } else { "0" })
                    .arg(&base)
                    .arg(budgets.recovery_log_bytes as u64)
                    .arg(budgets.idempotency_keys as u64)
                    .arg(budgets.swept_positions as u64)
                    .arg(u8::from(matches!(
                        publication.kind,
                        switchboard_engine::MessageKind::Event(_)
                    )))
                    .arg(inner.master_id()),
            )
            .await?;
        let items = reply::items(v);
        let tag = items.first().and_then(reply::string).unwrap_or_default();
        let position = match (tag.as_str(), &items[..]) {
            ("ok", [_, e, o]) => parse_position(e, o).ok_or_else(|| bad_reply("publish"))?,
            ("dup", [_, seen]) => {
                let seen = reply::string(seen).unwrap_or_default();
                let (e, o) = seen.split_once(':').ok_or_else(|| bad_reply("publish"))?;
                let position = StreamPosition {
                    epoch: e.parse().map_err(|_| bad_reply("publish"))?,
                    offset: o.parse().map_err(|_| bad_reply("publish"))?,
                };
                return Ok(PublishOutcome {
                    position,
                    duplicate: true,
                });
            }
            ("noreceiver", _) => return Err(EngineError::NoReceiver),
            ("overbudget", [_, what, _]) => {
                return Err(EngineError::OverBudget(
                    if reply::string(what).as_deref() == Some("keys") {
                        format!(
                            "the app keeps at most {} idempotency keys at once \
                             (limits.max_idempotency_keys); publish without a key or retry later",
                            budgets.idempotency_keys
                        )
                    } else {
                        format!(
                            "the app's recovery logs hold at most {} bytes in all \
                             (limits.max_recovery_log_bytes); retry later",
                            budgets.recovery_log_bytes
                        )
                    },
                ));
            }
            ("limited", _) => {
                return Err(EngineError::RateLimited(rate.map_or(0, |r| r.per_second)));
            }
            _ => return Err(bad_reply("publish")),
        };
        // As with the memory engine, a publish returns once this node's handler has it.
        let sub = lock(&inner.broker.subs).get(&base).cloned();
        // Not while pub/sub is reconnecting: the publication is committed, and the
        // worker delivers it from the log once the connection is back.
        if let Some(sub) =
            sub.filter(|s| inner.broker.connected() && s.active.load(Ordering::Acquire))
        {
            // The next publication of the channel is delivered here at once, without
            // waiting for its copy over pub/sub (the worker skips that copy): a publish
            // costs this node one round trip, and its fan-out runs in the publishing
            // task as with the memory engine. Anything else (another node's
            // publication still on its way first) is left to the worker, in order.
            let done = {
                let _gate = sub.gate.lock().await;
                let last = *sub.delivered.borrow();
                let same = last.epoch == position.epoch;
                if same && position.offset == last.offset + 1 {
                    let mut p = publication;
                    p.position = position;
                    hand(inner, &sub, p);
                    true
                } else {
                    same && position.offset <= last.offset
                }
            };
            if done {
                return Ok(PublishOutcome {
                    position,
                    duplicate: false,
                });
            }
            let mut rx = sub.delivered.subscribe();
            let _ = tokio::time::timeout(
                inner.config.local_delivery_wait,
                rx.wait_for(|p| p.epoch != position.epoch || p.offset >= position.offset),
            )
            .await;
        }
        Ok(PublishOutcome {
            position,
            duplicate: false,
        })
    }

    async fn subscribe_node(&self, channel: &ChannelKey) -> Result<(), EngineError> {
        let inner = &*self.inner;
        let b = &inner.broker;
        let name = inner.base(channel);
        if lock(&b.subs).contains_key(&name) {
            return Ok(());
        }
        let pos = position(inner, channel).await?;
        let sub = Arc::new(Sub {
            key: channel.clone(),
            worker: (channel.hash64() as usize) % b.workers.len(),
            delivered: watch::channel(pos).0,
            gate: tokio::sync::Mutex::new(()),
            active: AtomicBool::new(true),
            resync_queued: AtomicBool::new(false),
        });
        {
            let mut subs = lock(&b.subs);
            if subs.contains_key(&name) {
                return Ok(());
            }
            subs.insert(name.clone(), sub.clone());
        }
        let (tx, rx) = oneshot::channel();
        let sent = b
            .ctl
            .get()
            .is_some_and(|c| c.send(Ctl::Subscribe(name.clone(), tx)).is_ok());
        let result = if !sent {
            Err(unavailable("engine stopped"))
        } else {
            match tokio::time::timeout(inner.config.command_timeout, rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(unavailable("engine stopped")),
                Err(_) => Err(unavailable("SUBSCRIBE timed out")),
            }
        };
        if let Err(e) = result {
            let mut subs = lock(&b.subs);
            if subs.get(&name).is_some_and(|s| Arc::ptr_eq(s, &sub)) {
                subs.remove(&name);
                sub.active.store(false, Ordering::Release);
            }
            return Err(e);
        }
        // A publication that landed between reading the position and SUBSCRIBE taking
        // effect reached no one here: fetch it from the log.
        let now = position(inner, channel).await?;
        if now != pos {
            b.queue_resync(&sub);
        }
        Ok(())
    }

    async fn unsubscribe_node(&self, channel: &ChannelKey) -> Result<(), EngineError> {
        let inner = &*self.inner;
        let b = &inner.broker;
        let name = inner.base(channel);
        let Some(sub) = lock(&b.subs).remove(&name) else {
            return Ok(());
        };
        sub.active.store(false, Ordering::Release);
        let (tx, rx) = oneshot::channel();
        if b.ctl
            .get()
            .is_some_and(|c| c.send(Ctl::Unsubscribe(name, tx)).is_ok())
        {
            // Delivery already stopped (the subscription is inactive); a failure here
            // only leaves Redis sending messages this node drops.
            let _ = tokio::time::timeout(inner.config.command_timeout, rx).await;
        }
        Ok(())
    }

    async fn position(&self, channel: &ChannelKey) -> Result<StreamPosition, EngineError> {
        position(&self.inner, channel).await
    }

    async fn recover(
        &self,
        channel: &ChannelKey,
        since: StreamPosition,
        limit: usize,
    ) -> Result<Recovery, EngineError> {
        recover(&self.inner, channel, since, limit).await
    }
}

mod engine;

pub use engine::RedisEngine;
pub(crate) use engine::{Inner, bad_reply, unavailable};
