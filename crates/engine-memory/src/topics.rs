//! In-process topic roles: one small map per stream channel under a sharded lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use switchboard_engine::{ChannelKey, EngineError, TopicInfo, TopicPublisher, Topics};

/// Roles of one channel: topic → publisher → meta.
type Roles = BTreeMap<Arc<str>, BTreeMap<Arc<str>, Arc<str>>>;

const SHARDS: usize = 16;

/// Topic roles kept in this process.
pub struct MemoryTopics {
    shards: Vec<Mutex<HashMap<ChannelKey, Roles>>>,
}

impl Default for MemoryTopics {
    fn default() -> Self {
        MemoryTopics {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl MemoryTopics {
    /// No roles yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(
        &self,
        channel: &ChannelKey,
        f: impl FnOnce(&mut HashMap<ChannelKey, Roles>) -> R,
    ) -> R {
        use std::hash::{BuildHasher, RandomState};
        static HASHER: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
        let h = HASHER.get_or_init(RandomState::new).hash_one(channel);
        let mut map = self.shards[(h as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        f(&mut map)
    }
}

fn info(topic: &Arc<str>, publishers: &BTreeMap<Arc<str>, Arc<str>>) -> TopicInfo {
    TopicInfo {
        topic: topic.clone(),
        publishers: publishers
            .iter()
            .map(|(user, meta)| TopicPublisher {
                user: user.clone(),
                meta: meta.clone(),
            })
            .collect(),
    }
}

#[async_trait::async_trait]
impl Topics for MemoryTopics {
    async fn join_topic(
        &self,
        channel: &ChannelKey,
        topic: &str,
        user: &str,
        meta: &str,
        max_topics: usize,
    ) -> Result<bool, EngineError> {
        self.with(channel, |map| {
            let roles = map.entry(channel.clone()).or_default();
            if roles.get(topic).is_some_and(|p| p.contains_key(user)) {
                return Ok(false);
            }
            let held = roles.values().filter(|p| p.contains_key(user)).count();
            if held >= max_topics {
                if roles.is_empty() {
                    map.remove(channel);
                }
                return Err(EngineError::LimitReached(max_topics));
            }
            roles
                .entry(topic.into())
                .or_default()
                .insert(user.into(), meta.into());
            Ok(true)
        })
    }

    async fn leave_topic(
        &self,
        channel: &ChannelKey,
        topic: &str,
        user: &str,
    ) -> Result<bool, EngineError> {
        self.with(channel, |map| {
            let Some(roles) = map.get_mut(channel) else {
                return Ok(false);
            };
            let Some(publishers) = roles.get_mut(topic) else {
                return Ok(false);
            };
            let found = publishers.remove(user).is_some();
            if publishers.is_empty() {
                roles.remove(topic);
            }
            if roles.is_empty() {
                map.remove(channel);
            }
            Ok(found)
        })
    }

    async fn leave_channel(
        &self,
        channel: &ChannelKey,
        user: &str,
    ) -> Result<Vec<Arc<str>>, EngineError> {
        self.with(channel, |map| {
            let Some(roles) = map.get_mut(channel) else {
                return Ok(Vec::new());
            };
            let mut left = Vec::new();
            roles.retain(|topic, publishers| {
                if publishers.remove(user).is_some() {
                    left.push(topic.clone());
                }
                !publishers.is_empty()
            });
            if roles.is_empty() {
                map.remove(channel);
            }
            Ok(left)
        })
    }

    async fn topics(&self, channel: &ChannelKey) -> Result<Vec<TopicInfo>, EngineError> {
        self.with(channel, |map| {
            Ok(map
                .get(channel)
                .map(|roles| roles.iter().map(|(t, p)| info(t, p)).collect())
                .unwrap_or_default())
        })
    }

    async fn publishers(
        &self,
        channel: &ChannelKey,
        topic: &str,
    ) -> Result<Vec<TopicPublisher>, EngineError> {
        self.with(channel, |map| {
            Ok(map
                .get(channel)
                .and_then(|roles| roles.get_key_value(topic))
                .map(|(t, p)| info(t, p).publishers)
                .unwrap_or_default())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        switchboard_engine::conformance_topics::run_topics_suite(|| {
            Arc::new(MemoryTopics::new()) as Arc<dyn Topics>
        })
        .await;
    }
}
