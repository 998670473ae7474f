//! Fuzzes the server's request handling: inputs go through the real gateway and
//! dispatch of an in-process server (see `switchboard_fuzz::harness`) over a real
//! loopback WebSocket.
//!
//! The first input byte picks the connection (bits 0-1: 0 the logged-in connection to
//! the app with a certificate, 1 and 2 those of two users of the open app, 3 a fresh
//! connection that has not logged in) and the form of the rest (bit 2): set, the rest is sent as
//! is, one binary frame (so the frame decoder and the gateway see hostile bytes);
//! clear, the rest drives the structured generator (`switchboard_fuzz::generate`),
//! whose requests mostly decode and get past their first checks, so that every
//! handler's validation is reached. A server panic or a hang crashes the target.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use std::sync::{Mutex, OnceLock};
use switchboard_fuzz::generate;
use switchboard_fuzz::harness::{Harness, Target};
use switchboard_protocol::frame;

static HARNESS: OnceLock<Mutex<Harness>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut h = HARNESS
        .get_or_init(|| Mutex::new(Harness::start()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let target = match selector & 3 {
        0 => Target::Certified,
        1 => Target::Open,
        2 => Target::OpenOther,
        _ => Target::Fresh,
    };
    let bytes = if selector & 4 != 0 {
        bytes::Bytes::copy_from_slice(rest)
    } else {
        let mut u = Unstructured::new(rest);
        let generated = if target == Target::Fresh {
            generate::first_messages(&mut u, &h.ctx)
        } else {
            generate::messages(&mut u, &h.ctx)
        };
        let Ok(msgs) = generated else { return };
        let mut buf = BytesMut::new();
        for m in &msgs {
            frame::encode_into(m, &mut buf);
        }
        buf.freeze()
    };
    h.exchange(target, bytes);
});
