//! Smoke runs of every `switchboard bench` scenario against the in-process server, as
//! a user would run them: tiny sizes, 1–2 s each; exit status 0 and a final JSON line
//! with the scenario's keys and nothing missing or out of order.

use serde_json::Value;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// Runs `switchboard bench ARGS` and returns its last stdout line as JSON.
fn bench(args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .env("SWITCHBOARD_LOG", "warn")
        .env_remove("SWITCHBOARD_URL")
        .output()
        .expect("run switchboard bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench {args:?} failed: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().expect("some output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

fn has_keys(v: &Value, keys: &[&str]) {
    for k in keys {
        assert!(v.get(k).is_some(), "missing key {k} in {v}");
    }
}

fn zero(v: &Value, keys: &[&str]) {
    for k in keys {
        assert_eq!(v[k], 0, "{k} in {v}");
    }
}

#[test]
fn fanout_sdk_and_raw() {
    // The raw publisher paces itself by the window or by the rate without waiting for
    // replies; both paces must lose nothing.
    for (raw, pace) in [(false, "--window"), (true, "--window"), (true, "--rate")] {
        let value = if pace == "--window" { "4" } else { "50" };
        let mut args = vec![
            "fanout",
            "--subscribers",
            "10",
            pace,
            value,
            "--duration",
            "1",
        ];
        if raw {
            args.push("--raw");
        }
        let v = bench(&args);
        assert_eq!(v["scenario"], "fanout");
        assert_eq!(v["raw"], raw);
        has_keys(&v, &["deliveries", "deliveries_per_s", "latency_ms", "cpu"]);
        zero(&v, &["missing", "out_of_order"]);
        assert!(v["deliveries"].as_u64().unwrap_or(0) > 0, "{v}");
        if pace == "--rate" {
            // 50/s for 1 s to 10 subscribers: about 500 deliveries, never 10× more.
            let d = v["deliveries"].as_u64().unwrap_or(0);
            assert!((100..=1000).contains(&d), "rate not kept: {v}");
        }
    }
}

/// Without --window or --rate, fanout runs closed loop with the window its help names.
#[test]
fn fanout_defaults_to_a_window() {
    let v = bench(&["fanout", "--subscribers", "2", "--duration", "1"]);
    assert_eq!(v["window"], 32);
    assert_eq!(v["rate"], Value::Null);
    zero(&v, &["missing", "out_of_order"]);
    assert!(v["deliveries"].as_u64().unwrap_or(0) > 0, "{v}");
}

#[test]
fn p2p_raw_and_sdk() {
    for raw in [true, false] {
        let mut args = vec!["p2p", "--pairs", "3", "--window", "2", "--duration", "1"];
        if raw {
            args.push("--raw");
        }
        let v = bench(&args);
        assert_eq!(v["scenario"], "p2p");
        has_keys(&v, &["messages_per_s", "round_trips_per_s", "rtt_ms"]);
        zero(&v, &["missing", "out_of_order", "errors"]);
        assert!(v["messages"].as_u64().unwrap_or(0) > 0, "{v}");
    }
}

#[test]
fn channels_raw() {
    let v = bench(&[
        "channels",
        "--channels",
        "4",
        "--subscribers-per-channel",
        "3",
        "--rate",
        "20",
        "--duration",
        "1",
        "--raw",
    ]);
    assert_eq!(v["scenario"], "channels");
    has_keys(&v, &["deliveries", "deliveries_per_s", "latency_ms"]);
    zero(&v, &["missing", "out_of_order", "errors"]);
    assert!(v["deliveries"].as_u64().unwrap_or(0) > 0, "{v}");
}

#[test]
fn connections_in_process() {
    let v = bench(&["connections", "--count", "50", "--duration", "1"]);
    assert_eq!(v["scenario"], "connections");
    has_keys(
        &v,
        &[
            "logins_per_s",
            "rss_per_connection_bytes",
            "login_latency_ms",
        ],
    );
    assert_eq!(v["opened"], 50, "{v}");
    zero(&v, &["dropped", "errors"]);
}

#[test]
fn topic_followers_get_exactly_their_publishers() {
    let v = bench(&[
        "topic",
        "--publishers",
        "4",
        "--subscribers",
        "6",
        "--follow",
        "2",
        "--rate",
        "20",
        "--duration",
        "1",
    ]);
    assert_eq!(v["scenario"], "topic");
    has_keys(&v, &["deliveries", "deliveries_per_s", "latency_ms"]);
    // errors counts deliveries from publishers a subscriber does not follow (R103).
    zero(&v, &["missing", "out_of_order", "errors"]);
    assert!(v["deliveries"].as_u64().unwrap_or(0) > 0, "{v}");
}

#[test]
fn presence_churn_in_interval_mode_is_aggregated() {
    let v = bench(&[
        "presence",
        "--members",
        "12",
        "--churners",
        "2",
        "--churn",
        "20",
        "--threshold",
        "8",
        "--interval-ms",
        "300",
        "--debounce-ms",
        "100",
        "--duration",
        "2",
    ]);
    assert_eq!(v["scenario"], "presence");
    zero(&v, &["errors"]);
    // 12 members above a threshold of 8: changes arrive in INTERVAL events only (R121),
    // each member getting at most one per interval while carrying every change.
    let events = v["events"].as_u64().unwrap_or(0);
    assert!(events > 0, "{v}");
    assert_eq!(v["interval_events"].as_u64(), Some(events), "{v}");
    assert!(v["changes_carried"].as_u64().unwrap_or(0) > events, "{v}");
}

#[test]
fn storage_writes_commit_in_groups_and_locks_hand_off() {
    let v = bench(&[
        "storage",
        "--writers",
        "4",
        "--window",
        "4",
        "--lockers",
        "3",
        "--duration",
        "1",
    ]);
    assert_eq!(v["scenario"], "storage");
    zero(&v, &["errors"]);
    let writes = v["writes"].as_u64().unwrap_or(0);
    assert!(writes > 0, "{v}");
    assert!(v["lock_pairs"].as_u64().unwrap_or(0) > 0, "{v}");
    // Every acknowledged write was committed, never more commits than writes.
    let commits = v["commits"].as_u64().unwrap_or(u64::MAX);
    assert!(commits > 0 && commits <= writes + 3, "{v}");
}

#[test]
fn slow_consumer_is_disconnected_and_readers_get_everything() {
    // 20 MB past a subscriber that never reads: far over its 4 MiB outbound queue and
    // the loopback socket buffers.
    let v = bench(&[
        "slow-consumer",
        "--subscribers",
        "2",
        "--messages",
        "5000",
        "--size",
        "4096",
        "--rate",
        "5000",
    ]);
    assert_eq!(v["scenario"], "slow-consumer");
    has_keys(&v, &["reader_latency_ms", "rss_peak_kib"]);
    assert_eq!(v["stalled_disconnected"], true, "{v}");
    assert_eq!(v["min_received_per_reader"], 5000, "{v}");
    zero(&v, &["out_of_order", "refused_publishes"]);
}

#[test]
fn publish_flood_is_acknowledged_and_the_server_still_serves() {
    let v = bench(&[
        "publish-flood",
        "--publishers",
        "2",
        "--channels",
        "50",
        "--size",
        "1024",
        "--duration",
        "1",
    ]);
    assert_eq!(v["scenario"], "publish-flood");
    has_keys(&v, &["rss_peak_kib"]);
    assert!(v["acked"].as_u64() > Some(0), "{v}");
    assert_eq!(v["closed_early"], 0, "{v}");
    assert_eq!(v["canary_served"], true, "{v}");
}

#[test]
fn connection_flood_holds_every_connection_under_the_limit() {
    let v = bench(&["connection-flood", "--count", "50", "--concurrency", "10"]);
    assert_eq!(v["scenario"], "connection-flood");
    assert_eq!(v["opened"], 50, "{v}");
    assert_eq!(v["dropped_while_held"], 0, "{v}");
    assert_eq!(v["canary_after"], true, "{v}");
    assert_eq!(v["new_login_after"], true, "{v}");
}
