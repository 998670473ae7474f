//! Issue 16, operations through `switchboard serve`: JSON logs (`--log-format json`)
//! parse line by line and carry the events' fields; the TLS, origin and webhook flags
//! refuse bad values with a clear reason before the server starts; `/readyz` answers
//! 503 while the Redis engine is down; `--tls-cert`/`--tls-key` serve `https://` and
//! `wss://`; the console's node list shows every node sharing a Redis (issue 17).

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
fn bad_tls_origin_webhook_and_ca_flags_are_refused_with_a_reason() {
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

    // An app's own origin list is checked at start like the flag.
    let config = dir.join("origins.toml");
    std::fs::write(
        &config,
        "[[apps]]\nid = \"0123456789abcdef0123456789abcdef\"\nallowed_origins = [\"example.com\"]\n",
    )
    .unwrap();
    let (status, err) = with(&["--config", &config.to_string_lossy()]);
    assert!(!status.success());
    assert!(err.contains("allowed_origins"), "{err}");
    assert!(err.contains("not an origin"), "{err}");

    // A client's CA file (`--ca-cert`) that cannot be read or holds no certificate is
    // named by its flag, before any connection.
    for (file, wanted) in [(&missing, "cannot read it"), (&junk, "no CERTIFICATE")] {
        let (status, err) = run_bounded(
            &[
                "pub",
                "--url",
                "wss://127.0.0.1:9",
                "--app-id",
                "0123456789abcdef0123456789abcdef",
                "--user-id",
                "u",
                "--ca-cert",
                file,
                "room",
                "hi",
            ],
            &[],
        );
        assert!(!status.success());
        assert!(err.contains("--ca-cert"), "{err}");
        assert!(err.contains(wanted), "{err}");
    }

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

    // An app's own webhooks (`[apps.webhooks]`) are checked at start like the flags.
    let app = "[[apps]]\nid = \"0123456789abcdef0123456789abcdef\"\n[apps.webhooks]\n";
    for (body, wanted) in [
        (
            "url = \"http://127.0.0.1:9/hook\"\n",
            "webhooks.url needs webhooks.secret",
        ),
        (
            "url = \"ftp://x\"\nsecret = \"s\"\n",
            "not an http:// or https:// URL",
        ),
        (
            "events = [\"message.sent\"]\n",
            "unknown event \"message.sent\"",
        ),
        ("debounce = 5\n", "unknown field"),
    ] {
        let config = dir.join("webhooks.toml");
        std::fs::write(&config, format!("{app}{body}")).unwrap();
        let (status, err) = with(&["--config", &config.to_string_lossy()]);
        assert!(!status.success(), "{body}");
        assert!(err.contains(wanted), "{body}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A `redis-server` on `port` without persistence; `None` when it did not start.
fn redis_on(port: u16, dir: &std::path::Path) -> Option<std::process::Child> {
    let mut child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-server (apt-get install redis-server)");
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return None;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(child);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A `redis-server` on a free port (a few tries: another process may take the port
/// between [`free_port`] and the bind): the child and its port.
fn redis_on_a_free_port(dir: &std::path::Path) -> (std::process::Child, u16) {
    (0..5)
        .find_map(|_| {
            let port = free_port();
            redis_on(port, dir).map(|c| (c, port))
        })
        .expect("redis-server starts")
}

/// `GET path` over plain HTTP/1.1: (status, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    http_get_with(addr, path, "")
}

/// [`http_get`] with extra header lines (each ending in `\r\n`).
fn http_get_with(addr: &str, path: &str, headers: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
    (status, body.to_string())
}

/// Polls `/readyz` until it answers `want`; returns the last body.
fn readyz_becomes(http: &str, want: u16) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(http, "/readyz");
        if status == want {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz did not become {want}: {status} {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `/readyz` follows the engine: 200 while Redis answers, 503 naming the broker once
/// redis-server is stopped (while `/healthz` stays 200), 200 again once it is back.
#[test]
fn readyz_answers_503_while_redis_is_down() {
    let dir = std::env::temp_dir().join(format!("switchboard-readyz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (mut redis, port) = redis_on_a_free_port(&dir);
    let data = dir.join("data").to_string_lossy().to_string();
    let url = format!("redis://127.0.0.1:{port}");
    let server = Proc::spawn(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--engine",
            "redis",
            "--redis-url",
            &url,
        ],
        &[],
    );
    let http = server.expect("the http address", |l| field(l, "http api:"));
    let http = http.trim_start_matches("http://").to_string();
    readyz_becomes(&http, 200);

    let _ = redis.kill();
    let _ = redis.wait();
    let body = readyz_becomes(&http, 503);
    let json: Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(json["status"], "unavailable", "{json}");
    assert!(
        json["failed"].as_array().is_some_and(|f| f
            .iter()
            .any(|x| x.as_str().unwrap_or("").contains("broker"))),
        "it names the broker: {json}"
    );
    assert_eq!(
        http_get(&http, "/healthz").0,
        200,
        "the process is still up"
    );

    let mut back = redis_on(port, &dir).expect("redis-server restarts on its port");
    readyz_becomes(&http, 200);
    let _ = back.kill();
    let _ = back.wait();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Secrets never logged (issue 20): `serve --engine redis` with a password in
/// `--redis-url` prints and logs the URL with the password as `***`, on stdout (the
/// banner) and in the log (stderr), and still reaches the Redis that requires it.
#[test]
fn the_redis_password_is_never_printed_or_logged() {
    use std::io::{Read, Write};
    let dir = std::env::temp_dir().join(format!("switchboard-redispw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (mut redis, port) = redis_on_a_free_port(&dir);
    const PASSWORD: &str = "s3cr3t-redis-pw";
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("redis");
    c.write_all(format!("CONFIG SET requirepass {PASSWORD}\r\n").as_bytes())
        .expect("CONFIG SET");
    let mut reply = [0u8; 5];
    c.read_exact(&mut reply).expect("reply");
    assert_eq!(&reply, b"+OK\r\n", "requirepass set");
    let data = dir.join("data").to_string_lossy().to_string();
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{port}");
    let log = dir.join("serve.log");
    let server = Proc::spawn_logged(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--engine",
            "redis",
            "--redis-url",
            &url,
        ],
        &[],
        &log,
    );
    let banner = server.expect("the engine line", |l| {
        l.starts_with("engine: redis").then(|| l.to_string())
    });
    assert!(
        banner.contains(":***@127.0.0.1") && !banner.contains(PASSWORD),
        "{banner}"
    );
    // Connected with the password: the node is serving.
    server.expect("the listening line", |l| field(l, "listening on"));
    let stdout = server.unmatched.borrow().join("\n");
    assert!(
        !stdout.contains(PASSWORD),
        "the password is on stdout: {stdout}"
    );
    drop(server);
    let logged = std::fs::read_to_string(&log).expect("the log");
    assert!(
        logged.contains("engine: redis"),
        "the log has the engine line: {logged}"
    );
    assert!(
        !logged.contains(PASSWORD),
        "the password is in the log: {logged}"
    );
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `serve --tls-cert --tls-key` with a certificate the test makes (rcgen): the banner
/// says `wss://` and `https://`, and a client trusting the certificate gets `/healthz`
/// over TLS and a WebSocket upgrade on `/v1/ws`.
#[test]
fn serve_with_tls_files_answers_https_and_wss() {
    use std::io::{Read, Write};
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::ServerName;

    let dir = std::env::temp_dir().join(format!("switchboard-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, ck.cert.pem()).unwrap();
    std::fs::write(&key_path, ck.signing_key.serialize_pem()).unwrap();
    let data = dir.join("data").to_string_lossy().to_string();
    let (cert_arg, key_arg) = (
        cert_path.to_string_lossy().to_string(),
        key_path.to_string_lossy().to_string(),
    );
    let server = Proc::spawn(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--tls-cert",
            &cert_arg,
            "--tls-key",
            &key_arg,
        ],
        &[],
    );
    let ws = server.expect("listening on", |l| field(l, "listening on"));
    assert!(ws.starts_with("wss://"), "{ws}");
    let http = server.expect("the http address", |l| field(l, "http api:"));
    assert!(http.starts_with("https://"), "{http}");

    let config = tls_client_trusting(&ck.cert.pem());
    // A blocking TLS request: `request` sent, everything until the server closes read.
    let ask = |addr: &str, request: String| -> String {
        let mut tcp = std::net::TcpStream::connect(addr).expect("tcp");
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(config.clone(), name).expect("client");
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        tls.write_all(request.as_bytes()).expect("TLS write");
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // Until the server closes, or (the WebSocket upgrade) the headers are in.
        while let Ok(n) = tls.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if out.windows(4).any(|w| w == b"\r\n\r\n") && out.starts_with(b"HTTP/1.1 101") {
                break;
            }
        }
        String::from_utf8_lossy(&out).to_string()
    };
    let http_addr = http.trim_start_matches("https://").to_string();
    let answer = ask(
        &http_addr,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_string(),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"ok\""), "{answer}");

    let ws_addr = ws.trim_start_matches("wss://").to_string();
    let answer = ask(
        &ws_addr,
        "GET /v1/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            .to_string(),
    );
    assert!(
        answer.starts_with("HTTP/1.1 101"),
        "the upgrade over TLS: {answer}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 17: with the Redis engine the console's node list (`GET …/node`, its `nodes`)
/// has one row per node sharing the Redis, this node marked, each with its heartbeat.
#[test]
fn the_node_list_shows_every_node_on_the_redis() {
    const APP: &str = "0123456789abcdef0123456789abcdef";
    // HTTP Basic of "k:nodes-secret".
    const AUTH: &str = "Authorization: Basic azpub2Rlcy1zZWNyZXQ=\r\n";
    let dir = std::env::temp_dir().join(format!("switchboard-nodes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (mut redis, port) = redis_on_a_free_port(&dir);
    let config = dir.join("serve.toml");
    std::fs::write(
        &config,
        format!("[[apps]]\nid = \"{APP}\"\napi_key = \"k\"\napi_secret = \"nodes-secret\"\n"),
    )
    .expect("config");
    let config = config.to_string_lossy().to_string();
    let url = format!("redis://127.0.0.1:{port}");
    let node = |id: &str| {
        let data = dir.join(id).to_string_lossy().to_string();
        Proc::spawn(
            &[
                "serve",
                "--config",
                &config,
                "--listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
                "--data-dir",
                &data,
                "--engine",
                "redis",
                "--redis-url",
                &url,
                "--node-id",
                id,
            ],
            &[],
        )
    };
    let (a, b) = (node("node-a"), node("node-b"));
    let http = a.expect("the http address", |l| field(l, "http api:"));
    let http = http.trim_start_matches("http://").to_string();
    let _ = b.expect("the http address", |l| field(l, "http api:"));

    let path = format!("/v1/apps/{APP}/node");
    let (status, body) = http_get(&http, &path);
    assert_eq!(
        status, 401,
        "the node list needs the app's credentials: {body}"
    );
    let deadline = std::time::Instant::now() + WAIT;
    let rows = loop {
        let (status, body) = http_get_with(&http, &path, AUTH);
        assert_eq!(status, 200, "{body}");
        let json: Value = serde_json::from_str(&body).expect("a JSON body");
        let rows = json["nodes"].as_array().cloned().unwrap_or_default();
        if rows.len() == 2 {
            break rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "two nodes listed: {json}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(rows[0]["id"], "node-a", "{rows:?}");
    assert_eq!(rows[0]["this"], true, "{rows:?}");
    assert_eq!(rows[1]["id"], "node-b", "{rows:?}");
    assert_eq!(rows[1]["this"], false, "{rows:?}");
    for r in &rows {
        let age = r["heartbeat_age_ms"].as_u64().expect("an age");
        assert!(age < 60_000, "a live node's heartbeat is recent: {r}");
    }
    drop((a, b));
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
