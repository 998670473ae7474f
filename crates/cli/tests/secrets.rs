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
