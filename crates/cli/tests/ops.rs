//! Issue 16, operations through `switchboard serve`: JSON logs (`--log-format json`)
//! parse line by line and carry the events' fields; the TLS, origin and webhook flags
//! refuse bad values with a clear reason before the server starts.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn log_format_json_writes_one_parsable_object_a_line() {
    let dir = std::env::temp_dir().join(format!("switchboard-jsonlog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let log = dir.join("serve.log");
    let data = dir.join("data").to_string_lossy().to_string();
    let server = Proc::spawn_logged(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--log-format",
            "json",
        ],
        &[("SWITCHBOARD_LOG", "debug")],
        &log,
    );
    let app_id = server.expect("the app id", |l| field(l, "app id:"));
    let url = server.expect("listening on", |l| field(l, "listening on"));
    // A login with a token of the wrong certificate: the server logs "login failed".
    let wrong = run(
        &[
            "token",
            "rtm",
            "--app-id",
            &app_id,
            "--app-cert",
            "00112233445566778899aabbccddeeff",
            "--user-id",
            "jason",
        ],
        &[],
    );
    let token = String::from_utf8(wrong.stdout).expect("utf8");
    let bad = run(
        &[
            "pub",
            "--user-id",
            "jason",
            "--token",
            token.trim(),
            "room",
            "hi",
        ],
        &[
            ("SWITCHBOARD_URL", url.as_str()),
            ("SWITCHBOARD_APP_ID", app_id.as_str()),
        ],
    );
    assert!(!bad.status.success(), "the wrong token is refused");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = std::time::Instant::now() + WAIT;
    while !read().contains("login failed") {
        assert!(
            std::time::Instant::now() < deadline,
            "the server logged the failed login: {}",
            read()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let text = read();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 2, "{text}");
    for l in &lines {
        assert!(
            l["timestamp"].is_string(),
            "every line has a timestamp: {l}"
        );
        assert!(l["level"].is_string(), "every line has a level: {l}");
    }
    let failed = lines
        .iter()
        .find(|l| l["fields"]["message"] == "login failed")
        .expect("the failed login's line");
    assert_eq!(failed["level"], "INFO");
    assert_eq!(failed["fields"]["user"], "jason");
    assert_eq!(failed["fields"]["app"], app_id.as_str());
    assert!(failed["fields"]["code"].is_i64(), "{failed}");
    assert!(failed["fields"]["reason"].is_string(), "{failed}");
    assert!(!text.contains(token.trim()), "the log never holds a token");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_tls_origin_and_webhook_flags_are_refused_with_a_reason() {
    let dir = std::env::temp_dir().join(format!("switchboard-opsflags-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let data = dir.join("data").to_string_lossy().to_string();
    let base = ["serve", "--listen", "127.0.0.1:0", "--data-dir", &data];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        run_bounded(&args, &[])
    };

    let missing = dir.join("missing.pem").to_string_lossy().to_string();
    let (status, err) = with(&["--tls-cert", &missing, "--tls-key", &missing]);
    assert!(!status.success());
    assert!(err.contains("reading the certificate"), "{err}");

    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let junk = junk.to_string_lossy().to_string();
    let (status, err) = with(&["--tls-cert", &junk, "--tls-key", &junk]);
    assert!(!status.success());
    assert!(err.contains("CERTIFICATE"), "{err}");

    // A certificate without its key: clap names the missing flag.
    let (status, err) = with(&["--tls-cert", &junk]);
    assert!(!status.success());
    assert!(err.contains("--tls-key"), "{err}");

    let (status, err) = with(&["--allowed-origins", "example.com"]);
    assert!(!status.success());
    assert!(err.contains("not an origin"), "{err}");

    let (status, err) = with(&["--webhook-url", "http://127.0.0.1:9/hook"]);
    assert!(!status.success());
    assert!(err.contains("--webhook-secret"), "{err}");

    let (status, err) = with(&[
        "--webhook-url",
        "http://127.0.0.1:9/hook",
        "--webhook-secret",
        "s",
        "--webhook-events",
        "user.online,message.sent",
    ]);
    assert!(!status.success());
    assert!(err.contains("unknown event \"message.sent\""), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
