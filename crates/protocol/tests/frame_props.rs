//! Property tests of the frame decoder: hostile bytes never panic it, and whatever a
//! writer batches into one frame decodes back to the same messages in order.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use switchboard_protocol::frame::{FrameDecoder, decode_all, encode_into};
use switchboard_protocol::pb::{
    ClientMessage, Heartbeat, PublishRequest, ServerMessage, SubscribeRequest, client_message::Body,
};

fn message() -> impl Strategy<Value = ClientMessage> {
    let publish = (
        any::<u32>(),
        ".{0,70}",
        proptest::collection::vec(any::<u8>(), 0..300),
        0i32..5,
    )
        .prop_map(|(id, channel, payload, channel_type)| ClientMessage {
            id,
            body: Some(Body::Publish(PublishRequest {
                channel_type,
                channel_name: channel,
                payload: Bytes::from(payload),
                ..Default::default()
            })),
        });
    let subscribe =
        (any::<u32>(), ".{0,70}", any::<Option<bool>>()).prop_map(|(id, channel, with_message)| {
            ClientMessage {
                id,
                body: Some(Body::Subscribe(SubscribeRequest {
                    channel_name: channel,
                    with_message,
                    ..Default::default()
                })),
            }
        });
    let heartbeat = any::<u32>().prop_map(|id| ClientMessage {
        id,
        body: Some(Body::Heartbeat(Heartbeat {})),
    });
    prop_oneof![publish, subscribe, heartbeat]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let frame = Bytes::from(bytes);
        let _ = decode_all::<ClientMessage>(frame.clone(), 64);
        let _ = decode_all::<ServerMessage>(frame.clone(), 64);
        prop_assert!(FrameDecoder::<ClientMessage>::new(frame, 64).count() <= 65);
    }

    #[test]
    fn batched_messages_round_trip_in_order(msgs in proptest::collection::vec(message(), 1..20)) {
        let mut buf = BytesMut::new();
        for m in &msgs {
            encode_into(m, &mut buf);
        }
        let decoded: Vec<ClientMessage> = decode_all(buf.freeze(), 64).expect("decodes");
        prop_assert_eq!(decoded, msgs);
    }

    #[test]
    fn any_truncation_of_a_batch_is_an_error_or_a_prefix(
        msgs in proptest::collection::vec(message(), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf = BytesMut::new();
        for m in &msgs {
            encode_into(m, &mut buf);
        }
        let full = buf.freeze();
        let at = cut.index(full.len());
        let mut seen = Vec::new();
        for item in FrameDecoder::<ClientMessage>::new(full.slice(..at), 64) {
            match item {
                Ok(m) => seen.push(m),
                Err(_) => break,
            }
        }
        // Whatever decoded before the cut is exactly a prefix of what was sent.
        prop_assert!(seen.len() <= msgs.len());
        prop_assert_eq!(&msgs[..seen.len()], &seen[..]);
    }
}
