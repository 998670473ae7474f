//! The first-start app's certificate (issue 20, "Secrets"): written to `app.toml` that
//! only its owner can read, printed once when created, never on a later start.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn the_certificate_is_printed_once_and_its_file_is_private() {
    let mut first = Served::start("secrets", &[]);
    let dir = first.dir.clone();
    let cert = first.cert.clone();
    assert_eq!(
        cert.len(),
        32,
        "the banner of the first start shows the certificate"
    );
    let mode = std::fs::metadata(dir.join("app.toml"))
        .expect("app.toml")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "app.toml is readable by its owner only"
    );
    // Stopped, but kept: dropping it would remove the data dir.
    let _ = first.proc.child.kill();
    let _ = first.proc.child.wait();

    let data = dir.to_string_lossy().to_string();
    let second = Proc::spawn(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", &data],
        &[],
    );
    let line = second.expect("the certificate line", |l| field(l, "certificate:"));
    assert!(
        !line.contains(&cert),
        "a later start does not print it: {line}"
    );
    assert!(line.contains("app.toml"), "it says where it is: {line}");
    second.expect("listening on", |l| field(l, "listening on"));
    drop(second);
    drop(first);
}

/// Issue 19's logs and issue 20's secrets: with `SWITCHBOARD_LOG=debug` the server logs
/// connections opening and closing and every login, failed ones with the reason — and
/// never a token or the certificate.
#[test]
fn logins_and_connections_are_logged_without_secrets() {
    let dir = std::env::temp_dir().join(format!("switchboard-logs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let log = dir.join("serve.log");
    let data = dir.join("data").to_string_lossy().to_string();
    let server = Proc::spawn_logged(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", &data],
        &[("SWITCHBOARD_LOG", "debug")],
        &log,
    );
    let app_id = server.expect("the app id", |l| field(l, "app id:"));
    let cert = server.expect("the certificate", |l| field(l, "certificate:"));
    let url = server.expect("listening on", |l| field(l, "listening on"));
    let env = [
        ("SWITCHBOARD_URL", url.as_str()),
        ("SWITCHBOARD_APP_ID", app_id.as_str()),
    ];
    let good = run(
        &[
            "token",
            "rtm",
            "--app-id",
            &app_id,
            "--app-cert",
            &cert,
            "--user-id",
            "logged",
        ],
        &[],
    );
    let token = String::from_utf8(good.stdout)
        .expect("utf8")
        .trim()
        .to_string();
    let ok = run(
        &[
            "pub",
            "--user-id",
            "logged",
            "--token",
            &token,
            "room",
            "hi",
        ],
        &env,
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // A token of the right shape for another user: refused with a reason.
    let bad = run(
        &[
            "pub",
            "--user-id",
            "intruder",
            "--token",
            &token,
            "room",
            "hi",
        ],
        &env,
    );
    assert!(!bad.status.success());
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !(read().contains("login failed") && read().matches("connection closed").count() >= 2) {
        assert!(
            std::time::Instant::now() < deadline,
            "the server logged logins and closes: {}",
            read()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let text = read();
    assert!(text.contains("connection opened"), "{text}");
    assert!(
        text.contains("logged in") && text.contains("logged"),
        "{text}"
    );
    assert!(
        text.contains("login failed") && text.contains("intruder"),
        "{text}"
    );
    assert!(!text.contains(&token), "the log never holds a token");
    assert!(!text.contains(&cert), "the log never holds the certificate");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 16's TLS, request ids and secrets on one full run of `serve --tls-cert
/// --tls-key --log-format json`: `pub` over `wss://` with `--ca-cert` goes through and
/// without it fails saying the certificate is not trusted; an HTTPS request's
/// `x-request-id` is echoed and carried by its log line (and a login's line by its
/// connection's `conn` span); and the log holds no token (the login one, nor one the
/// API issued), no app certificate, no API secret and no part of the TLS key.
#[test]
fn a_full_run_over_tls_logs_request_ids_and_no_secret() {
    use base64::Engine;
    use serde_json::Value;
    use std::io::{Read, Write};
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::ServerName;

    const APP: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const CERT: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";
    const SECRET: &str = "tls-run-api-secret-8d2e";
    let dir = std::env::temp_dir().join(format!("switchboard-tlslog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    let key_pem = ck.signing_key.serialize_pem();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, ck.cert.pem()).unwrap();
    std::fs::write(&key_path, &key_pem).unwrap();
    let config = dir.join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "[[apps]]\nid = \"{APP}\"\ncertificate = \"{CERT}\"\napi_key = \"k\"\n\
             api_secret = \"{SECRET}\"\n"
        ),
    )
    .unwrap();
    let log = dir.join("serve.log");
    let s = |p: &std::path::Path| p.to_string_lossy().to_string();
    let (data, config, cert_arg, key_arg) = (
        s(&dir.join("data")),
        s(&config),
        s(&cert_path),
        s(&key_path),
    );
    let server = Proc::spawn_logged(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--config",
            &config,
            "--tls-cert",
            &cert_arg,
            "--tls-key",
            &key_arg,
            "--log-format",
            "json",
        ],
        &[("SWITCHBOARD_LOG", "debug")],
        &log,
    );
    let ws = server.expect("listening on", |l| field(l, "listening on"));
    let http = server.expect("the http address", |l| field(l, "http api:"));
    // The certificate names localhost.
    let url = ws.replace("127.0.0.1", "localhost");
    assert!(url.starts_with("wss://localhost:"), "{url}");

    let token = String::from_utf8(
        run(
            &[
                "token",
                "rtm",
                "--app-id",
                APP,
                "--app-cert",
                CERT,
                "--user-id",
                "tls-user",
            ],
            &[],
        )
        .stdout,
    )
    .expect("utf8")
    .trim()
    .to_string();
    let publish = |extra: &[&str]| {
        let mut args = vec![
            "pub",
            "--url",
            &url,
            "--app-id",
            APP,
            "--user-id",
            "tls-user",
            "--token",
            &token,
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["room", "over wss"]);
        run(&args, &[])
    };
    let ok = publish(&["--ca-cert", &cert_arg]);
    assert!(
        ok.status.success(),
        "pub over wss with --ca-cert: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = publish(&[]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("not trusted"), "{err}");
    assert!(
        err.contains("--ca-cert"),
        "the error says how to trust it: {err}"
    );

    // An HTTPS request with a request id: an RTM token issued by the server API.
    let tls = tls_client_trusting(&ck.cert.pem());
    let body = r#"{"user_id":"minted"}"#;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("k:{SECRET}"));
    let request = format!(
        "POST /v1/apps/{APP}/tokens/rtm HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Authorization: Basic {basic}\r\nContent-Type: application/json\r\n\
         x-request-id: tls-run-1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut tcp = std::net::TcpStream::connect(http.trim_start_matches("https://")).expect("tcp");
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(tls, name).expect("client");
    let mut stream = rustls::Stream::new(&mut conn, &mut tcp);
    stream.write_all(request.as_bytes()).expect("TLS write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-request-id: tls-run-1\r\n"),
        "the id is echoed: {answer}"
    );
    let (_, json) = answer.split_once("\r\n\r\n").expect("a body");
    let issued: Value = serde_json::from_str(json).expect("JSON");
    let issued = issued["token"].as_str().expect("a token").to_string();

    // The request's line carries its id; a login's line its connection's span.
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let lines = |text: &str| -> Vec<Value> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    };
    let in_span = |l: &Value, name: &str, key: &str| -> Option<Value> {
        l["spans"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s[key].clone())
    };
    let deadline = std::time::Instant::now() + WAIT;
    let request_line = loop {
        let found = lines(&read()).into_iter().find(|l| {
            l["fields"]["message"] == "http request"
                && in_span(l, "http", "request_id") == Some(Value::from("tls-run-1"))
        });
        if let Some(l) = found {
            break l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the request's log line: {}",
            read()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(request_line["fields"]["status"], 200, "{request_line}");
    assert_eq!(
        request_line["fields"]["path"],
        format!("/v1/apps/{APP}/tokens/rtm"),
        "{request_line}"
    );
    let text = read();
    let logged_in = lines(&text)
        .into_iter()
        .find(|l| l["fields"]["message"] == "logged in")
        .unwrap_or_else(|| panic!("the login over wss is logged: {text}"));
    assert!(
        in_span(&logged_in, "conn", "id").is_some_and(|id| id.is_u64()),
        "the login's line is in its connection's span: {logged_in}"
    );

    for (what, secret) in [
        ("the login token", token.as_str()),
        ("the token the API issued", issued.as_str()),
        ("the app certificate", CERT),
        ("the API secret", SECRET),
        ("the Basic credentials", basic.as_str()),
    ] {
        assert!(!text.contains(secret), "the log holds {what}");
    }
    for line in key_pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!text.contains(line), "the log holds a line of the TLS key");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
