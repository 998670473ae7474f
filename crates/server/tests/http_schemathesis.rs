//! Issue 16, step 3: a property-based test of the HTTP side with `schemathesis`
//! (PyPI; `.ci/run` installs the pinned version) against a real server: generated
//! requests for every operation of `/openapi.json`, bounded examples, and every
//! response must be no 5xx and match the document (status code, content type, body
//! schema). Not skipped when the tool is missing: it fails and says how to install it.

mod common;
mod http_support;

use common::APP_ID;
use http_support::{API_KEY, API_SECRET, HttpServer};
use std::process::Command;

/// The version `.ci/run` installs.
const PINNED: &str = "4.32.5";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_response_off_the_document() {
    let version = Command::new("st").arg("--version").output().ok();
    let Some(version) = version.filter(|o| o.status.success()) else {
        panic!(
            "schemathesis is required: python3 -m pip install schemathesis=={PINNED} \
             (.ci/run installs it)"
        );
    };
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    assert!(
        version.contains(PINNED),
        "schemathesis {PINNED} expected, found {version}"
    );

    let s = HttpServer::start().await;
    let schema = s.url("/openapi.json");
    let report = std::env::temp_dir().join(format!("switchboard-st-{}", std::process::id()));
    let auth = format!("{API_KEY}:{API_SECRET}");
    // Requests go to the configured app (a random app id would only meet 401s).
    std::fs::create_dir_all(&report).expect("report dir");
    let config = report.join("schemathesis.toml");
    std::fs::write(
        &config,
        format!("[parameters]\n\"path.app_id\" = \"{APP_ID}\"\n"),
    )
    .expect("write the schemathesis config");
    let report_dir = report.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("st")
            .arg("--config-file")
            .arg(&config)
            .args(["run", &schema, "--auth", &auth])
            .args(["--max-examples", "25", "--seed", "16"])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            ])
            .args(["--workers", "1", "--request-timeout", "10"])
            .arg("--report-dir")
            .arg(&report)
            .env("NO_COLOR", "1")
            // Its example database goes with the report, not into the repository.
            .current_dir(&report)
            .output()
            .expect("run schemathesis")
    })
    .await
    .expect("schemathesis task");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&report_dir);
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
    // It really exercised the API: every operation of the document was tested.
    let number_after = |label: &str| -> usize {
        let at = text
            .find(label)
            .unwrap_or_else(|| panic!("{label} in the summary:\n{text}"));
        text[at + label.len()..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or_else(|_| panic!("a number after {label}:\n{text}"))
    };
    let tested = number_after("Tested:");
    let total = number_after("Selected:");
    assert!(total >= 15, "every route is in the document:\n{text}");
    assert_eq!(tested, total, "every operation was tested:\n{text}");
}
