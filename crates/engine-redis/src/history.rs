//! [`HistoryStore`] on Redis: one sorted set per channel (`:h`), score = the stored
//! timestamp, member = `<timestamp>,<body>`, and the channel's latest stored timestamp
//! (`:hl`) so that trimming never lowers the next one. Durable as far as the Redis
//! server's AOF policy makes it (docs/scaling.md: `appendonly yes`, `appendfsync always`
//! for the contract's guarantee, `everysec` to trade up to a second of writes for speed).

use crate::broker::{RedisEngine, bad_reply};
use crate::config::reply;
use crate::keys::{decode_body, split_num};
use crate::scripts::SCRIPTS;
use switchboard_engine::{
    ChannelKey, EngineError, HistoryPage, HistoryStore, Publication, StoredMessage,
};

/// Largest timestamp a Redis score (a double) holds exactly.
const MAX_EXACT: u64 = 1 << 53;

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait::async_trait]
impl HistoryStore for RedisEngine {
    async fn append(
        &self,
        channel: &ChannelKey,
        publication: &Publication,
    ) -> Result<u64, EngineError> {
        if publication.timestamp_ms >= MAX_EXACT {
            return Err(EngineError::Unavailable(format!(
                "history: timestamp {} is beyond what Redis stores exactly",
                publication.timestamp_ms
            )));
        }
        let i = &*self.inner;
        let retention = i.config.history;
        let v = i
            .run(
                SCRIPTS
                    .history_append
                    .key(i.base(channel))
                    .arg(i.prefix())
                    .arg(publication.timestamp_ms)
                    .arg(crate::keys::encode_body(publication))
                    .arg(retention.max_per_channel.max(1) as u64)
                    .arg(ms(retention.max_age)),
            )
            .await?;
        reply::int(&v)
            .and_then(|t| u64::try_from(t).ok())
            .ok_or_else(|| bad_reply("history append"))
    }

    async fn query(
        &self,
        channel: &ChannelKey,
        start: u64,
        end: u64,
        limit: usize,
    ) -> Result<HistoryPage, EngineError> {
        if limit == 0 || (start != 0 && start < end) {
            return Ok(HistoryPage::default());
        }
        let i = &*self.inner;
        let limit = limit.min(1 << 30);
        let start = if start == 0 {
            "+inf".to_string()
        } else {
            start.to_string()
        };
        let v = i
            .run(
                SCRIPTS
                    .history_query
                    .key(i.base(channel))
                    .arg(i.prefix())
                    .arg(start)
                    .arg(end.min(MAX_EXACT * 4))
                    .arg(limit as u64)
                    .arg(ms(i.config.history.max_age)),
            )
            .await?;
        let items = reply::items(v);
        let more = items.len() > limit;
        let mut messages = Vec::with_capacity(items.len().min(limit));
        for m in items.iter().take(limit) {
            let (ts, body) = reply::bytes(m)
                .and_then(split_num)
                .ok_or_else(|| bad_reply("history query"))?;
            let p = decode_body(body).ok_or_else(|| bad_reply("history query"))?;
            messages.push(StoredMessage::from_publication(&p, ts));
        }
        let new_start = match (more, messages.last()) {
            (true, Some(m)) => m.timestamp_ms - 1,
            _ => 0,
        };
        Ok(HistoryPage {
            messages,
            new_start,
        })
    }
}
