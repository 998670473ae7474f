//! [`Topics`] on Redis: one HASH per stream channel, field `<len(topic)>:<topic><user>`
//! → meta (`:tp`), and a HASH user → number of topics (`:tc`) for the per-member limit.

use crate::broker::{RedisEngine, bad_reply};
use crate::config::reply;
use crate::keys::{len_prefixed, split_len};
use crate::scripts::SCRIPTS;
use std::collections::BTreeMap;
use std::sync::Arc;
use switchboard_engine::{ChannelKey, EngineError, TopicInfo, TopicPublisher, Topics};

fn field(topic: &str, user: &str) -> String {
    format!("{}{user}", len_prefixed(topic))
}

impl RedisEngine {
    /// topic → user → meta, ordered.
    async fn roles(
        &self,
        channel: &ChannelKey,
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, EngineError> {
        let i = &*self.inner;
        let all: Vec<(Vec<u8>, String)> = i
            .cmd(redis::cmd("HGETALL").arg(format!("{}:tp", i.base(channel))))
            .await?;
        let mut roles: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (f, meta) in all {
            let (topic, user) = split_len(&f).ok_or_else(|| bad_reply("topics"))?;
            let topic = String::from_utf8(topic.to_vec()).map_err(|_| bad_reply("topics"))?;
            let user = String::from_utf8(user.to_vec()).map_err(|_| bad_reply("topics"))?;
            roles.entry(topic).or_default().insert(user, meta);
        }
        Ok(roles)
    }
}

fn publishers(users: BTreeMap<String, String>) -> Vec<TopicPublisher> {
    users
        .into_iter()
        .map(|(user, meta)| TopicPublisher {
            user: user.into(),
            meta: meta.into(),
        })
        .collect()
}

#[async_trait::async_trait]
impl Topics for RedisEngine {
    async fn join_topic(
        &self,
        channel: &ChannelKey,
        topic: &str,
        user: &str,
        meta: &str,
        max_topics: usize,
    ) -> Result<bool, EngineError> {
        let i = &*self.inner;
        let v = i
            .run(
                SCRIPTS
                    .topics_join
                    .key(i.base(channel))
                    .arg(i.prefix())
                    .arg(field(topic, user))
                    .arg(user)
                    .arg(meta)
                    .arg(max_topics as u64),
            )
            .await?;
        match reply::int(&v) {
            Some(1) => Ok(true),
            Some(0) => Ok(false),
            Some(-1) => Err(EngineError::LimitReached(max_topics)),
            _ => Err(bad_reply("join_topic")),
        }
    }

    async fn leave_topic(
        &self,
        channel: &ChannelKey,
        topic: &str,
        user: &str,
    ) -> Result<bool, EngineError> {
        Ok(!self
            .leave(channel, user, &field(topic, user))
            .await?
            .is_empty())
    }

    async fn leave_channel(
        &self,
        channel: &ChannelKey,
        user: &str,
    ) -> Result<Vec<Arc<str>>, EngineError> {
        let mut topics = self.leave(channel, user, "").await?;
        topics.sort();
        Ok(topics)
    }

    async fn topics(&self, channel: &ChannelKey) -> Result<Vec<TopicInfo>, EngineError> {
        Ok(self
            .roles(channel)
            .await?
            .into_iter()
            .map(|(topic, users)| TopicInfo {
                topic: topic.into(),
                publishers: publishers(users),
            })
            .collect())
    }

    async fn publishers(
        &self,
        channel: &ChannelKey,
        topic: &str,
    ) -> Result<Vec<TopicPublisher>, EngineError> {
        Ok(self
            .roles(channel)
            .await?
            .remove(topic)
            .map(publishers)
            .unwrap_or_default())
    }
}

impl RedisEngine {
    async fn leave(
        &self,
        channel: &ChannelKey,
        user: &str,
        field: &str,
    ) -> Result<Vec<Arc<str>>, EngineError> {
        let i = &*self.inner;
        let v = i
            .run(
                SCRIPTS
                    .topics_leave
                    .key(i.base(channel))
                    .arg(i.prefix())
                    .arg(user)
                    .arg(field),
            )
            .await?;
        reply::items(v)
            .iter()
            .map(|t| {
                reply::string(t)
                    .map(Arc::from)
                    .ok_or_else(|| bad_reply("leave_topic"))
            })
            .collect()
    }
}
