//! What the scenarios need from a peer: connections that subscribe, send and receive
//! bench messages. One implementation per protocol; the scenarios are written once,
//! generic over [`Peer`].

use crate::common::Msg;

/// One connection (one user / client) to the server.
#[allow(async_fn_in_trait)]
pub trait Conn: 'static {
    /// Waits for the next frame(s) and appends the bench messages in them to `out`
    /// (possibly none: a reply, a ping). Cancel-safe. An error: the connection is lost.
    async fn recv(&mut self, out: &mut Vec<Msg>) -> anyhow::Result<()>;
    /// Queues `m` to `to` (channel, subject, topic, room); [`Conn::flush`] writes it out.
    async fn send(&mut self, to: &str, m: Msg) -> anyhow::Result<()>;
    /// Writes out what was queued.
    async fn flush(&mut self) -> anyhow::Result<()>;
    /// Refused requests and protocol errors seen so far.
    fn errors(&self) -> u64 {
        0
    }
}

/// A server of one kind: how its bench connections are opened.
#[allow(async_fn_in_trait)]
pub trait Peer: 'static {
    type C: Conn;
    /// A fanout subscriber of `channel`, its subscription confirmed.
    async fn subscriber(&self, i: u32, channel: &str) -> anyhow::Result<Self::C>;
    /// The fanout publisher (and the name to publish to for `channel`).
    async fn publisher(&self, channel: &str) -> anyhow::Result<(Self::C, String)>;
    /// Side `i` of p2p pair `i / 2`, receiving what its peer sends; returns the
    /// connection and where to send to reach the peer.
    async fn p2p_side(&self, i: u32) -> anyhow::Result<(Self::C, String)>;
}

/// p2p user names: side a = even index, b = odd.
pub fn p2p_user(i: u32) -> String {
    format!("p2p-{}-{}", i / 2, if i.is_multiple_of(2) { "a" } else { "b" })
}
