//! Issue 16, request ids: every answer of the HTTP side carries `x-request-id`, the
//! request's own when it sent a usable one (1–128 visible ASCII characters), else one
//! the server made (32 hex digits, new for each request); errors (401, 404) too. That
//! the id is in the request's log lines is checked on a full `switchboard serve` run
//! (crates/cli/tests/secrets.rs, which also reads the log for secrets).

mod common;
mod http_support;

use http_support::*;
use switchboard_server::REQUEST_ID_HEADER;

/// The `x-request-id` of the answer to a GET of `path` sent with `id` (when given).
async fn answered_id(s: &HttpServer, path: &str, id: Option<&str>) -> (u16, String) {
    let mut req = s.client.get(s.url(path));
    if let Some(id) = id {
        req = req.header(REQUEST_ID_HEADER, id);
    }
    let r = req.send().await.expect("GET");
    let id = r
        .headers()
        .get(REQUEST_ID_HEADER)
        .expect("every answer carries x-request-id")
        .to_str()
        .expect("ASCII")
        .to_string();
    (r.status().as_u16(), id)
}

fn made_by_the_server(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn every_answer_carries_the_request_id_given_or_made() {
    let s = HttpServer::start().await;

    // Given: echoed as it came.
    let (status, id) = answered_id(&s, "/healthz", Some("lb-7f3a:req/42")).await;
    assert_eq!((status, id.as_str()), (200, "lb-7f3a:req/42"));

    // None: one is made, another for the next request.
    let (_, a) = answered_id(&s, "/healthz", None).await;
    let (_, b) = answered_id(&s, "/healthz", None).await;
    assert!(made_by_the_server(&a), "{a}");
    assert!(made_by_the_server(&b), "{b}");
    assert_ne!(a, b, "a new id for each request");

    // Unusable ones (too long, a space) are replaced, never echoed.
    let long = "x".repeat(129);
    let (_, id) = answered_id(&s, "/healthz", Some(&long)).await;
    assert!(made_by_the_server(&id), "{id}");
    let (_, id) = answered_id(&s, "/healthz", Some("two words")).await;
    assert!(made_by_the_server(&id), "{id}");

    // Errors carry it as well: an unknown path, a request without credentials.
    let (status, id) = answered_id(&s, "/no/such/path", Some("nf-1")).await;
    assert_eq!((status, id.as_str()), (404, "nf-1"));
    let path = format!("/v1/apps/{}/stats", common::APP_ID);
    let (status, id) = answered_id(&s, &path, Some("auth-1")).await;
    assert_eq!((status, id.as_str()), (401, "auth-1"));
}
