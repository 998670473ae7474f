//! In-process presence: per channel an ordered map of members (so paging by user id is
//! exact), a visible-member count, and a reverse index user → visible channels updated
//! under the same channel lock; each user's memberships and deadline (for
//! [`Presence::expire_due`]) under one more.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use switchboard_engine::{
    ChannelKey, Departed, EngineError, Expired, Member, MemberPage, Presence, State,
};

const SHARDS: usize = 32;

struct Rec {
    quiet: bool,
    state: State,
}

#[derive(Default)]
struct Channel {
    members: BTreeMap<Arc<str>, Rec>,
    visible: usize,
}

/// (app, user) → channels where the user is visible.
type WhereIndex = HashMap<(Arc<str>, Arc<str>), BTreeSet<ChannelKey>>;

/// Every membership of each user, and the users' deadlines.
#[derive(Default)]
struct Users {
    memberships: HashMap<(Arc<str>, Arc<str>), BTreeSet<ChannelKey>>,
    deadline: HashMap<(Arc<str>, Arc<str>), u64>,
    due: BTreeSet<(u64, Arc<str>, Arc<str>)>,
}

/// Presence kept in this process.
pub struct MemoryPresence {
    shards: Vec<Mutex<HashMap<ChannelKey, Channel>>>,
    where_now: Mutex<WhereIndex>,
    users: Mutex<Users>,
    hasher: std::hash::RandomState,
}

impl Default for MemoryPresence {
    fn default() -> Self {
        MemoryPresence {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            where_now: Mutex::new(HashMap::new()),
            users: Mutex::new(Users::default()),
            hasher: std::hash::RandomState::new(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryPresence {
    /// No members yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn shard(&self, channel: &ChannelKey) -> MutexGuard<'_, HashMap<ChannelKey, Channel>> {
        let h = self.hasher.hash_one(channel);
        lock(&self.shards[(h as usize) % SHARDS])
    }

    /// Records (or forgets) that `user` is visible in `channel`; called under the
    /// channel's shard lock.
    fn index(&self, channel: &ChannelKey, user: &Arc<str>, visible: bool) {
        let mut idx = lock(&self.where_now);
        let k = (channel.app.clone(), user.clone());
        if visible {
            idx.entry(k).or_default().insert(channel.clone());
        } else if let Some(set) = idx.get_mut(&k) {
            set.remove(channel);
            if set.is_empty() {
                idx.remove(&k);
            }
        }
    }
}

#[async_trait::async_trait]
impl Presence for MemoryPresence {
    async fn enter(
        &self,
        channel: &ChannelKey,
        user: &str,
        quiet: bool,
        state: State,
    ) -> Result<Option<bool>, EngineError> {
        let mut map = self.shard(channel);
        let ch = map.entry(channel.clone()).or_default();
        let (was_quiet, user) = match ch.members.get_key_value(user) {
            Some((u, r)) => (Some(r.quiet), u.clone()),
            None => (None, Arc::<str>::from(user)),
        };
        let change = match (was_quiet, quiet) {
            (None | Some(true), false) => Some(true),
            (Some(false), true) => Some(false),
            _ => None,
        };
        let rec = ch.members.entry(user.clone()).or_insert(Rec {
            quiet,
            state: State::new(),
        });
        rec.quiet = quiet;
        rec.state.extend(state);
        match (was_quiet, quiet) {
            (None | Some(true), false) => ch.visible += 1,
            (Some(false), true) => ch.visible -= 1,
            _ => {}
        }
        if was_quiet != Some(quiet) {
            self.index(channel, &user, !quiet);
        }
        if was_quiet.is_none() {
            lock(&self.users)
                .memberships
                .entry((channel.app.clone(), user.clone()))
                .or_default()
                .insert(channel.clone());
        }
        Ok(change)
    }

    async fn exit(
        &self,
        channel: &ChannelKey,
        user: &str,
    ) -> Result<Option<Departed>, EngineError> {
        let mut map = self.shard(channel);
        let Some(ch) = map.get_mut(channel) else {
            return Ok(None);
        };
        let Some((user, rec)) = ch.members.remove_entry(user) else {
            return Ok(None);
        };
        if !rec.quiet {
            ch.visible -= 1;
            self.index(channel, &user, false);
        }
        {
            let mut users = lock(&self.users);
            let k = (channel.app.clone(), user.clone());
            if let Some(set) = users.memberships.get_mut(&k) {
                set.remove(channel);
                if set.is_empty() {
                    users.memberships.remove(&k);
                }
            }
        }
        if ch.members.is_empty() {
            map.remove(channel);
        }
        Ok(Some(Departed {
            quiet: rec.quiet,
            state: rec.state,
        }))
    }

    async fn set_state(
        &self,
        channel: &ChannelKey,
        user: &str,
        items: State,
        max_keys: usize,
    ) -> Result<Option<State>, EngineError> {
        let mut map = self.shard(channel);
        let Some(rec) = map.get_mut(channel).and_then(|c| c.members.get_mut(user)) else {
            return Ok(None);
        };
        let added = items.keys().filter(|k| !rec.state.contains_key(*k)).count();
        if rec.state.len() + added > max_keys {
            return Err(EngineError::LimitReached(max_keys));
        }
        rec.state.extend(items);
        Ok(Some(rec.state.clone()))
    }

    async fn remove_state(
        &self,
        channel: &ChannelKey,
        user: &str,
        keys: &[String],
    ) -> Result<Option<State>, EngineError> {
        let mut map = self.shard(channel);
        let Some(rec) = map.get_mut(channel).and_then(|c| c.members.get_mut(user)) else {
            return Ok(None);
        };
        if keys.is_empty() {
            rec.state.clear();
        } else {
            for k in keys {
                rec.state.remove(k);
            }
        }
        Ok(Some(rec.state.clone()))
    }

    async fn state(&self, channel: &ChannelKey, user: &str) -> Result<Option<State>, EngineError> {
        let map = self.shard(channel);
        Ok(map
            .get(channel)
            .and_then(|c| c.members.get(user))
            .filter(|r| !r.quiet)
            .map(|r| r.state.clone()))
    }

    async fn list(
        &self,
        channel: &ChannelKey,
        after: Option<&str>,
        limit: usize,
    ) -> Result<MemberPage, EngineError> {
        let map = self.shard(channel);
        let Some(ch) = map.get(channel) else {
            return Ok(MemberPage::default());
        };
        let lower = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        let mut visible = ch
            .members
            .range::<str, _>((lower, Bound::Unbounded))
            .filter(|(_, r)| !r.quiet);
        let members: Vec<Member> = visible
            .by_ref()
            .take(limit)
            .map(|(u, r)| Member {
                user: u.clone(),
                state: r.state.clone(),
            })
            .collect();
        let more = visible.next().is_some();
        Ok(MemberPage { members, more })
    }

    async fn count(&self, channel: &ChannelKey) -> Result<usize, EngineError> {
        Ok(self.shard(channel).get(channel).map_or(0, |c| c.visible))
    }

    async fn channels_of(&self, app: &str, user: &str) -> Result<Vec<ChannelKey>, EngineError> {
        let idx = lock(&self.where_now);
        Ok(idx
            .get(&(Arc::from(app), Arc::from(user)))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn set_expiry(
        &self,
        app: &str,
        user: &str,
        expires_at_ms: Option<u64>,
    ) -> Result<(), EngineError> {
        let mut users = self.users();
        let k: (Arc<str>, Arc<str>) = (app.into(), user.into());
        if let Some(old) = users.deadline.remove(&k) {
            users.due.remove(&(old, k.0.clone(), k.1.clone()));
        }
        if let Some(at) = expires_at_ms {
            users.due.insert((at, k.0.clone(), k.1.clone()));
            users.deadline.insert(k, at);
        }
        Ok(())
    }

    async fn expire_due(&self, now_ms: u64) -> Result<Vec<Expired>, EngineError> {
        let lapsed: Vec<(Arc<str>, Vec<ChannelKey>)> = {
            let mut users = self.users();
            let mut lapsed = Vec::new();
            while let Some((at, app, user)) = users.due.first().cloned() {
                if at > now_ms {
                    break;
                }
                users.due.pop_first();
                let k = (app, user.clone());
                users.deadline.remove(&k);
                let channels = users
                    .memberships
                    .get(&k)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default();
                lapsed.push((user, channels));
            }
            lapsed
        };
        let mut expired = Vec::new();
        for (user, channels) in lapsed {
            for channel in channels {
                if let Some(departed) = self.exit(&channel, &user).await? {
                    expired.push(Expired {
                        channel,
                        user: user.clone(),
                        departed,
                    });
                }
            }
        }
        Ok(expired)
    }
}

impl MemoryPresence {
    fn users(&self) -> MutexGuard<'_, Users> {
        lock(&self.users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        switchboard_engine::conformance_presence::run_presence_suite(|| {
            Arc::new(MemoryPresence::new()) as Arc<dyn Presence>
        })
        .await;
    }
}
