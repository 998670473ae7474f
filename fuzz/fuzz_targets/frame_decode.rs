//! Fuzzes the frame decoder (crates/protocol `frame`) with hostile bytes, as a client
//! (or a server, for the SDK) could send them in one WebSocket binary frame.
//!
//! Oracles beyond "does not panic": the decoder never yields more messages than its
//! limit, stops at the first error, and whatever decodes re-encodes into a frame that
//! decodes to the same messages.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use switchboard_protocol::frame::{self, FrameDecoder, FrameError};
use switchboard_protocol::pb::{ClientMessage, ServerMessage};

/// Messages per frame the decoder accepts here (the server's default is of this order).
const LIMIT: usize = 64;

fn check<M: Message + Default + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let frame = Bytes::copy_from_slice(data);
    match frame::decode_all::<M>(frame.clone(), LIMIT) {
        Err(FrameError::Empty) => assert!(data.is_empty(), "Empty for a non-empty frame"),
        Err(FrameError::TooManyMessages(n)) => assert_eq!(n, LIMIT),
        Err(FrameError::Malformed(_)) => {}
        Ok(msgs) => {
            assert!(!msgs.is_empty() && msgs.len() <= LIMIT);
            let mut buf = BytesMut::new();
            for m in &msgs {
                frame::encode_into(m, &mut buf);
            }
            let again =
                frame::decode_all::<M>(buf.freeze(), LIMIT).expect("a re-encoded frame decodes");
            assert_eq!(msgs, again, "decode(encode(decode(x))) != decode(x)");
        }
    }
    // The iterator: at most LIMIT messages plus one error, nothing after an error.
    let mut seen = 0usize;
    let mut failed = false;
    for item in FrameDecoder::<M>::new(frame, LIMIT) {
        assert!(!failed, "an item after an error");
        seen += 1;
        assert!(seen <= LIMIT + 1);
        failed = item.is_err();
    }
}

fuzz_target!(|data: &[u8]| {
    check::<ClientMessage>(data);
    check::<ServerMessage>(data);
});
