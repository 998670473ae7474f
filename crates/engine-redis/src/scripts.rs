//! The Lua scripts (files under `lua/`, each prefixed with `lua/lib.lua`), loaded with
//! SCRIPT LOAD at connect and run with EVALSHA (reloaded on NOSCRIPT, e.g. after a
//! Redis restart).

use redis::Script;
use std::sync::LazyLock;

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("../lua/lib.lua"),
            include_str!(concat!("../lua/", $file))
        ))
    };
}

/// Every script of the engine.
pub(crate) struct Scripts {
    pub publish: Script,
    pub position: Script,
    pub recover: Script,
    pub presence_enter: Script,
    pub presence_exit: Script,
    pub presence_state: Script,
    pub presence_list: Script,
    pub presence_expire: Script,
    pub topics_join: Script,
    pub topics_leave: Script,
    pub meta_write: Script,
    pub meta_get: Script,
    pub locks: Script,
    pub history_append: Script,
    pub history_query: Script,
    pub node_heartbeat: Script,
    pub session_claim: Script,
    pub session_release: Script,
}

impl Scripts {
    /// All of them, for SCRIPT LOAD.
    pub fn all(&self) -> [&Script; 18] {
        [
            &self.publish,
            &self.position,
            &self.recover,
            &self.presence_enter,
            &self.presence_exit,
            &self.presence_state,
            &self.presence_list,
            &self.presence_expire,
            &self.topics_join,
            &self.topics_leave,
            &self.meta_write,
            &self.meta_get,
            &self.locks,
            &self.history_append,
            &self.history_query,
            &self.node_heartbeat,
            &self.session_claim,
            &self.session_release,
        ]
    }
}

/// The scripts, compiled into the binary.
pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    publish: script!("publish.lua"),
    position: script!("position.lua"),
    recover: script!("recover.lua"),
    presence_enter: script!("presence_enter.lua"),
    presence_exit: script!("presence_exit.lua"),
    presence_state: script!("presence_state.lua"),
    presence_list: script!("presence_list.lua"),
    presence_expire: script!("presence_expire.lua"),
    topics_join: script!("topics_join.lua"),
    topics_leave: script!("topics_leave.lua"),
    meta_write: script!("meta_write.lua"),
    meta_get: script!("meta_get.lua"),
    locks: script!("locks.lua"),
    history_append: script!("history_append.lua"),
    history_query: script!("history_query.lua"),
    node_heartbeat: script!("node_heartbeat.lua"),
    session_claim: script!("session_claim.lua"),
    session_release: script!("session_release.lua"),
});
