//! The engine conformance kit (every suite) against the Redis engine on a real
//! `redis-server`; each factory call gets its own key prefix, each test its own server.

mod support;

use std::sync::Arc;
use support::{RedisServer, config, connect_blocking};
use switchboard_engine::{Broker, HistoryStore, Presence, Topics};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_suite() {
    let server = RedisServer::start();
    switchboard_engine::conformance::run_broker_suite(|retention| {
        let mut c = config(&server, "n1");
        c.retention = retention;
        connect_blocking(c) as Arc<dyn Broker>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presence_suite() {
    let server = RedisServer::start();
    switchboard_engine::conformance_presence::run_presence_suite(|| {
        connect_blocking(config(&server, "n1")) as Arc<dyn Presence>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn topics_suite() {
    let server = RedisServer::start();
    switchboard_engine::conformance_topics::run_topics_suite(|| {
        connect_blocking(config(&server, "n1")) as Arc<dyn Topics>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_suite() {
    let server = RedisServer::start();
    switchboard_engine::conformance_storage::run_storage_suite(|| {
        connect_blocking(config(&server, "n1"))
    })
    .await;
}

/// The storage checks side by side on one engine (they use their own channels).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_suite_on_one_engine() {
    let server = RedisServer::start();
    let engine = connect_blocking(config(&server, "n1"));
    switchboard_engine::conformance_storage::run_storage_suite(|| engine.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_suite() {
    let server = RedisServer::start();
    switchboard_engine::conformance_history::run_history_suite(|retention| {
        let mut c = config(&server, "n1");
        c.history = retention;
        connect_blocking(c) as Arc<dyn HistoryStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_budgets_suite() {
    let server = RedisServer::start();
    switchboard_engine::conformance_budgets::run_broker_budgets_suite(|| {
        connect_blocking(config(&server, "n1")) as Arc<dyn Broker>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_budgets_suite() {
    let server = RedisServer::start();
    switchboard_engine::conformance_budgets::run_storage_budgets_suite(|| {
        connect_blocking(config(&server, "n1"))
    })
    .await;
}
