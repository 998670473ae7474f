//! [`MemoryBroker`]: the in-process [`Broker`].

use async_trait::async_trait;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};
use switchboard_engine::{
    Broker, ChannelKey, EngineError, KeyMap, Publication, PublicationHandler, PublishOptions,
    PublishOutcome, RateLimit, Recovery, Retention, StreamPosition,
};

const SHARDS: usize = 64;

/// Settings of the memory engine.
#[derive(Debug, Clone, Copy)]
pub struct MemoryConfig {
    /// Recovery log bounds per channel (defaults: 1,000 publications, 300 s).
    pub retention: Retention,
    /// How often idle channels are swept from memory (default 30 s).
    pub sweep_interval: Duration,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            retention: Retention {
                max_count: 1000,
                max_age: Duration::from_secs(300),
            },
            sweep_interval: Duration::from_secs(30),
        }
    }
}

/// One channel's state; guarded by its own mutex.
struct Channel {
    epoch: u64,
    offset: u64,
    /// Recovery log: (time appended, publication), oldest first.
    log: VecDeque<(Instant, Arc<Publication>)>,
    node_subscribed: bool,
    /// Token bucket: tokens left and when it was last refilled.
    tokens: f64,
    refilled: Instant,
    /// Idempotency keys seen within the retention age.
    seen_keys: HashMap<Arc<str>, (Instant, StreamPosition)>,
}

impl Channel {
    fn new(now: Instant) -> Self {
        Channel {
            // Epochs are random so that a restarted engine never repeats one.
            epoch: rand::random::<u64>() >> 1,
            offset: 0,
            log: VecDeque::new(),
            node_subscribed: false,
            tokens: f64::NAN,
            refilled: now,
            seen_keys: HashMap::new(),
        }
    }

    fn position(&self) -> StreamPosition {
        StreamPosition {
            epoch: self.epoch,
            offset: self.offset,
        }
    }

    fn take_token(&mut self, limit: RateLimit, now: Instant) -> bool {
        let burst = f64::from(limit.burst.max(1));
        if self.tokens.is_nan() {
            self.tokens = burst;
        }
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(limit.per_second)).min(burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn trim(&mut self, retention: Retention, now: Instant) {
        while self.log.len() > retention.max_count {
            self.log.pop_front();
        }
        while let Some((at, _)) = self.log.front() {
            if now.duration_since(*at) > retention.max_age {
                self.log.pop_front();
            } else {
                break;
            }
        }
        if !self.seen_keys.is_empty() {
            self.seen_keys
                .retain(|_, (at, _)| now.duration_since(*at) <= retention.max_age);
        }
    }

    /// Whether dropping this channel loses nothing anyone could still ask for.
    fn idle(&self) -> bool {
        !self.node_subscribed
            && self.log.is_empty()
            && self.seen_keys.is_empty()
            && self.tokens.is_nan()
    }
}

/// One shard: live channels, and the last position of channels swept from memory.
#[derive(Default)]
struct Maps {
    channels: KeyMap<Arc<Mutex<Channel>>>,
    /// A channel swept for being idle keeps its epoch and offset here for a while, so
    /// that when it comes back a client's position in it is still valid: a quiet
    /// channel is not a gap.
    swept: KeyMap<(StreamPosition, Instant)>,
}

type Shard = Mutex<Maps>;

struct Inner {
    config: MemoryConfig,
    shards: Vec<Shard>,
    handler: OnceLock<Arc<dyn PublicationHandler>>,
}

/// The in-process broker: positions, recovery log, rate limits and node delivery.
#[derive(Clone)]
pub struct MemoryBroker {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps half-updated in a
    // way later operations would misread, so a poisoned lock is simply taken over.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryBroker {
    /// Creates a broker. Inside a tokio runtime it also starts the idle-channel sweeper.
    pub fn new(config: MemoryConfig) -> Self {
        let inner = Arc::new(Inner {
            config,
            shards: (0..SHARDS).map(|_| Mutex::new(Maps::default())).collect(),
            handler: OnceLock::new(),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&inner);
            rt.spawn(sweeper(weak, config.sweep_interval));
        }
        MemoryBroker { inner }
    }

    fn shard(&self, key: &ChannelKey) -> &Shard {
        &self.inner.shards[(key.hash64() as usize) % SHARDS]
    }

    fn channel(&self, key: &ChannelKey) -> Arc<Mutex<Channel>> {
        let mut guard = lock(self.shard(key));
        let maps = &mut *guard;
        maps.channels
            .entry(key.clone())
            .or_insert_with(|| {
                let mut ch = Channel::new(Instant::now());
                if let Some((pos, _)) = maps.swept.remove(key) {
                    ch.epoch = pos.epoch;
                    ch.offset = pos.offset;
                }
                Arc::new(Mutex::new(ch))
            })
            .clone()
    }

    /// Number of channels held in memory (for metrics and tests).
    pub fn channel_count(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| lock(s).channels.len())
            .sum()
    }
}

/// Periodically drops channels that hold nothing (trimmed log, no node subscription).
async fn sweeper(inner: Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let now = Instant::now();
        let keep_swept = inner.config.retention.max_age.max(Duration::from_secs(60));
        for shard in &inner.shards {
            let mut guard = lock(shard);
            let maps = &mut *guard;
            let swept = &mut maps.swept;
            swept.retain(|_, (_, at)| now.duration_since(*at) <= keep_swept);
            maps.channels.retain(|key, ch| {
                let mut ch = lock(ch);
                ch.trim(inner.config.retention, now);
                // Keep a bucket only while it is not full again.
                if !ch.tokens.is_nan() && now.duration_since(ch.refilled) > Duration::from_secs(60)
                {
                    ch.tokens = f64::NAN;
                }
                if ch.idle() {
                    swept.insert(key.clone(), (ch.position(), now));
                    false
                } else {
                    true
                }
            });
        }
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn set_handler(&self, handler: Arc<dyn PublicationHandler>) {
        let _ = self.inner.handler.set(handler);
    }

    async fn publish(
        &self,
        channel: &ChannelKey,
        mut publication: Publication,
        options: &PublishOptions,
    ) -> Result<PublishOutcome, EngineError> {
        let now = Instant::now();
        let ch = self.channel(channel);
        let mut ch = lock(&ch);
        if let Some(key) = &options.idempotency_key {
            if let Some((_, position)) = ch.seen_keys.get(key) {
                return Ok(PublishOutcome {
                    position: *position,
                    duplicate: true,
                });
            }
        }
        if options.require_receiver && !ch.node_subscribed {
            return Err(EngineError::NoReceiver);
        }
        if let Some(limit) = options.rate_limit {
            if !ch.take_token(limit, now) {
                return Err(EngineError::RateLimited(limit.per_second));
            }
        }
        ch.offset += 1;
        publication.position = ch.position();
        let publication = Arc::new(publication);
        ch.log.push_back((now, publication.clone()));
        ch.trim(self.inner.config.retention, now);
        if let Some(key) = &options.idempotency_key {
            ch.seen_keys
                .insert(key.clone(), (now, publication.position));
        }
        if ch.node_subscribed {
            if let Some(handler) = self.inner.handler.get() {
                // Under the channel lock, so this node sees the channel in offset order.
                handler.on_publication(channel, &publication);
            }
        }
        Ok(PublishOutcome {
            position: publication.position,
            duplicate: false,
        })
    }

    async fn subscribe_node(&self, channel: &ChannelKey) -> Result<(), EngineError> {
        lock(&self.channel(channel)).node_subscribed = true;
        Ok(())
    }

    async fn unsubscribe_node(&self, channel: &ChannelKey) -> Result<(), EngineError> {
        let existing = lock(self.shard(channel)).channels.get(channel).cloned();
        if let Some(ch) = existing {
            lock(&ch).node_subscribed = false;
        }
        Ok(())
    }

    async fn position(&self, channel: &ChannelKey) -> Result<StreamPosition, EngineError> {
        Ok(lock(&self.channel(channel)).position())
    }

    async fn recover(
        &self,
        channel: &ChannelKey,
        since: StreamPosition,
        limit: usize,
    ) -> Result<Recovery, EngineError> {
        let now = Instant::now();
        let ch = self.channel(channel);
        let mut ch = lock(&ch);
        ch.trim(self.inner.config.retention, now);
        let position = ch.position();
        if since.epoch != ch.epoch {
            return Ok(Recovery {
                publications: Vec::new(),
                position,
                complete: false,
            });
        }
        let first_kept = ch.log.front().map(|(_, p)| p.position.offset);
        let complete =
            since.offset >= ch.offset || first_kept.is_some_and(|f| f <= since.offset + 1);
        let publications = ch
            .log
            .iter()
            .filter(|(_, p)| p.position.offset > since.offset)
            .take(limit)
            .map(|(_, p)| p.clone())
            .collect();
        Ok(Recovery {
            publications,
            position,
            complete,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_engine::conformance;

    #[tokio::test]
    async fn memory_broker_passes_the_conformance_suite() {
        conformance::run_broker_suite(|retention| {
            Arc::new(MemoryBroker::new(MemoryConfig {
                retention,
                ..Default::default()
            })) as Arc<dyn Broker>
        })
        .await;
    }

    #[tokio::test]
    async fn a_swept_channel_comes_back_at_its_position() {
        let b = MemoryBroker::new(MemoryConfig {
            retention: Retention {
                max_count: 10,
                max_age: Duration::from_millis(50),
            },
            sweep_interval: Duration::from_millis(20),
        });
        let key = ChannelKey::new("a", switchboard_engine::ChannelKind::Message, "quiet");
        let pos = b
            .publish(
                &key,
                conformance::publication("p", "x"),
                &PublishOptions::default(),
            )
            .await
            .expect("publish")
            .position;
        let deadline = Instant::now() + Duration::from_secs(5);
        while b.channel_count() > 0 {
            assert!(Instant::now() < deadline, "channel never swept");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Nothing was published since: recovering from the last position is complete.
        let r = b.recover(&key, pos, 10).await.expect("recover");
        assert!(r.complete, "a quiet swept channel is not a gap");
        assert_eq!(r.position, pos);
    }

    #[tokio::test]
    async fn idle_channels_are_swept() {
        let b = MemoryBroker::new(MemoryConfig {
            retention: Retention {
                max_count: 10,
                max_age: Duration::from_millis(50),
            },
            sweep_interval: Duration::from_millis(20),
        });
        let key = ChannelKey::new("a", switchboard_engine::ChannelKind::Message, "c");
        b.publish(
            &key,
            conformance::publication("p", "x"),
            &PublishOptions::default(),
        )
        .await
        .expect("publish");
        assert_eq!(b.channel_count(), 1);
        let deadline = Instant::now() + Duration::from_secs(5);
        while b.channel_count() > 0 {
            assert!(Instant::now() < deadline, "channel never swept");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
