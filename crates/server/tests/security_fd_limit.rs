//! A connection flood to the file limit (issue 20 "Faults and load"): once the server's
//! process is out of file descriptors, a new connection is refused at once (HTTP 503 on
//! the WebSocket upgrade, answered with the accept loop's spare descriptor) instead of
//! waiting unanswered in the listen backlog; the sessions already open keep being
//! served, and new logins work again as soon as descriptors free up.
//!
//! The test exhausts the descriptors of its own process (the server runs in it), so it
//! needs no lowered limit; nextest runs each test in its own process.

mod common;

use common::*;
use std::fs::File;
use switchboard_protocol::pb::server_message::Body;
use tokio_tungstenite::tungstenite;

/// Opens `/dev/null` until the process is out of descriptors; the files, and the error
/// that ended the loop.
fn exhaust_descriptors() -> (Vec<File>, std::io::Error) {
    let mut held = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => held.push(f),
            Err(e) => return (held, e),
        }
    }
}

/// One WebSocket connect with the process at its limit but for the descriptor of the
/// client's own socket: the server's answer, which must come within [`STEP`].
async fn connect_at_the_limit(url: &str, held: &mut Vec<File>) -> tungstenite::Error {
    // Frees exactly one descriptor: the client's socket takes it, so the server's
    // accept finds none.
    held.pop().expect("a descriptor to free");
    let attempt = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url)).await;
    let outcome = attempt.expect(
        "past the file limit the server answers at once, not leaving the client in the backlog",
    );
    // The client's socket is closed again: take its descriptor back.
    let (more, _) = exhaust_descriptors();
    held.extend(more);
    match outcome {
        Ok(_) => panic!("a connection past the file limit was accepted"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn past_the_file_limit_a_connection_is_refused_at_once_and_the_rest_keeps_serving() {
    let server = TestServer::start().await;
    let mut canary = server.raw_login("canary").await;
    canary.subscribe("room").await;
    let url = server.url();

    let (mut held, e) = exhaust_descriptors();
    assert_eq!(e.raw_os_error(), Some(24), "EMFILE expected: {e}");
    // Twice: the spare descriptor is taken again after each refusal.
    for attempt in 0..2 {
        match connect_at_the_limit(&url, &mut held).await {
            tungstenite::Error::Http(response) => assert_eq!(
                response.status(),
                503,
                "attempt {attempt}: refused with 503 Service Unavailable"
            ),
            other => panic!("attempt {attempt}: expected an HTTP 503 refusal, got {other}"),
        }
    }
    // The open session is served throughout.
    canary.assert_alive().await;

    // Descriptors free again: a new login works and the canary receives its message.
    drop(held);
    let mut late = server.raw_login("late").await;
    let reply = late.request(publish_text("room", "after the flood")).await;
    assert!(
        matches!(reply, Body::Publish(_)),
        "publish acknowledged: {reply:?}"
    );
    let push = canary.next_push(STEP).await.expect("the canary's message");
    assert!(
        matches!(push.body, Some(Body::Message(ref m)) if &m.payload[..] == b"after the flood"),
        "{push:?}"
    );
}
