//! Issue 19, "the first hour": what a newcomer trips over on the command line, each
//! checked against real processes — a config file's apps validated like `--app`, one
//! server per data dir, plain logs in a pipe, a clear "no token", bad ids named by
//! their flag, a kick explained, `history` paging, `presence state get --of`, the
//! top-level help, and a `sub` that outlives its token (renewToken, api.md §3.7).

mod common;

use common::{Proc, Served, WAIT, field, json_lines, run, run_bounded};
use serde_json::Value;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchboard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn config_file_apps_are_validated_at_start_like_app_flags() {
    let dir = temp_dir("bad-config");
    let data = dir.join("data").to_string_lossy().to_string();
    for (app, wanted) in [
        (
            "id = \"0123456789abcdef0123456789abcdef\"\ncertificate = \"abc\"",
            "the certificate must be 32 hex characters",
        ),
        ("id = \"not an id!\"", "[[apps]] #1"),
    ] {
        let file = dir.join("switchboard.toml");
        std::fs::write(
            &file,
            format!("listen = \"127.0.0.1:0\"\ndata_dir = \"{data}\"\n[[apps]]\n{app}\n"),
        )
        .expect("write config");
        let (status, stderr) = run_bounded(&["serve", "--config", &file.to_string_lossy()], &[]);
        assert!(
            !status.success(),
            "a bad [[apps]] entry must refuse to start"
        );
        assert!(stderr.contains(wanted), "{stderr}");
        assert!(
            stderr.contains("switchboard.toml"),
            "names the file: {stderr}"
        );
    }
    // The same certificate on the flag is refused the same way.
    let (status, stderr) = run_bounded(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--app",
            "0123456789abcdef0123456789abcdef:abc",
        ],
        &[],
    );
    assert!(!status.success());
    assert!(
        stderr.contains("the certificate must be 32 hex characters"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_server_on_the_same_data_dir_refuses_to_start() {
    let first = Served::start("locked", &[]);
    let data = first.dir.to_string_lossy().to_string();
    let (status, stderr) = run_bounded(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", &data],
        &[],
    );
    assert!(!status.success(), "the second server must not start");
    assert!(stderr.contains("is in use by another"), "{stderr}");
    assert!(stderr.contains("--data-dir"), "{stderr}");
    // The first one still serves.
    let env = first.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let t = first.token("carol", &[]);
    let out = run(
        &["pub", "--user-id", "carol", "--token", &t, "room", "x"],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Once it is gone, the lock goes with it (even without a clean exit: SIGKILL).
    let mut first = first;
    first.proc.child.kill().expect("kill");
    first.proc.child.wait().expect("reap");
    let again = Proc::spawn(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", &data],
        &[],
    );
    again.expect("listening on", |l| field(l, "listening on"));
}

#[test]
fn logs_written_to_a_pipe_have_no_colour_codes() {
    // An app without a certificate logs a warning, then the bad address ends the run.
    let (status, stderr) = run_bounded(
        &[
            "serve",
            "--listen",
            "256.0.0.1:0",
            "--data-dir",
            &temp_dir("ansi").to_string_lossy(),
            "--app",
            "0123456789abcdef0123456789abcdef",
        ],
        &[],
    );
    assert!(!status.success());
    assert!(stderr.contains("WARN"), "the warning is logged: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no ANSI escapes in a pipe: {stderr:?}"
    );
}

#[test]
fn client_errors_say_what_is_wrong_in_the_users_terms() {
    let s = Served::start("errors", &[]);
    let env = s.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // No token, or an empty one: "no token" comes first, before the server's reason.
    for extra in [&[][..], &["--token", ""][..]] {
        let mut args = vec!["pub", "--user-id", "carol"];
        args.extend_from_slice(extra);
        args.extend(["room", "x"]);
        let out = run(&args, &env);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: no token"), "{err}");
        assert!(err.contains("-10005"), "{err}");
    }
    // A bad app id is named by its flag, not by an internal operation.
    let out = run(
        &[
            "pub",
            "--app-id",
            "not-an-app-id",
            "--user-id",
            "carol",
            "room",
            "x",
        ],
        &env,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid --app-id \"not-an-app-id\""), "{err}");
    assert!(err.contains("-10003"), "{err}");
    assert!(!err.contains("new failed"), "{err}");
    let out = run(&["pub", "--user-id", "_bad", "room", "x"], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid --user-id \"_bad\""), "{err}");

    // history: --count is 1-100, and --all pages add up.
    for bad in ["0", "101"] {
        let out = run(
            &["history", "--user-id", "carol", "--count", bad, "log"],
            &env,
        );
        assert!(!out.status.success(), "--count {bad} must be refused");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("1..=100"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tc = s.token("carol", &[]);
    for text in ["one", "two", "three"] {
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
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let lines = json_lines(&run(
        &[
            "history",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "--count",
            "2",
            "--all",
            "log",
        ],
        &env,
    ));
    let texts: Vec<&str> = lines
        .iter()
        .filter(|v| v["event"] == "historyMessage")
        .filter_map(|v| v["message"].as_str())
        .collect();
    assert_eq!(texts, ["three", "two", "one"]);
    let pages: Vec<u64> = lines
        .iter()
        .filter(|v| v["event"] == "historyPage")
        .filter_map(|v| v["count"].as_u64())
        .collect();
    assert_eq!(
        pages.iter().sum::<u64>(),
        3,
        "page counts add up: {lines:?}"
    );
    assert!(pages.iter().all(|&n| n <= 2), "{pages:?}");
    let end = lines.last().expect("lines");
    assert_eq!(end["event"], "historyEnd");
    assert_eq!(end["count"], 3);
    assert_eq!(end["pages"], pages.len());
    // The environment sets --count too (every flag has its variable).
    let mut with_count = env.clone();
    with_count.push(("SWITCHBOARD_COUNT", "1"));
    let lines = json_lines(&run(
        &["history", "--user-id", "carol", "--token", &tc, "log"],
        &with_count,
    ));
    assert_eq!(lines[0]["message"], "three");
    assert_eq!(lines[1]["event"], "historyPage");
    assert_eq!(lines[1]["count"], 1);
}

#[test]
fn a_command_kicked_by_a_login_of_the_same_user_says_so() {
    let s = Served::start("kicked", &[]);
    let env = s.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let td = s.token("dave", &[]);
    let out = run(
        &[
            "lock",
            "set",
            "--user-id",
            "dave",
            "--token",
            &td,
            "room",
            "referee",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = s.dir.join("holder.log");
    let mut holder = Proc::spawn_logged(
        &[
            "lock",
            "acquire",
            "--user-id",
            "dave",
            "--token",
            &td,
            "room",
            "referee",
            "--hold",
        ],
        &env,
        &log,
    );
    holder.expect_json("the lock", |v| v["event"] == "acquireLockResponse");
    let sub_log = s.dir.join("sub.log");
    let mut sub = Proc::spawn_logged(
        &[
            "sub",
            "--user-id",
            "erin",
            "--token",
            &s.token("erin", &[]),
            "room",
        ],
        &env,
        &sub_log,
    );
    sub.expect_json("the subscription", |v| v["event"] == "subscribeResponse");

    // dave logs in elsewhere: the holder is kicked and says why.
    let out = run(
        &["pub", "--user-id", "dave", "--token", &td, "room", "hi"],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!holder.wait_exit().success());
    let err = std::fs::read_to_string(&log).expect("holder log");
    assert!(err.contains("kicked"), "{err}");
    assert!(err.contains("SAME_UID_LOGIN"), "{err}");

    // So does `sub`.
    let out = run(
        &[
            "pub",
            "--user-id",
            "erin",
            "--token",
            &s.token("erin", &[]),
            "room",
            "x",
        ],
        &env,
    );
    assert!(out.status.success());
    sub.expect_json("FAILED", |v| {
        v["event"] == "linkState" && v["currentState"] == "FAILED"
    });
    assert!(!sub.wait_exit().success());
    let err = std::fs::read_to_string(&sub_log).expect("sub log");
    assert!(
        err.contains("kicked") && err.contains("SAME_UID_LOGIN"),
        "{err}"
    );
}

#[test]
fn presence_state_get_takes_of_like_storage_user_get() {
    let s = Served::start("state-of", &[]);
    let env = s.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let alice = Proc::spawn(
        &[
            "sub",
            "--user-id",
            "alice",
            "--token",
            &s.token("alice", &[]),
            "room",
            "--state",
            "mood=ok",
        ],
        &env,
    );
    alice.expect_json("the state", |v| v["event"] == "setStateResponse");
    let tc = s.token("carol", &[]);
    for args in [
        vec!["presence", "state", "get", "--of", "alice", "room"],
        vec!["presence", "state", "get", "alice", "room"],
    ] {
        let mut args = args;
        args.extend(["--user-id", "carol", "--token", &tc]);
        let out = run(&args, &env);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = json_lines(&out);
        assert_eq!(r[0]["userId"], "alice", "{args:?}");
        assert_eq!(r[0]["states"]["mood"], "ok", "{args:?}");
    }
    let out = run(
        &[
            "presence",
            "state",
            "get",
            "--of",
            "alice",
            "bob",
            "room",
            "--user-id",
            "carol",
            "--token",
            &tc,
        ],
        &env,
    );
    assert!(!out.status.success(), "a user given twice is refused");
}

#[test]
fn top_level_help_lists_every_command_and_the_environment_rule() {
    let out = run(&["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "serve", "token", "pub", "sub", "history", "presence", "storage", "lock", "bench",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(cmd)),
            "{cmd} missing from --help:\n{help}"
        );
    }
    assert!(help.contains("SWITCHBOARD_USER_ID"), "{help}");
    assert!(help.contains("README"), "{help}");
    let out = run(&["bench", "fanout", "--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("default: 32 when --rate is not"), "{help}");
}

/// A `sub` keeps receiving past its first token's expiry: with --app-cert it mints the
/// new token itself, with --token-command it runs the command (here `switchboard token
/// "$SWITCHBOARD_TOKEN_FOR"`), and renews at each tokenPrivilegeWillExpire.
#[test]
fn sub_renews_its_token_and_outlives_it() {
    const LIFETIME: u64 = 5;
    let s = Served::start("renew", &["--token-will-expire-lead-secs", "2"]);
    let env = s.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let short = ["--expire", "5"];
    let rtc = |user: &str, extra: &[&str]| {
        let mut args = vec!["token", "rtc", "--channel", "match", "--user-id", user];
        args.extend_from_slice(extra);
        let out = run(&args, &env);
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string()
    };
    let started = std::time::Instant::now();
    // alice is also in stream channel "match" on a short RTC token, following carol.
    let alice = Proc::spawn(
        &[
            "sub",
            "--user-id",
            "alice",
            "--token",
            &s.token("alice", &short),
            "--renew-expire",
            "5",
            "room",
            "--stream",
            "match",
            "--rtc-token",
            &rtc("alice", &short),
            "--topic",
            "moves",
            "--from",
            "carol",
        ],
        &env,
    );
    let command = format!(
        "'{}' token \"$SWITCHBOARD_TOKEN_FOR\" --expire 5",
        common::BIN
    );
    let bob = Proc::spawn(
        &[
            "sub",
            "--user-id",
            "bob",
            "--token",
            &s.token("bob", &short),
            "--token-command",
            &command,
            "room",
        ],
        &env,
    );
    for p in [&alice, &bob] {
        p.expect_json("the subscription", |v| v["event"] == "subscribeResponse");
    }
    let tc = s.token("carol", &[]);
    let failed = |v: &Value| v["event"] == "linkState" && v["currentState"] == "FAILED";
    // Publish until well past the first tokens' expiry (and the renewed ones' too).
    let mut n = 0;
    while started.elapsed() < std::time::Duration::from_secs(2 * LIFETIME + 2) {
        n += 1;
        // A pace (five a second, well under R67's 60/s), not a wait for a state.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let text = format!("tick {n}");
        let out = run(
            &["pub", "--user-id", "carol", "--token", &tc, "room", &text],
            &env,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for p in [&alice, &bob] {
            let got = p.expect_json("the tick (or a failure)", |v| {
                v["message"] == text.as_str() || failed(v)
            });
            assert!(!failed(&got), "the sub's link failed: {got}");
        }
    }
    assert!(started.elapsed() < WAIT * 4);
    for p in [&alice, &bob] {
        let r = p.expect_json("a renewal", |v| v["event"] == "renewTokenResponse");
        assert_eq!(r["channelName"], "");
    }
    // The stream channel's RTC token was renewed too: alice still gets topic messages.
    alice.expect_json("the RTC renewal", |v| {
        v["event"] == "renewTokenResponse" && v["channelName"] == "match"
    });
    let out = run(
        &[
            "pub",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "--stream",
            "match",
            "--topic",
            "moves",
            "--rtc-token",
            &rtc("carol", &[]),
            "late move",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = alice.expect_json("the topic message (or a failure)", |v| {
        v["message"] == "late move" || failed(v)
    });
    assert_eq!(m["topicName"], "moves", "{m}");
}
