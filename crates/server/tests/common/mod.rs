//! Shared helpers of the server's integration tests: a real server on a loopback port
//! and token builders ([`server`]), a raw WebSocket client speaking the wire protocol
//! ([`raw`]), SDK helpers ([`sdk`]), waiting for a state with a deadline instead of a
//! fixed sleep ([`wait`]), shared wire numbers ([`codes`]), and a fault-injection proxy
//! ([`proxy`]).
//!
//! Everything but the proxy is re-exported here, so `use common::*;` brings it all.

#![allow(dead_code)]
pub mod codes;
pub mod proxy;
pub mod raw;
pub mod sdk;
pub mod server;
pub mod wait;

// Each test binary uses a part of them.
#[allow(unused_imports)]
pub use codes::*;
#[allow(unused_imports)]
pub use raw::*;
#[allow(unused_imports)]
pub use sdk::*;
#[allow(unused_imports)]
pub use server::*;
#[allow(unused_imports)]
pub use wait::*;
