//! Issue 16, step 3: the OpenAPI document generated from the code (`utoipa`), served at
//! `/openapi.json`, lists every route of the HTTP side, and every path it lists is
//! one the server routes.

mod common;
mod http_support;

use http_support::{API_KEY, API_SECRET, HttpServer};

/// Every route of `http::router`, as the document spells it, with its method.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/v1/apps/{app_id}/publish"),
    ("post", "/v1/apps/{app_id}/publish/batch"),
    ("post", "/v1/apps/{app_id}/users/{user_id}/kick"),
    ("get", "/v1/apps/{app_id}/users/{user_id}/channels"),
    ("get", "/v1/apps/{app_id}/presence/{channel_type}/{channel}"),
    ("get", "/v1/apps/{app_id}/metadata/{channel_type}/{name}"),
    (
        "post",
        "/v1/apps/{app_id}/metadata/{channel_type}/{name}/{op}",
    ),
    ("get", "/v1/apps/{app_id}/locks/{channel_type}/{channel}"),
    (
        "post",
        "/v1/apps/{app_id}/locks/{channel_type}/{channel}/{lock_name}/revoke",
    ),
    ("get", "/v1/apps/{app_id}/history/{channel_type}/{channel}"),
    ("post", "/v1/apps/{app_id}/tokens/rtm"),
    ("post", "/v1/apps/{app_id}/tokens/rtc"),
    ("post", "/v1/apps/{app_id}/users/{user_id}/ban"),
    ("post", "/v1/apps/{app_id}/users/{user_id}/unban"),
    // The console's reads (issue 17).
    ("get", "/v1/apps/{app_id}/stats"),
    ("get", "/v1/apps/{app_id}/node"),
    ("get", "/v1/apps/{app_id}/channels"),
    ("get", "/v1/apps/{app_id}/tail/{channel_type}/{channel}"),
    ("get", "/v1/apps/{app_id}/users"),
];

#[tokio::test]
async fn openapi_document_parses_and_lists_every_route() {
    let s = HttpServer::start().await;
    let (status, body) = s.get("/openapi.json").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).expect("the document is JSON");
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3."),
        "an OpenAPI 3 document"
    );
    let paths = doc["paths"].as_object().expect("paths");
    for (method, path) in ROUTES {
        let op = &paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is in the document"))[*method];
        assert!(op.is_object(), "{method} {path} is documented");
        assert!(op["responses"]["200"].is_object(), "{method} {path}: 200");
        if path.starts_with("/v1/") {
            assert!(op["security"].is_array(), "{method} {path} needs auth");
            assert!(op["responses"]["401"].is_object(), "{method} {path}: 401");
        }
    }
    let documented: usize = paths
        .values()
        .map(|p| p.as_object().map_or(0, |o| o.len()))
        .sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "no route documented twice or unknown"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["basic"]["scheme"],
        "basic"
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    // Every reference resolves within the document.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("a schema reference");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} resolves"
        );
    }

    // Every documented path is routed: filled in, it never meets the fallback.
    for (method, path) in ROUTES {
        let url = path
            .replace("{app_id}", common::APP_ID)
            .replace("{channel_type}", "message")
            .replace("{op}", "set")
            .replace(['{', '}'], "");
        let req = match *method {
            "get" => s.client.get(s.url(&url)),
            _ => s.client.post(s.url(&url)).body("{}"),
        };
        let r = req
            .basic_auth(API_KEY, Some(API_SECRET))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        assert!(
            !text.contains("no such endpoint"),
            "{method} {url} is routed: {status} {text}"
        );
        assert!(status < 500, "{method} {url}: {status} {text}");
    }
}

fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", serde_json::Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
