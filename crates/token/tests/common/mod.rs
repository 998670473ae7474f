//! Shared helpers for the integration tests: loading the token vectors (a copy of the
//! reference `shared/vectors/tokens.json`, kept in this crate so a clone is complete) and
//! running one verification context of the vectors' `checks[]` shape.

// Each test binary that includes this module uses a different subset of it.
#![allow(dead_code)]

use serde_json::Value;
use switchboard_token::{Rtm2Permission, VerifyOptions, verify_login, verify_stream_join};

/// The vector file, a verbatim copy of the reference vectors.
pub const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/tokens.json");

/// Where the reference copy lives when the repository sits next to `shared/`.
pub const REFERENCE_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/vectors/tokens.json"
);

/// The parsed vector file; panics with the path when it cannot be read.
pub fn load_vectors() -> Value {
    let text = std::fs::read_to_string(VECTORS_PATH)
        .unwrap_or_else(|e| panic!("cannot read token vectors at {VECTORS_PATH}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {VECTORS_PATH}: {e}"))
}

/// A string field of a JSON object; panics naming the field when absent.
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string field {key:?} in {v}"))
}

/// An unsigned integer field of a JSON object; panics naming the field when absent.
pub fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("missing integer field {key:?} in {v}"))
}

/// Runs one `checks[]` / `check` context against `token` with default options and
/// returns `"OK"` or the failure identifier (token.md §10).
pub fn run_check(token: &str, check: &Value) -> String {
    let opts = VerifyOptions::default();
    let (app_id, cert, user) = (
        s(check, "app_id"),
        s(check, "app_certificate"),
        s(check, "user_id"),
    );
    let now = n(check, "now");
    let result = match s(check, "purpose") {
        "rtm_login" => verify_login(token, app_id, cert, user, now, &opts),
        "stream_channel_join" => verify_stream_join(
            token,
            app_id,
            cert,
            user,
            s(check, "channel_name"),
            now,
            &opts,
        ),
        other => panic!("unknown check purpose {other:?}"),
    };
    match result {
        Ok(_) => "OK".to_owned(),
        Err(e) => e.identifier().to_owned(),
    }
}

/// `{"0": {"0": ["lobby"]}}` (resource type → permission type → names) as a flat list.
pub fn permissions_of(inputs: &Value) -> Vec<Rtm2Permission> {
    let mut out = Vec::new();
    for (rt, by_perm) in inputs["permissions"]
        .as_object()
        .expect("permissions object")
    {
        for (pt, names) in by_perm.as_object().expect("permission map") {
            out.push(Rtm2Permission {
                resource_type: rt.parse().expect("resource type"),
                permission_type: pt.parse().expect("permission type"),
                resources: names
                    .as_array()
                    .expect("names")
                    .iter()
                    .map(|n| n.as_str().expect("name").to_owned())
                    .collect(),
            });
        }
    }
    out
}
