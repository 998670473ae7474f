//! Publishes sent back to back on one connection run as one pipeline (every publish
//! starts before the first reply; `dispatch::handle_batch`): each still gets its own
//! reply, in request order, with the position where it landed; the channel's offsets
//! follow the requests' order; a failing publish in the middle is answered with its
//! error and leaves the others alone; a request that is not a publish in between is
//! handled in its place (R63).

mod common;

use common::*;
use switchboard_protocol::ErrorCode;
use switchboard_protocol::pb::{self, ClientMessage, client_message::Body as Req, server_message};

fn message_push(push: pb::ServerMessage) -> pb::MessagePush {
    match push.body {
        Some(server_message::Body::Message(m)) => m,
        other => panic!("expected a message push, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_publishes_are_answered_and_delivered_in_request_order_r63() {
    let server = TestServer::start().await;
    let mut sub = server.raw_login("reader").await;
    let start = sub
        .subscribe("piped")
        .await
        .position
        .expect("subscribe reply carries the position");
    let mut publisher = server.raw_login("writer").await;
    // One frame: 20 publishes, a bad one (empty channel name) at 7, a heartbeat with
    // an id at 12, then 10 more publishes.
    let mut msgs = Vec::new();
    let mut ids = Vec::new();
    for i in 0..31 {
        let id = publisher.next_id();
        let body = match i {
            7 => publish_text("", "refused"),
            12 => Req::Heartbeat(pb::Heartbeat {}),
            _ => publish_text("piped", &format!("m{i}")),
        };
        msgs.push(ClientMessage {
            id,
            body: Some(body),
        });
        ids.push(id);
    }
    publisher.send(&msgs).await;
    let mut offsets = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let reply = publisher.reply(*id).await;
        match i {
            7 => {
                let e = expect_error(reply);
                assert_eq!(e.code, ErrorCode::InvalidChannelName.as_i32(), "{e:?}");
            }
            12 => assert!(
                matches!(reply, server_message::Body::Heartbeat(_)),
                "the heartbeat in between is answered: {reply:?}"
            ),
            _ => match reply {
                server_message::Body::Publish(r) => {
                    let p = r.position.expect("publish reply carries a position");
                    assert_eq!(p.epoch, start.epoch);
                    offsets.push((i, p.offset));
                }
                other => panic!("publish {i}: expected a publish reply, got {other:?}"),
            },
        }
    }
    let expected: Vec<u64> = (1..=offsets.len() as u64)
        .map(|n| start.offset + n)
        .collect();
    assert_eq!(
        offsets.iter().map(|(_, o)| *o).collect::<Vec<_>>(),
        expected,
        "offsets follow the requests' order"
    );
    for (i, offset) in &offsets {
        let m = message_push(sub.next_push(STEP).await.expect("message push"));
        let pos = m.position.expect("push carries a position");
        assert_eq!(pos.offset, *offset);
        assert_eq!(&m.payload[..], format!("m{i}").as_bytes());
    }
    publisher.assert_alive().await;
}
