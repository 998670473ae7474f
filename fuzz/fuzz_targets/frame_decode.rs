//! Fuzzes the frame decoder with hostile bytes, as a client could send them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_protocol::frame::decode_all;
use switchboard_protocol::pb::{ClientMessage, ServerMessage};

fuzz_target!(|data: &[u8]| {
    let frame = bytes::Bytes::copy_from_slice(data);
    let _ = decode_all::<ClientMessage>(frame.clone(), 64);
    let _ = decode_all::<ServerMessage>(frame, 64);
});
