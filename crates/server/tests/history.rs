//! Message history over real sockets: storeInHistory, getMessages paging, USER
//! conversations, validation, and durability across a killed server process (api.md
//! §8, R160–R164).

mod common;

use common::*;
use std::path::PathBuf;
use std::sync::Arc;
use switchboard_client::{
    ChannelType, ClientConfig, ErrorCode, GetHistoryMessageOptions, Payload, PublishOptions,
};
use switchboard_engine::HistoryRetention;
use switchboard_engine_memory::{MemoryBroker, MemoryConfig, SqliteHistory};
use switchboard_server::Server;

async fn server_with_history(dir: &DataDir) -> TestServer {
    let mut config = base_config();
    for app in &mut config.apps {
        app.limits.publish_rate_per_channel = 0;
    }
    let history = SqliteHistory::open(&dir.0, HistoryRetention::default()).expect("open history");
    let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
    TestServer::with_parts(Server::new(config, broker).with_history(Arc::new(history))).await
}

fn stored() -> PublishOptions {
    PublishOptions {
        store_in_history: true,
        ..Default::default()
    }
}

fn text(p: &Payload) -> String {
    match p {
        Payload::Text(s) => s.clone(),
        Payload::Binary(b) => format!("{b:?}"),
    }
}

#[tokio::test]
async fn r160_r164_only_stored_messages_newest_first_and_paging_is_exact() {
    let dir = DataDir::new("paging");
    let server = server_with_history(&dir).await;
    let alice = server.login("alice").await;
    // 250 stored in a burst (many share a millisecond) and some not stored (R160).
    for i in 0..250 {
        alice
            .publish("room", format!("m{i}"), stored())
            .await
            .expect("publish");
        if i % 50 == 0 {
            alice
                .publish("room", "not stored", PublishOptions::default())
                .await
                .expect("publish");
        }
    }
    let history = alice.history();
    let mut seen = Vec::new();
    let mut start = 0;
    let mut pages = 0;
    loop {
        let options = GetHistoryMessageOptions {
            message_count: 70,
            start,
            end: 0,
        };
        let page = history
            .get_messages("room", ChannelType::Message, options)
            .await
            .expect("getMessages");
        assert_eq!(page.count as usize, page.message_list.len());
        assert!(page.count <= 70);
        let ts: Vec<u64> = page.message_list.iter().map(|m| m.timestamp).collect();
        assert!(
            ts.windows(2).all(|w| w[0] > w[1]),
            "newest first, unique timestamps (R164)"
        );
        seen.extend(page.message_list.iter().map(|m| text(&m.message)));
        pages += 1;
        if page.new_start == 0 {
            break;
        }
        start = page.new_start;
    }
    assert_eq!(pages, 4, "250 messages in pages of 70");
    let want: Vec<String> = (0..250).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(
        seen, want,
        "every stored message exactly once, newest first (R164)"
    );
}

#[tokio::test]
async fn r162_default_count_and_r163_range_validation() {
    let dir = DataDir::new("count");
    let server = server_with_history(&dir).await;
    let alice = server.login("alice").await;
    for i in 0..120 {
        alice
            .publish("c", format!("{i}"), stored())
            .await
            .expect("publish");
    }
    let h = alice.history();
    let page = h
        .get_messages(
            "c",
            ChannelType::Message,
            GetHistoryMessageOptions::default(),
        )
        .await
        .expect("getMessages");
    assert_eq!(page.count, 100, "0 means 100 (R162)");
    assert_ne!(page.new_start, 0);
    let over = GetHistoryMessageOptions {
        message_count: 500,
        ..Default::default()
    };
    let page = h
        .get_messages("c", ChannelType::Message, over)
        .await
        .expect("getMessages");
    assert_eq!(page.count, 100, "over 100 means 100 (R162)");
    for (start, end) in [(1_000, 2_000), (1_000, 1_000), (100_000_000, 1)] {
        let o = GetHistoryMessageOptions {
            message_count: 10,
            start,
            end,
        };
        let e = h
            .get_messages("c", ChannelType::Message, o)
            .await
            .expect_err("bad range");
        assert_eq!(
            e.error_code(),
            Some(ErrorCode::HistoryInvalidTimestamp),
            "{start}..{end}: {e}"
        );
    }
    let e = h
        .get_messages(
            "c",
            ChannelType::Stream,
            GetHistoryMessageOptions::default(),
        )
        .await
        .expect_err("STREAM has no history");
    assert_eq!(
        e.error_code(),
        Some(ErrorCode::InvalidChannelType),
        "R161: {e}"
    );
}

#[tokio::test]
async fn user_conversation_history_is_shared_by_both_peers_and_offline_store_answers_11035() {
    let dir = DataDir::new("user");
    let server = server_with_history(&dir).await;
    let alice = server.login("alice").await;
    let bob = server.login("bob").await;
    let to_user = PublishOptions {
        channel_type: ChannelType::User,
        store_in_history: true,
        ..Default::default()
    };
    alice
        .publish("bob", "hi bob", to_user.clone())
        .await
        .expect("publish");
    bob.publish("alice", "hi alice", to_user.clone())
        .await
        .expect("publish");
    bob.logout().await.expect("logout");
    let e = alice
        .publish("bob", "are you there", to_user.clone())
        .await
        .expect_err("bob is offline");
    assert_eq!(
        e.error_code(),
        Some(ErrorCode::ChannelReceiverOfflineButStoreSucceeded),
        "offline but stored: {e}"
    );
    let from_alice = alice
        .history()
        .get_messages(
            "bob",
            ChannelType::User,
            GetHistoryMessageOptions::default(),
        )
        .await
        .expect("alice's view");
    let texts: Vec<String> = from_alice
        .message_list
        .iter()
        .map(|m| text(&m.message))
        .collect();
    assert_eq!(texts, ["are you there", "hi alice", "hi bob"]);
    let bob = server.login("bob").await;
    let from_bob = bob
        .history()
        .get_messages(
            "alice",
            ChannelType::User,
            GetHistoryMessageOptions::default(),
        )
        .await
        .expect("bob's view");
    assert_eq!(
        from_bob.message_list, from_alice.message_list,
        "one conversation, both peers"
    );
    let carol = server.login("carol").await;
    let none = carol
        .history()
        .get_messages(
            "bob",
            ChannelType::User,
            GetHistoryMessageOptions::default(),
        )
        .await
        .expect("carol's view");
    assert!(
        none.message_list.is_empty(),
        "carol sees only her own conversations"
    );
}

/// Set in the child process of [`acknowledged_history_survives_a_killed_server`]: the
/// data directory its server keeps the history in.
const CHILD_DIR: &str = "SWITCHBOARD_HISTORY_CHILD_DIR";

/// The child's part: a server with history on `dir`, its address printed as
/// `listening ADDR`, serving until it is killed.
async fn serve_until_killed(dir: PathBuf) {
    // Never removed here: the parent reads the directory after the kill.
    let dir = std::mem::ManuallyDrop::new(DataDir(dir));
    let server = server_with_history(&dir).await;
    println!("listening {}", server.addr);
    std::future::pending::<()>().await;
}

/// A real restart, not an in-process reopen: the server runs in a child process, 50
/// messages are published with `storeInHistory` and acknowledged, the child is killed
/// with SIGKILL (no shutdown, no close of the store), and a new server on the same
/// directory returns every acknowledged message (R160).
#[tokio::test]
async fn acknowledged_history_survives_a_killed_server() {
    use std::io::BufRead;
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        serve_until_killed(dir.into()).await;
        return;
    }
    let dir = DataDir::new("killed");
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "acknowledged_history_survives_a_killed_server",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_DIR, &dir.0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().expect("child stdout");
    let addr = tokio::task::spawn_blocking(move || {
        let lines = std::io::BufReader::new(stdout).lines();
        lines
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("listening ").map(str::to_string))
    });
    let addr = tokio::time::timeout(STEP * 2, addr)
        .await
        .expect("the child server starts in time")
        .expect("reader")
        .expect("the child prints its address");
    let mut config = ClientConfig::new(format!("ws://{addr}"));
    config.request_timeout = STEP;
    config.login_timeout = STEP;
    let alice = login_with("alice", config).await;
    for i in 0..50 {
        alice
            .publish("durable", format!("d{i}"), stored())
            .await
            .expect("publish acknowledged");
    }
    child.kill().expect("SIGKILL the server");
    child.wait().expect("reap the server");
    drop(alice);

    let server = eventually_restart(&dir).await;
    let alice = server.login("alice").await;
    let page = alice
        .history()
        .get_messages(
            "durable",
            ChannelType::Message,
            GetHistoryMessageOptions::default(),
        )
        .await
        .expect("getMessages");
    let texts: Vec<String> = page.message_list.iter().map(|m| text(&m.message)).collect();
    let want: Vec<String> = (0..50).rev().map(|i| format!("d{i}")).collect();
    assert_eq!(
        texts, want,
        "every acknowledged write is there after the kill"
    );
}

/// Opens a new server on `dir`, retrying while the old store still holds the file.
async fn eventually_restart(dir: &DataDir) -> TestServer {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match SqliteHistory::open(&dir.0, HistoryRetention::default()) {
            Ok(h) => {
                let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
                return TestServer::with_parts(
                    Server::new(base_config(), broker).with_history(Arc::new(h)),
                )
                .await;
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot reopen the history: {e}"),
        }
    }
}
