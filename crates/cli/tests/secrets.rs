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
