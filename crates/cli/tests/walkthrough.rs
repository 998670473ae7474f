//! The README's walk-through, run as a user would: the `switchboard` binary serves on a
//! free port with a fresh data dir (creating its app), `token` mints tokens, two `sub`
//! processes receive what `pub` sends, and failures exit non-zero with code and reason.

mod common;

use common::{Proc, field, run};
use serde_json::Value;
use std::process::Command;

#[test]
fn readme_walkthrough_two_subscribers_receive_what_pub_sends() {
    let dir = std::env::temp_dir().join(format!("switchboard-walkthrough-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.to_string_lossy().to_string();
    let server = Proc::spawn(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", &data],
        &[],
    );
    let app_id = server.expect("the app id", |l| field(l, "app id:"));
    let cert = server.expect("the certificate", |l| field(l, "certificate:"));
    let url = server.expect("listening on", |l| field(l, "listening on"));
    assert!(
        dir.join("app.toml").exists(),
        "the first-start app is stored in the data dir"
    );
    let env = [
        ("SWITCHBOARD_URL", url.as_str()),
        ("SWITCHBOARD_APP_ID", app_id.as_str()),
        ("SWITCHBOARD_APP_CERT", cert.as_str()),
    ];
    let token = |user: &str| {
        let out = run(&["token", "rtm", "--user-id", user], &env);
        assert!(out.status.success(), "token rtm");
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string()
    };
    let (ta, tb, tc) = (token("alice"), token("bob"), token("carol"));

    let inspect = run(&["token", "inspect", &ta], &env);
    let v: Value = serde_json::from_slice(&inspect.stdout).expect("inspect prints JSON");
    assert_eq!(v["appId"], app_id.as_str());
    assert_eq!(v["signatureValid"], true);
    assert_eq!(v["services"][0]["userId"], "alice");

    let alice = Proc::spawn(&["sub", "--user-id", "alice", "--token", &ta, "room"], &env);
    let bob = Proc::spawn(&["sub", "--user-id", "bob", "--token", &tb, "room"], &env);
    for s in [&alice, &bob] {
        s.expect_json("CONNECTED", |v| {
            v["event"] == "linkState" && v["currentState"] == "CONNECTED"
        });
        s.expect_json("the subscription", |v| v["event"] == "subscribeResponse");
    }

    let out = run(
        &[
            "pub",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "room",
            "hello room",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).expect("pub prints its reply as JSON");
    assert_eq!(reply["channelName"], "room");
    for s in [&alice, &bob] {
        let m = s.expect_json("the channel message", |v| v["event"] == "message");
        assert_eq!(m["channelType"], "MESSAGE");
        assert_eq!(m["channelName"], "room");
        assert_eq!(m["message"], "hello room");
        assert_eq!(m["messageType"], "STRING");
        assert_eq!(m["publisher"], "carol");
    }

    // Binary from a base64 argument, to bob alone.
    let out = run(
        &[
            "pub",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "--to-user",
            "--binary",
            "--custom-type",
            "greet",
            "bob",
            "AAEC/w==",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "pub --to-user: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = bob.expect_json("the user message", |v| v["event"] == "message");
    assert_eq!(m["channelType"], "USER");
    assert_eq!(m["channelName"], "carol");
    assert_eq!(m["messageType"], "BINARY");
    assert_eq!(m["message"], "AAEC/w==");
    assert_eq!(m["customType"], "greet");

    // Stored messages come back from `history`, newest first.
    for text in ["first", "second"] {
        let out = run(
            &[
                "pub",
                "--user-id",
                "carol",
                "--token",
                &tc,
                "--store-in-history",
                "log",
                text,
            ],
            &env,
        );
        assert!(
            out.status.success(),
            "pub --store-in-history: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = run(
        &[
            "history",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "--all",
            "log",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "history: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("history prints JSON lines"))
        .collect();
    let texts: Vec<&str> = lines
        .iter()
        .filter(|v| v["event"] == "historyMessage")
        .filter_map(|v| v["message"].as_str())
        .collect();
    assert_eq!(texts, ["second", "first"]);

    // Without a token the app refuses, and the CLI says so plainly.
    let out = run(&["pub", "--user-id", "carol", "room", "x"], &env);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("-10005"), "{err}");
    assert!(err.contains("requires a token"), "{err}");

    // To an offline user: -11033, non-zero exit.
    let out = run(
        &[
            "pub",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "--to-user",
            "nobody",
            "x",
        ],
        &env,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("-11033"));

    // A second start reuses the stored app.
    drop(server);
    let again = Proc::spawn(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", &data],
        &[],
    );
    assert_eq!(again.expect("the app id", |l| field(l, "app id:")), app_id);
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_takes_flags_over_env_over_config_file() {
    let dir = std::env::temp_dir().join(format!("switchboard-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("switchboard.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1\"\n[[apps]]\nid = \"0123456789abcdef0123456789abcdef\"\n",
    )
    .expect("write config");
    let cfg = file.to_string_lossy().to_string();
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:1\"\ndata_dir = \"{}\"\n[[apps]]\nid = \"0123456789abcdef0123456789abcdef\"\n",
            dir.join("data").display()
        ),
    )
    .expect("write config");
    // env overrides the file's unusable port 1; the app comes from the file (no cert).
    let server = Proc::spawn(
        &["serve", "--config", &cfg],
        &[("SWITCHBOARD_LISTEN", "127.0.0.1:0")],
    );
    let url = server.expect("listening on", |l| field(l, "listening on"));
    let env = [
        ("SWITCHBOARD_URL", url.as_str()),
        ("SWITCHBOARD_APP_ID", "0123456789abcdef0123456789abcdef"),
    ];
    let out = run(&["pub", "--user-id", "u1", "room", "no token needed"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(server);
    // A flag beats the env.
    let server = Proc::spawn(
        &["serve", "--config", &cfg, "--listen", "127.0.0.1:0"],
        &[("SWITCHBOARD_LISTEN", "127.0.0.1:1")],
    );
    server.expect("listening on", |l| field(l, "listening on"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue #4 on the command line: `sub --stream --topic --from` follows a publisher that
/// `pub --stream --topic` then publishes as; topic events and the topic message are
/// printed as JSON lines (R100, R103, R109).
#[test]
fn stream_channel_topic_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("switchboard-stream-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.to_string_lossy().to_string();
    let server = Proc::spawn(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", &data],
        &[],
    );
    let app_id = server.expect("the app id", |l| field(l, "app id:"));
    let cert = server.expect("the certificate", |l| field(l, "certificate:"));
    let url = server.expect("listening on", |l| field(l, "listening on"));
    let env = [
        ("SWITCHBOARD_URL", url.as_str()),
        ("SWITCHBOARD_APP_ID", app_id.as_str()),
        ("SWITCHBOARD_APP_CERT", cert.as_str()),
    ];
    let token = |kind: &str, user: &str| {
        let mut args = vec!["token", kind, "--user-id", user];
        if kind == "rtc" {
            args.extend(["--channel", "match"]);
        }
        let out = run(&args, &env);
        assert!(out.status.success(), "token {kind}");
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string()
    };
    let (ra, rc) = (token("rtm", "alice"), token("rtm", "carol"));
    let (ca, cc) = (token("rtc", "alice"), token("rtc", "carol"));
    let alice = Proc::spawn(
        &[
            "sub",
            "--user-id",
            "alice",
            "--token",
            &ra,
            "--stream",
            "match",
            "--topic",
            "moves",
            "--from",
            "carol",
            "--rtc-token",
            &ca,
        ],
        &env,
    );
    alice.expect_json("the join", |v| v["event"] == "joinResponse");
    let snapshot = alice.expect_json("the topic snapshot", |v| {
        v["event"] == "topic" && v["eventType"] == "SNAPSHOT"
    });
    assert_eq!(snapshot["channelName"], "match");
    let sub = alice.expect_json("the topic subscription", |v| {
        v["event"] == "subscribeTopicResponse"
    });
    assert_eq!(sub["succeedUsers"][0], "carol", "pre-subscribed (R109)");

    // Without the RTC token the join is refused with a clear error.
    let out = run(
        &[
            "pub",
            "--user-id",
            "carol",
            "--token",
            &rc,
            "--stream",
            "match",
            "--topic",
            "moves",
            "e4",
        ],
        &env,
    );
    assert!(!out.status.success(), "join without an RTC token");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("-10005"), "{err}");

    let out = run(
        &[
            "pub",
            "--user-id",
            "carol",
            "--token",
            &rc,
            "--stream",
            "match",
            "--topic",
            "moves",
            "--rtc-token",
            &cc,
            "e2e4",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "pub --stream: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).expect("reply JSON");
    assert_eq!(reply["event"], "publishTopicMessageResponse");
    assert_eq!(reply["topicName"], "moves");
    let joined = alice.expect_json("carol's REMOTE_JOIN", |v| {
        v["event"] == "topic" && v["eventType"] == "REMOTE_JOIN"
    });
    assert_eq!(joined["publisher"], "carol");
    assert_eq!(joined["topicInfos"][0]["topicName"], "moves");
    let m = alice.expect_json("the topic message", |v| v["event"] == "message");
    assert_eq!(m["channelType"], "STREAM");
    assert_eq!(m["channelName"], "match");
    assert_eq!(m["topicName"], "moves");
    assert_eq!(m["publisher"], "carol");
    assert_eq!(m["message"], "e2e4");
    let left = alice.expect_json("carol's REMOTE_LEAVE", |v| {
        v["event"] == "topic" && v["eventType"] == "REMOTE_LEAVE"
    });
    assert_eq!(left["publisher"], "carol");
    drop(alice);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Presence on the command line (api.md §5, §9.3): `sub --state` enters a message
/// channel and a stream channel with state, `sub --be-quiet` and `--no-presence`
/// change what is seen and received (R84–R87, R116), presence events are printed as
/// JSON lines, and `presence who|where|state` print their replies.
#[test]
fn presence_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("switchboard-presence-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.to_string_lossy().to_string();
    let server = Proc::spawn(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", &data],
        &[],
    );
    let app_id = server.expect("the app id", |l| field(l, "app id:"));
    let cert = server.expect("the certificate", |l| field(l, "certificate:"));
    let url = server.expect("listening on", |l| field(l, "listening on"));
    let env = [
        ("SWITCHBOARD_URL", url.as_str()),
        ("SWITCHBOARD_APP_ID", app_id.as_str()),
        ("SWITCHBOARD_APP_CERT", cert.as_str()),
    ];
    let token = |kind: &str, user: &str| {
        let mut args = vec!["token", kind, "--user-id", user];
        if kind == "rtc" {
            args.extend(["--channel", "arena"]);
        }
        let out = run(&args, &env);
        assert!(out.status.success(), "token {kind}");
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string()
    };
    let (ta, tb, tc, td) = (
        token("rtm", "alice"),
        token("rtm", "bob"),
        token("rtm", "carol"),
        token("rtm", "dave"),
    );
    let ra = token("rtc", "alice");
    let json_lines = |out: &std::process::Output| -> Vec<Value> {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON lines"))
            .collect()
    };

    let alice = Proc::spawn(
        &[
            "sub",
            "--user-id",
            "alice",
            "--token",
            &ta,
            "room",
            "--stream",
            "arena",
            "--rtc-token",
            &ra,
            "--state",
            "seat=1",
            "--state",
            "mood=ok",
        ],
        &env,
    );
    for ty in ["MESSAGE", "STREAM"] {
        alice.expect_json("the state is set", |v| {
            v["event"] == "setStateResponse" && v["channelType"] == ty
        });
    }
    let snapshot = alice.expect_json("alice's SNAPSHOT of room", |v| {
        v["event"] == "presence" && v["eventType"] == "SNAPSHOT" && v["channelType"] == "MESSAGE"
    });
    assert_eq!(snapshot["channelName"], "room");
    assert_eq!(snapshot["snapshot"][0]["userId"], "alice");
    assert!(snapshot["interval"].is_null());

    // bob sits in room quietly: he sees alice with her state, nobody sees him.
    let bob = Proc::spawn(
        &[
            "sub",
            "--user-id",
            "bob",
            "--token",
            &tb,
            "--be-quiet",
            "room",
        ],
        &env,
    );
    let snapshot = bob.expect_json("bob's SNAPSHOT", |v| {
        v["event"] == "presence" && v["eventType"] == "SNAPSHOT"
    });
    let members = snapshot["snapshot"].as_array().expect("members");
    assert_eq!(members.len(), 1, "only alice, not quiet bob: {snapshot}");
    assert_eq!(members[0]["userId"], "alice");
    assert_eq!(members[0]["states"]["seat"], "1");
    assert_eq!(members[0]["states"]["mood"], "ok");
    assert_eq!(members[0]["statesCount"], 2);

    // dave enters without presence events: alice and bob hear of him.
    let dave = Proc::spawn(
        &[
            "sub",
            "--user-id",
            "dave",
            "--token",
            &td,
            "--no-presence",
            "room",
        ],
        &env,
    );
    dave.expect_json("dave's subscription", |v| v["event"] == "subscribeResponse");
    for s in [&alice, &bob] {
        let e = s.expect_json("dave's REMOTE_JOIN", |v| {
            v["event"] == "presence" && v["eventType"] == "REMOTE_JOIN"
        });
        assert_eq!(e["publisher"], "dave");
        assert_eq!(e["channelName"], "room");
        assert_eq!(e["channelType"], "MESSAGE");
        assert!(e["snapshot"].is_null() && e["interval"].is_null());
    }

    let who = json_lines(&run(
        &[
            "presence",
            "who",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "room",
            "--include-state",
            "--all",
        ],
        &env,
    ));
    assert_eq!(who.len(), 1, "one page: {who:?}");
    assert_eq!(who[0]["event"], "whoNowResponse");
    assert_eq!(who[0]["totalOccupancy"], 2, "alice and dave, not bob");
    assert_eq!(who[0]["occupants"][0]["userId"], "alice");
    assert_eq!(who[0]["occupants"][0]["states"]["seat"], "1");
    assert_eq!(who[0]["occupants"][1]["userId"], "dave");
    assert_eq!(who[0]["nextPage"], "");
    let count = json_lines(&run(
        &[
            "presence",
            "who",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "--stream",
            "arena",
            "--no-user-id",
        ],
        &env,
    ));
    assert_eq!(count[0]["totalOccupancy"], 1);
    assert_eq!(count[0]["channelType"], "STREAM");
    assert_eq!(count[0]["occupants"].as_array().map(Vec::len), Some(0));

    let r = json_lines(&run(
        &[
            "presence",
            "where",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "alice",
        ],
        &env,
    ));
    assert_eq!(r[0]["event"], "whereNowResponse");
    assert_eq!(r[0]["totalChannel"], 2);
    let mut channels: Vec<String> = r[0]["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["channelName"].as_str().unwrap_or(""),
                c["channelType"].as_str().unwrap_or("")
            )
        })
        .collect();
    channels.sort();
    assert_eq!(channels, ["arena STREAM", "room MESSAGE"]);
    let r = json_lines(&run(
        &[
            "presence",
            "where",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "bob",
        ],
        &env,
    ));
    assert_eq!(r[0]["totalChannel"], 0, "quiet bob is nowhere (R87)");

    let r = json_lines(&run(
        &[
            "presence",
            "state",
            "get",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "alice",
            "arena",
            "--stream",
        ],
        &env,
    ));
    assert_eq!(r[0]["event"], "getStateResponse");
    assert_eq!(r[0]["userId"], "alice");
    assert_eq!(r[0]["states"]["mood"], "ok");
    assert_eq!(r[0]["statesCount"], 2);
    let out = run(
        &[
            "presence",
            "state",
            "get",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "bob",
            "room",
        ],
        &env,
    );
    assert!(!out.status.success(), "quiet bob has no state to read");
    assert!(String::from_utf8_lossy(&out.stderr).contains("-13011"));

    // carol is in no channel: her state is kept as pending only while she is logged in.
    let r = json_lines(&run(
        &[
            "presence",
            "state",
            "set",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "room",
            "k=v=w",
        ],
        &env,
    ));
    assert_eq!(r[0]["event"], "setStateResponse");
    assert_eq!(r[0]["channelName"], "room");
    let r = json_lines(&run(
        &[
            "presence",
            "state",
            "remove",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "room",
            "k",
        ],
        &env,
    ));
    assert_eq!(r[0]["event"], "removeStateResponse");
    let out = run(
        &[
            "presence",
            "state",
            "set",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "room",
            "novalue",
        ],
        &env,
    );
    assert!(!out.status.success(), "KEY=VALUE is required");

    // dave received no presence event at all (--no-presence): by now it would have
    // printed its SNAPSHOT and the others' events.
    let mut dave_lines: Vec<String> = dave.unmatched.borrow().clone();
    while let Ok(l) = dave.lines.try_recv() {
        dave_lines.push(l);
    }
    assert!(
        !dave_lines.iter().any(|l| l.contains("\"presence\"")),
        "no presence events for dave: {dave_lines:?}"
    );
    drop(dave);
    drop(alice);
    drop(bob);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Storage and locks from the command line: `sub --with-metadata --with-lock
/// --user-metadata` prints the SNAPSHOTs and then the UPDATE / SET / ACQUIRED / RELEASED
/// events caused by `storage` and `lock` commands of another user (R147, R148, R157),
/// whose replies are JSON lines; a stale revision fails with −12014 (R138); the metadata
/// survives a restart of the server on the same data dir.
#[test]
fn storage_and_locks_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("switchboard-storage-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.to_string_lossy().to_string();
    let app = "0123456789abcdef0123456789abcdef";
    let serve = || {
        Proc::spawn(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                &data,
                "--app",
                app,
            ],
            &[],
        )
    };
    let server = serve();
    let url = server.expect("listening on", |l| field(l, "listening on"));
    let env = [
        ("SWITCHBOARD_URL", url.as_str()),
        ("SWITCHBOARD_APP_ID", app),
    ];
    let json = |args: &[&str]| -> Value {
        let out = run(args, &env);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        serde_json::from_str(text.lines().last().expect("a reply line")).expect("JSON")
    };

    let alice = Proc::spawn(
        &[
            "sub",
            "--user-id",
            "alice",
            "--with-metadata",
            "--with-lock",
            "--user-metadata",
            "bob",
            "room",
        ],
        &env,
    );
    alice.expect_json("bob's metadata SNAPSHOT", |v| {
        v["event"] == "storage" && v["eventType"] == "SNAPSHOT" && v["storageType"] == "USER"
    });
    alice.expect_json("room's metadata SNAPSHOT", |v| {
        v["event"] == "storage" && v["eventType"] == "SNAPSHOT" && v["storageType"] == "CHANNEL"
    });
    alice.expect_json("room's lock SNAPSHOT", |v| {
        v["event"] == "lock" && v["eventType"] == "SNAPSHOT"
    });

    let set = json(&[
        "storage",
        "channel",
        "set",
        "room",
        "--user-id",
        "bob",
        "color=red",
        "--add-user-id",
    ]);
    assert_eq!(set["event"], "setChannelMetadataResponse");
    assert_eq!(set["majorRevision"], 1);
    let update = alice.expect_json("the UPDATE", |v| {
        v["event"] == "storage" && v["eventType"] == "UPDATE" && v["storageType"] == "CHANNEL"
    });
    assert_eq!(update["publisher"], "bob");
    assert_eq!(update["data"]["metadata"]["color"]["value"], "red");
    assert_eq!(update["data"]["metadata"]["color"]["authorUid"], "bob");

    // A stale revision is refused and changes nothing (R138).
    let out = run(
        &[
            "storage",
            "channel",
            "set",
            "room",
            "--user-id",
            "bob",
            "color=blue",
            "--revision",
            "color=7",
        ],
        &env,
    );
    assert!(!out.status.success(), "stale revision refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-12014"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    json(&["storage", "user", "set", "--user-id", "bob", "mood=happy"]);
    let user = alice.expect_json("bob's UPDATE", |v| {
        v["event"] == "storage" && v["eventType"] == "UPDATE" && v["storageType"] == "USER"
    });
    assert_eq!(user["data"]["metadata"]["mood"]["value"], "happy");

    let set_lock = json(&[
        "lock",
        "set",
        "room",
        "mic",
        "--user-id",
        "bob",
        "--ttl",
        "20",
    ]);
    assert_eq!(set_lock["event"], "setLockResponse");
    json(&["lock", "acquire", "room", "mic", "--user-id", "bob"]);
    let set = alice.expect_json("SET", |v| v["event"] == "lock" && v["eventType"] == "SET");
    assert_eq!(set["ttl"], 20);
    let acquired = alice.expect_json("ACQUIRED", |v| {
        v["event"] == "lock" && v["eventType"] == "ACQUIRED"
    });
    assert_eq!(acquired["owner"], "bob");
    // The command logged out when it ended, which released the lock at once.
    let released = alice.expect_json("RELEASED", |v| {
        v["event"] == "lock" && v["eventType"] == "RELEASED"
    });
    assert_eq!(released["owner"], "");
    drop(alice);

    // The metadata and the lock's definition outlive the server.
    drop(server);
    let server = serve();
    let url = server.expect("listening on", |l| field(l, "listening on"));
    let env = [
        ("SWITCHBOARD_URL", url.as_str()),
        ("SWITCHBOARD_APP_ID", app),
    ];
    let out = run(
        &["storage", "channel", "get", "room", "--user-id", "carol"],
        &env,
    );
    let got: Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .expect("a reply"),
    )
    .expect("JSON");
    assert_eq!(got["metadata"]["color"]["value"], "red", "{got}");
    assert_eq!(got["majorRevision"], 1);
    let out = run(&["lock", "get", "room", "--user-id", "carol"], &env);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("\"mic\""), "{text}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The shell commands of the README's walk-through ("Five minutes with …" up to the
/// next section), in order: comment lines dropped, `\` continuations joined.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("read README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Five minutes"))
        .expect("the walk-through section");
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = line.trim() == "```sh";
            continue;
        }
        let line = line.trim();
        if !in_block || line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(line);
                commands.push(std::mem::take(&mut pending));
            }
        }
    }
    commands
}

/// The README's walk-through, every command as written: run by `bash` in a directory
/// where `./target/release/switchboard` is the binary under test, with only the
/// server's port chosen by the test (SWITCHBOARD_LISTEN / SWITCHBOARD_URL) and the
/// export line's `<app id>` / `<certificate>` filled from the banner. Each command
/// must be the next one the test expects: a command changed, added or moved in the
/// README fails here until this test follows.
#[test]
fn readme_commands_run_as_written() {
    let work = std::env::temp_dir().join(format!("switchboard-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("target/release")).expect("dir");
    std::os::unix::fs::symlink(common::BIN, work.join("target/release/switchboard"))
        .expect("symlink the binary");
    let commands = readme_commands();
    let mut commands = commands.iter();
    let mut next = |want: &str| -> String {
        let got = commands
            .next()
            .unwrap_or_else(|| panic!("README lacks {want:?}"));
        assert_eq!(got, want, "the README's next command changed");
        got.clone()
    };
    let logs = std::cell::Cell::new(0);
    let log = || {
        logs.set(logs.get() + 1);
        work.join(format!("stderr-{}.log", logs.get()))
    };

    let serve = next("./target/release/switchboard serve");
    let server = Proc::spawn_shell(
        &serve,
        &work,
        &[("SWITCHBOARD_LISTEN", "127.0.0.1:0")],
        &log(),
    );
    let app_id = server.expect("the app id", |l| field(l, "app id:"));
    let cert = server.expect("the certificate", |l| field(l, "certificate:"));
    let banner_token = server.expect("the token command", |l| field(l, "make a token:"));
    let url = server.expect("listening on", |l| field(l, "listening on"));
    let endpoint = server.expect("the endpoint", |l| field(l, "websocket:"));
    assert!(endpoint.starts_with(&format!("{url}/v1/ws")), "{endpoint}");
    assert!(work.join("data/app.toml").exists(), "./data is the default");

    // The banner's token command works as printed, from the same directory.
    let out = Command::new("bash")
        .stdin(std::process::Stdio::null())
        .arg("-c")
        .arg(&banner_token)
        .current_dir(&work)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{banner_token}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("007"));

    let export = next("export SWITCHBOARD_APP_ID=<app id> SWITCHBOARD_APP_CERT=<certificate>")
        .replace("<app id>", &app_id)
        .replace("<certificate>", &cert);
    let alias = next("alias sb=./target/release/switchboard");
    let prelude = format!("shopt -s expand_aliases\n{export}\n{alias}\n");
    let env = [("SWITCHBOARD_URL", url.as_str())];
    let spawn = |cmd: &str| Proc::spawn_shell(&format!("{prelude}{cmd}"), &work, &env, &log());
    let run_ok = |cmd: &str| -> Vec<Value> {
        let out = Command::new("bash")
            .stdin(std::process::Stdio::null())
            .arg("-c")
            .arg(format!("{prelude}{cmd}"))
            .current_dir(&work)
            .env("SWITCHBOARD_URL", &url)
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{cmd}: {e}: {l}")))
            .collect()
    };

    let alice = spawn(&next(
        r#"sb sub --user-id alice --token "$(sb token rtm --user-id alice)" room"#,
    ));
    alice.expect_json("alice's subscription", |v| {
        v["event"] == "subscribeResponse"
    });
    let bob = spawn(&next(
        r#"sb sub --user-id bob --token "$(sb token rtm --user-id bob)" room"#,
    ));
    bob.expect_json("bob's subscription", |v| v["event"] == "subscribeResponse");
    alice.expect_json("bob's REMOTE_JOIN", |v| {
        v["event"] == "presence" && v["eventType"] == "REMOTE_JOIN" && v["publisher"] == "bob"
    });

    let r = run_ok(&next(
        r#"sb pub --user-id carol --token "$(sb token rtm --user-id carol)" room "hello room""#,
    ));
    assert_eq!(r[0]["event"], "publishResponse");
    for s in [&alice, &bob] {
        let m = s.expect_json("hello room", |v| v["event"] == "message");
        assert_eq!(m["channelType"], "MESSAGE");
        assert_eq!(m["message"], "hello room");
        assert_eq!(m["publisher"], "carol");
    }
    run_ok(&next(
        r#"sb pub --user-id carol --token "$(sb token rtm --user-id carol)" --to-user bob --custom-type greet "hi bob""#,
    ));
    let m = bob.expect_json("hi bob", |v| v["event"] == "message");
    assert_eq!(m["channelType"], "USER");
    assert_eq!(m["message"], "hi bob");
    assert_eq!(m["customType"], "greet");

    run_ok(&next(
        r#"sb pub --user-id carol --token "$(sb token rtm --user-id carol)" --store-in-history room "kept""#,
    ));
    let h = run_ok(&next(
        r#"sb history --user-id carol --token "$(sb token rtm --user-id carol)" room"#,
    ));
    assert_eq!(h[0]["event"], "historyMessage");
    assert_eq!(h[0]["message"], "kept");
    assert_eq!(h.last().expect("lines")["event"], "historyPage");

    let frank = spawn(&next(
        r#"sb sub --user-id frank --token "$(sb token rtm --user-id frank)" --stream match --topic moves --from carol --rtc-token "$(sb token rtc --channel match --user-id frank)""#,
    ));
    let t = frank.expect_json("frank's topic subscription", |v| {
        v["event"] == "subscribeTopicResponse"
    });
    assert_eq!(t["succeedUsers"][0], "carol");
    run_ok(&next(
        r#"sb pub --user-id carol --token "$(sb token rtm --user-id carol)" --stream match --topic moves --rtc-token "$(sb token rtc --channel match --user-id carol)" "e2e4""#,
    ));
    let m = frank.expect_json("e2e4", |v| v["event"] == "message");
    assert_eq!(m["channelType"], "STREAM");
    assert_eq!(m["topicName"], "moves");
    assert_eq!(m["message"], "e2e4");

    let who = run_ok(&next(
        r#"sb presence who --user-id dave --token "$(sb token rtm --user-id dave)" room --include-state"#,
    ));
    let mut members: Vec<&str> = who[0]["occupants"]
        .as_array()
        .expect("occupants")
        .iter()
        .filter_map(|o| o["userId"].as_str())
        .collect();
    members.sort_unstable();
    assert_eq!(members, ["alice", "bob"]);

    let r = run_ok(&next(
        r#"sb storage channel set --user-id dave --token "$(sb token rtm --user-id dave)" room topic=chess"#,
    ));
    assert_eq!(r[0]["event"], "setChannelMetadataResponse");
    let r = run_ok(&next(
        r#"sb storage channel update --user-id dave --token "$(sb token rtm --user-id dave)" room topic=go --revision topic=1"#,
    ));
    assert_eq!(r[0]["event"], "updateChannelMetadataResponse");
    let r = run_ok(&next(
        r#"sb storage user get --user-id dave --token "$(sb token rtm --user-id dave)" --of alice"#,
    ));
    assert_eq!(r[0]["userId"], "alice");

    run_ok(&next(
        r#"sb lock set --user-id dave --token "$(sb token rtm --user-id dave)" room referee --ttl 30"#,
    ));
    let dave = spawn(&next(
        r#"sb lock acquire --user-id dave --token "$(sb token rtm --user-id dave)" room referee --hold"#,
    ));
    dave.expect_json("the lock", |v| v["event"] == "acquireLockResponse");

    let erin = spawn(&next(
        r#"sb sub --user-id erin --token "$(sb token rtm --user-id erin)" room --with-metadata --with-lock --user-metadata bob"#,
    ));
    let s = erin.expect_json("the metadata snapshot", |v| {
        v["event"] == "storage" && v["eventType"] == "SNAPSHOT" && v["channelName"] == "room"
    });
    assert_eq!(s["data"]["metadata"]["topic"]["value"], "go");
    let l = erin.expect_json("the lock snapshot", |v| {
        v["event"] == "lock" && v["eventType"] == "SNAPSHOT"
    });
    assert_eq!(l["snapshot"][0]["lockName"], "referee");
    assert_eq!(l["snapshot"][0]["owner"], "dave");

    assert_eq!(
        commands.next(),
        None,
        "a README command the test does not run"
    );
    // Every long-running command is still up: nobody was kicked along the way.
    for (name, p) in [
        ("alice", alice),
        ("bob", bob),
        ("frank", frank),
        ("dave", dave),
        ("erin", erin),
    ] {
        let mut p = p;
        assert!(
            p.child.try_wait().expect("try_wait").is_none(),
            "{name}'s command ended"
        );
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&work);
}
