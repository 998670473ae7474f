//! WebSocket peers with minimal hand-rolled clients (tokio-tungstenite):
//!
//! - Socket.IO v5 over Engine.IO v4 (`/socket.io/?EIO=4&transport=websocket`, no
//!   polling): open packet `0{…}`, connect `40`, events `42[…]`, acks `43…`, the
//!   server's pings `2` answered with `3`. The bench servers (`socketio/server.js`,
//!   `socketioxide/`) have two events: `join(room)` with an ack, and `to(room, data)`,
//!   relayed as event `m` to everyone in `room`.
//! - Pusher protocol 7 (Sockudo): `/app/{key}?protocol=7`, socket id from
//!   `pusher:connection_established`, private channels authorised locally
//!   (`key:hex(HMAC-SHA256(secret, "socket_id:channel"))`), messages as client events
//!   `client-m` (relayed to every other subscriber of the channel, never back to the
//!   sender), `pusher:ping` answered with `pusher:pong`.
//!
//! Payloads are text ([`encode_text`]), a string of `size` characters.

use crate::common::{decode_text, encode_text, Msg};
use crate::peer::{p2p_user, Conn, Peer};
use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Clone, Copy, PartialEq)]
enum Proto {
    SocketIo,
    Pusher,
}

pub struct WsConn {
    ws: Ws,
    proto: Proto,
    size: usize,
    errors: u64,
    buf: Vec<u8>,
}

const SETUP: Duration = Duration::from_secs(10);

impl WsConn {
    /// The next text frame, answering pings on the way (setup only).
    async fn next_text(&mut self) -> anyhow::Result<String> {
        loop {
            let m = tokio::time::timeout(SETUP, self.ws.next())
                .await
                .context("no answer in 10 s")?;
            match m {
                Some(Ok(Message::Text(t))) => {
                    if self.ping(t.as_bytes()).await? {
                        continue;
                    }
                    return Ok(t.to_string());
                }
                Some(Ok(Message::Close(c))) => bail!("closed by the server: {c:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => bail!("connection closed"),
            }
        }
    }

    /// Answers a ping; true if `t` was one.
    async fn ping(&mut self, t: &[u8]) -> anyhow::Result<bool> {
        let pong = match self.proto {
            Proto::SocketIo if t == b"2" => "3",
            Proto::Pusher if contains(t, b"\"pusher:ping\"") => {
                r#"{"event":"pusher:pong","data":{}}"#
            }
            _ => return Ok(false),
        };
        self.ws.send(Message::text(pong)).await?;
        Ok(true)
    }

    fn text(&mut self) -> Message {
        let s = String::from_utf8(std::mem::take(&mut self.buf)).expect("ASCII frame");
        Message::text(s)
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn connect(url: &str, proto: Proto, size: usize) -> anyhow::Result<WsConn> {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .with_context(|| format!("connect to {url}"))?;
    if let tokio_tungstenite::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_nodelay(true)?;
    }
    Ok(WsConn {
        ws,
        proto,
        size,
        errors: 0,
        buf: Vec::with_capacity(size + 64),
    })
}

impl Conn for WsConn {
    async fn recv(&mut self, out: &mut Vec<Msg>) -> anyhow::Result<()> {
        match self.ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let b = t.as_bytes();
                match self.proto {
                    Proto::SocketIo => {
                        if b.starts_with(b"42") {
                            out.extend(decode_text(b));
                        } else if b == b"2" {
                            self.ws.send(Message::text("3")).await?;
                        } else if b.starts_with(b"41") || b.starts_with(b"44") {
                            self.errors += 1;
                            bail!("socket.io: {}", String::from_utf8_lossy(b));
                        }
                    }
                    Proto::Pusher => {
                        if contains(b, b"\"client-m\"") {
                            out.extend(decode_text(b));
                        } else if self.ping(b).await? {
                        } else if contains(b, b"\"pusher:error\"") {
                            if self.errors == 0 {
                                eprintln!("pusher error: {}", String::from_utf8_lossy(b));
                            }
                            self.errors += 1;
                        }
                    }
                }
                Ok(())
            }
            Some(Ok(Message::Close(c))) => bail!("closed by the server: {c:?}"),
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(e.into()),
            None => bail!("connection closed"),
        }
    }

    async fn send(&mut self, to: &str, m: Msg) -> anyhow::Result<()> {
        self.buf.clear();
        match self.proto {
            Proto::SocketIo => {
                self.buf.extend_from_slice(b"42[\"to\",\"");
                self.buf.extend_from_slice(to.as_bytes());
                self.buf.extend_from_slice(b"\",\"");
                encode_text(self.size, m, &mut self.buf);
                self.buf.extend_from_slice(b"\"]");
            }
            Proto::Pusher => {
                self.buf
                    .extend_from_slice(br#"{"event":"client-m","channel":""#);
                self.buf.extend_from_slice(to.as_bytes());
                self.buf.extend_from_slice(br#"","data":""#);
                encode_text(self.size, m, &mut self.buf);
                self.buf.extend_from_slice(br#""}"#);
            }
        }
        let msg = self.text();
        self.ws.feed(msg).await?;
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        self.ws.flush().await?;
        Ok(())
    }

    fn errors(&self) -> u64 {
        self.errors
    }
}

/// Socket.IO servers (Node `socket.io` or socketioxide): rooms and the `to` relay.
pub struct SocketIo {
    /// `ws://host:port`
    pub url: String,
    pub size: usize,
}

impl SocketIo {
    /// Connected to the default namespace and joined to `room` (acknowledged).
    async fn joined(&self, room: Option<&str>) -> anyhow::Result<WsConn> {
        let url = format!("{}/socket.io/?EIO=4&transport=websocket", self.url);
        let mut c = connect(&url, Proto::SocketIo, self.size).await?;
        let open = c.next_text().await?;
        if !open.starts_with('0') {
            bail!("socket.io: expected an open packet, got {open:?}");
        }
        c.ws.send(Message::text("40")).await?;
        let ok = c.next_text().await?;
        if !ok.starts_with("40") {
            bail!("socket.io: namespace connect refused: {ok:?}");
        }
        if let Some(room) = room {
            c.ws.send(Message::text(format!("421[\"join\",\"{room}\"]")))
                .await?;
            loop {
                let t = c.next_text().await?;
                if t.starts_with("431[") {
                    break;
                }
            }
        }
        Ok(c)
    }
}

impl Peer for SocketIo {
    type C = WsConn;

    async fn subscriber(&self, _i: u32, channel: &str) -> anyhow::Result<WsConn> {
        self.joined(Some(channel)).await
    }

    async fn publisher(&self, channel: &str) -> anyhow::Result<(WsConn, String)> {
        Ok((self.joined(None).await?, channel.to_string()))
    }

    async fn p2p_side(&self, i: u32) -> anyhow::Result<(WsConn, String)> {
        Ok((self.joined(Some(&p2p_user(i))).await?, p2p_user(i ^ 1)))
    }
}

/// A Pusher-protocol server (Sockudo).
pub struct Pusher {
    /// `ws://host:port`
    pub url: String,
    pub key: String,
    pub secret: String,
    pub size: usize,
}

impl Pusher {
    /// Connected and subscribed to the private channel `channel`.
    async fn subscribed(&self, channel: &str) -> anyhow::Result<WsConn> {
        let url = format!(
            "{}/app/{}?protocol=7&client=compare-load&version=0.1",
            self.url, self.key
        );
        let mut c = connect(&url, Proto::Pusher, self.size).await?;
        let socket_id = loop {
            let t = c.next_text().await?;
            let v: serde_json::Value = serde_json::from_str(&t)?;
            match v["event"].as_str() {
                Some("pusher:connection_established") => {
                    let data: serde_json::Value =
                        serde_json::from_str(v["data"].as_str().context("data")?)?;
                    break data["socket_id"].as_str().context("socket_id")?.to_string();
                }
                Some("pusher:error") => bail!("pusher: {t}"),
                _ => {}
            }
        };
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.secret.as_bytes());
        let tag = ring::hmac::sign(&key, format!("{socket_id}:{channel}").as_bytes());
        let sig: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let sub = serde_json::json!({
            "event": "pusher:subscribe",
            "data": { "auth": format!("{}:{sig}", self.key), "channel": channel },
        });
        c.ws.send(Message::text(sub.to_string())).await?;
        loop {
            let t = c.next_text().await?;
            if t.contains("pusher_internal:subscription_succeeded") {
                break;
            }
            if t.contains("pusher:error") || t.contains("subscription_error") {
                bail!("pusher subscribe {channel}: {t}");
            }
        }
        Ok(c)
    }
}

impl Peer for Pusher {
    type C = WsConn;

    async fn subscriber(&self, _i: u32, channel: &str) -> anyhow::Result<WsConn> {
        self.subscribed(&format!("private-{channel}")).await
    }

    async fn publisher(&self, channel: &str) -> anyhow::Result<(WsConn, String)> {
        // Client events go only to channels the sender is subscribed to.
        let ch = format!("private-{channel}");
        Ok((self.subscribed(&ch).await?, ch))
    }

    async fn p2p_side(&self, i: u32) -> anyhow::Result<(WsConn, String)> {
        // One private channel per pair: a client event reaches the other side only.
        let ch = format!("private-pair-{}", i / 2);
        Ok((self.subscribed(&ch).await?, ch))
    }
}
