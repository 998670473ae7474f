//! Redis pub/sub with a minimal RESP3 client (one TCP connection per user): `HELLO 3`
//! so that one connection can both SUBSCRIBE and PUBLISH, PUBLISH pipelined (queued
//! and written out on flush, replies read as they come, never awaited one by one).

use crate::common::{decode_binary, encode_binary, Msg};
use crate::peer::{p2p_user, Conn, Peer};
use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub struct Redis {
    pub addr: String,
    pub size: usize,
}

impl Peer for Redis {
    type C = RedisConn;

    async fn subscriber(&self, _i: u32, channel: &str) -> anyhow::Result<RedisConn> {
        let mut c = RedisConn::connect(&self.addr, self.size).await?;
        c.subscribe(channel).await?;
        Ok(c)
    }

    async fn publisher(&self, channel: &str) -> anyhow::Result<(RedisConn, String)> {
        Ok((
            RedisConn::connect(&self.addr, self.size).await?,
            channel.to_string(),
        ))
    }

    async fn p2p_side(&self, i: u32) -> anyhow::Result<(RedisConn, String)> {
        let mut c = RedisConn::connect(&self.addr, self.size).await?;
        c.subscribe(&p2p_user(i)).await?;
        Ok((c, p2p_user(i ^ 1)))
    }
}

/// A leaf of a parsed RESP frame: the range of its bytes in the read buffer.
#[derive(Clone, Copy)]
struct Tok {
    start: usize,
    end: usize,
}

pub struct RedisConn {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    toks: Vec<Tok>,
    size: usize,
    errors: u64,
    /// PUBLISHes sent whose reply has not come yet.
    pending: u64,
    subscribed: bool,
}

impl RedisConn {
    async fn connect(addr: &str, size: usize) -> anyhow::Result<RedisConn> {
        let s = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to {addr}"))?;
        s.set_nodelay(true)?;
        let (rd, wr) = s.into_split();
        let mut c = RedisConn {
            rd,
            wr,
            rbuf: BytesMut::with_capacity(4096),
            wbuf: Vec::with_capacity(1024),
            toks: Vec::new(),
            size,
            errors: 0,
            pending: 0,
            subscribed: false,
        };
        c.command(&[b"HELLO", b"3"]);
        c.flush().await?;
        let mut sink = Vec::new();
        // The HELLO reply (a map) is the first frame.
        while c.frames(&mut sink)? == 0 {
            c.fill().await?;
        }
        if c.errors > 0 {
            bail!("HELLO 3 refused (Redis 6 or later is needed)");
        }
        Ok(c)
    }

    async fn subscribe(&mut self, channel: &str) -> anyhow::Result<()> {
        self.command(&[b"SUBSCRIBE", channel.as_bytes()]);
        self.flush().await?;
        let mut sink = Vec::new();
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.subscribed {
            tokio::time::timeout_at(until, self.recv(&mut sink))
                .await
                .context("no SUBSCRIBE confirmation in 10 s")??;
        }
        Ok(())
    }

    fn command(&mut self, args: &[&[u8]]) {
        use std::io::Write;
        let _ = write!(self.wbuf, "*{}\r\n", args.len());
        for a in args {
            let _ = write!(self.wbuf, "${}\r\n", a.len());
            self.wbuf.extend_from_slice(a);
            self.wbuf.extend_from_slice(b"\r\n");
        }
    }

    /// Reads more bytes into the buffer.
    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.rd.read_buf(&mut self.rbuf).await? == 0 {
            bail!("connection closed by the server");
        }
        Ok(())
    }

    /// Handles every complete frame in the buffer; returns how many there were.
    fn frames(&mut self, out: &mut Vec<Msg>) -> anyhow::Result<usize> {
        let mut at = 0;
        let mut n = 0;
        while at < self.rbuf.len() {
            self.toks.clear();
            let top = self.rbuf[at];
            let Some(next) = parse(&self.rbuf, at, &mut self.toks, 0)? else {
                break;
            };
            n += 1;
            let buf = &self.rbuf[..];
            let bulk = |t: &Tok| &buf[t.start..t.end];
            match top {
                b'>' | b'*' if self.toks.len() >= 3 => match bulk(&self.toks[0]) {
                    b"message" => {
                        if let Some(m) = decode_binary(bulk(&self.toks[2])) {
                            out.push(m);
                        }
                    }
                    b"subscribe" => self.subscribed = true,
                    _ => {}
                },
                b':' => self.pending = self.pending.saturating_sub(1),
                b'-' | b'!' => {
                    if self.errors == 0 {
                        eprintln!("redis error: {}", String::from_utf8_lossy(&buf[at..next]));
                    }
                    self.errors += 1;
                    self.pending = self.pending.saturating_sub(1);
                }
                _ => {}
            }
            at = next;
        }
        self.rbuf.advance(at);
        Ok(n)
    }
}

fn int(line: &[u8]) -> anyhow::Result<i64> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .context("bad RESP length")
}

/// Parses one RESP2/RESP3 value at `pos`, pushing its leaves (strings, numbers) to
/// `toks`; `None` while incomplete.
fn parse(buf: &[u8], pos: usize, toks: &mut Vec<Tok>, depth: u32) -> anyhow::Result<Option<usize>> {
    if depth > 8 {
        bail!("RESP nesting too deep");
    }
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some(eol) = buf[pos + 1..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| pos + 1 + i)
    else {
        return Ok(None);
    };
    let line = &buf[pos + 1..eol];
    let next = eol + 2;
    match kind {
        b'$' | b'=' | b'!' => {
            let n = int(line)?;
            if n < 0 {
                toks.push(Tok {
                    start: next,
                    end: next,
                });
                return Ok(Some(next));
            }
            let end = next + n as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            toks.push(Tok { start: next, end });
            Ok(Some(end + 2))
        }
        b'*' | b'>' | b'~' | b'%' | b'|' => {
            let n = int(line)?.max(0) as usize;
            let n = if matches!(kind, b'%' | b'|') {
                2 * n
            } else {
                n
            };
            let mut p = next;
            for _ in 0..n {
                match parse(buf, p, toks, depth + 1)? {
                    Some(q) => p = q,
                    None => return Ok(None),
                }
            }
            if kind == b'|' {
                // Attributes precede the value they describe.
                return parse(buf, p, toks, depth + 1);
            }
            Ok(Some(p))
        }
        _ => {
            toks.push(Tok {
                start: pos + 1,
                end: eol,
            });
            Ok(Some(next))
        }
    }
}

impl Conn for RedisConn {
    async fn recv(&mut self, out: &mut Vec<Msg>) -> anyhow::Result<()> {
        if self.frames(out)? > 0 {
            return Ok(());
        }
        self.fill().await?;
        self.frames(out)?;
        Ok(())
    }

    async fn send(&mut self, to: &str, m: Msg) -> anyhow::Result<()> {
        use std::io::Write;
        let size = self.size.max(20);
        let _ = write!(
            self.wbuf,
            "*3\r\n$7\r\nPUBLISH\r\n${}\r\n{to}\r\n${size}\r\n",
            to.len()
        );
        encode_binary(size, m, &mut self.wbuf);
        self.wbuf.extend_from_slice(b"\r\n");
        self.pending += 1;
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        if !self.wbuf.is_empty() {
            self.wr.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    fn errors(&self) -> u64 {
        self.errors
    }
}
