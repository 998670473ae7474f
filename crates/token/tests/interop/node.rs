//! npm and node tooling for the interop test: installs `agora-token` 2.0.6 once under
//! `CARGO_TARGET_TMPDIR` and runs `agora_interop.js` with a JSON request.

use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The reference package (token.md §1) and its version.
const PACKAGE: &str = "agora-token";
const PACKAGE_VERSION: &str = "2.0.6";
/// The driver script: JSON request on stdin, JSON response on stdout.
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/agora_interop.js"
);
/// Fails the test with a clear message when `tool` is not on PATH.
fn require_tool(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` is not on PATH: the agora-token interop test needs Node.js and npm \
         (CI installs them; install them locally, e.g. `apt-get install nodejs npm`)"
    );
}

fn installed_version(package_json: &Path) -> Option<String> {
    let text = std::fs::read_to_string(package_json).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["version"].as_str().map(str::to_owned)
}

/// `<CARGO_TARGET_TMPDIR>/agora-token-2.0.6/node_modules/agora-token`, installed on first use.
fn module_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Both are required (CI installs them), even when the package is already cached.
        require_tool("node");
        require_tool("npm");
        let prefix =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{PACKAGE}-{PACKAGE_VERSION}"));
        let dir = prefix.join("node_modules").join(PACKAGE);
        if installed_version(&dir.join("package.json")).as_deref() != Some(PACKAGE_VERSION) {
            // nextest runs each test in its own process, so several may install at
            // once: each installs into a folder of its own and moves it into place;
            // whoever comes second finds a complete install there and uses it.
            let staging = prefix.with_extension(format!("tmp-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&staging);
            std::fs::create_dir_all(&staging).expect("create npm prefix");
            let out = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&staging)
                .arg(format!("{PACKAGE}@{PACKAGE_VERSION}"))
                .output()
                .expect("run npm");
            assert!(
                out.status.success(),
                "npm install {PACKAGE}@{PACKAGE_VERSION} failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if installed_version(&dir.join("package.json")).as_deref() != Some(PACKAGE_VERSION) {
                // An incomplete install left by an older run of this test.
                let _ = std::fs::remove_dir_all(&prefix);
            }
            if std::fs::rename(&staging, &prefix).is_err() {
                let _ = std::fs::remove_dir_all(&staging);
            }
        }
        assert_eq!(
            installed_version(&dir.join("package.json")).as_deref(),
            Some(PACKAGE_VERSION)
        );
        dir
    })
}

/// Runs the driver with `build` and `parse` requests and returns its JSON response.
pub fn run_node(build: &[Value], parse: &[Value]) -> Value {
    let request = json!({"module_dir": module_dir(), "build": build, "parse": parse});
    let mut child = Command::new("node")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(request.to_string().as_bytes())
        .expect("write request");
    drop(stdin);
    let out = child.wait_with_output().expect("node output");
    assert!(
        out.status.success(),
        "node driver failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let response: Value = serde_json::from_slice(&out.stdout).expect("driver prints JSON");
    assert_eq!(response["package_version"], PACKAGE_VERSION);
    response
}
