//! WebSocket framing after the handshake (RFC 6455), server side: [`Reader`] turns the
//! client's masked frames into messages (fragments joined, control frames passed up,
//! every size bounded before it is buffered), and [`put_frame`] writes the header of an
//! unmasked server frame. Kept here rather than behind a WebSocket crate's sink so that
//! a push can be framed and written straight onto the socket's write half by whichever
//! task produced it (`outbound.rs`).

use bytes::{Buf, Bytes, BytesMut};
use std::cell::RefCell;
use tokio::io::{AsyncRead, ReadBuf};

/// Continuation frame.
const OP_CONTINUATION: u8 = 0x0;
/// Text frame.
const OP_TEXT: u8 = 0x1;
/// Binary frame.
pub(crate) const OP_BINARY: u8 = 0x2;
/// Close frame.
pub(crate) const OP_CLOSE: u8 = 0x8;
/// Ping frame.
const OP_PING: u8 = 0x9;
/// Pong frame.
pub(crate) const OP_PONG: u8 = 0xA;

/// Bytes a read asks the socket for at least (through a per-thread buffer).
const READ_CHUNK: usize = 16 * 1024;

/// One message from the client.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A binary message (its fragments joined).
    Binary(Bytes),
    /// A text message (not part of the protocol; its content is not kept).
    Text,
    /// A ping with its payload, to be answered with a pong.
    Ping(Bytes),
    /// A pong.
    Pong,
    /// A close frame.
    Close,
}

/// Why reading ended.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// A frame or a message over the size limit.
    TooLarge {
        /// Its size in bytes (so far, for a fragmented message).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes that break the WebSocket protocol.
    Protocol(&'static str),
    /// The socket ended without a close frame, or failed.
    Gone,
}

/// Appends the header of one unmasked, final server frame of `len` payload bytes.
pub(crate) fn put_frame(buf: &mut Vec<u8>, opcode: u8, len: usize) {
    buf.push(0x80 | opcode);
    if len < 126 {
        buf.push(len as u8);
    } else if len <= usize::from(u16::MAX) {
        buf.push(126);
        buf.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        buf.push(127);
        buf.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Appends one whole control frame (`payload` at most 125 bytes).
pub(crate) fn put_control(buf: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    let payload = &payload[..payload.len().min(125)];
    put_frame(buf, opcode, payload.len());
    buf.extend_from_slice(payload);
}

thread_local! {
    /// The buffer every read on this thread goes through, so that an idle connection
    /// holds no read buffer of its own: bytes are copied into the connection's buffer
    /// only when they arrived.
    static READ_SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// Reads client frames from `io`.
pub(crate) struct Reader<R> {
    io: R,
    /// Bytes read and not yet consumed; empty (no allocation) between messages.
    buf: BytesMut,
    /// The fragments of a message in progress (opcode of its first frame, bytes so far);
    /// boxed, since it is rare and the reader lives as long as the connection.
    partial: Option<Box<(u8, BytesMut)>>,
    max: usize,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// A reader of messages of at most `max` bytes from `io`.
    pub fn new(io: R, max: usize) -> Self {
        Reader {
            io,
            buf: BytesMut::new(),
            partial: None,
            max,
        }
    }

    /// The next message. Cancel-safe: whatever was read stays buffered.
    pub async fn next(&mut self) -> Result<Incoming, ReadError> {
        loop {
            if let Some(msg) = self.parse()? {
                return Ok(msg);
            }
            let n = std::future::poll_fn(|cx| self.poll_fill(cx)).await?;
            if n == 0 {
                return Err(ReadError::Gone);
            }
        }
    }

    /// Reads what the socket has into `buf`, through the thread's scratch buffer.
    fn poll_fill(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<usize, ReadError>> {
        READ_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut rb = ReadBuf::new(&mut scratch[..]);
            match std::pin::Pin::new(&mut self.io).poll_read(cx, &mut rb) {
                std::task::Poll::Ready(Ok(())) => {
                    let got = rb.filled();
                    self.buf.extend_from_slice(got);
                    std::task::Poll::Ready(Ok(got.len()))
                }
                std::task::Poll::Ready(Err(_)) => std::task::Poll::Ready(Err(ReadError::Gone)),
                std::task::Poll::Pending => std::task::Poll::Pending,
            }
        })
    }

    /// One message out of the buffered bytes, if they hold a whole one.
    fn parse(&mut self) -> Result<Option<Incoming>, ReadError> {
        loop {
            let b = &self.buf[..];
            let have = b.len();
            if have < 2 {
                return Ok(None);
            }
            let fin = b[0] & 0x80 != 0;
            if b[0] & 0x70 != 0 {
                return Err(ReadError::Protocol("reserved bits set in a frame header"));
            }
            let opcode = b[0] & 0x0f;
            if b[1] & 0x80 == 0 {
                return Err(ReadError::Protocol("unmasked frame from the client"));
            }
            let (len, at) = match b[1] & 0x7f {
                126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
                127 if b.len() >= 10 => {
                    let mut n = [0; 8];
                    n.copy_from_slice(&b[2..10]);
                    (u64::from_be_bytes(n), 10)
                }
                126 | 127 => return Ok(None),
                n => (u64::from(n), 2),
            };
            let control = opcode & 0x8 != 0;
            if control && (!fin || len > 125) {
                return Err(ReadError::Protocol(
                    "control frame fragmented or over 125 bytes",
                ));
            }
            let so_far = self.partial.as_ref().map_or(0, |p| p.1.len());
            let size = usize::try_from(len).unwrap_or(usize::MAX);
            if size > self.max || (!control && so_far.saturating_add(size) > self.max) {
                let size = if control {
                    size
                } else {
                    so_far.saturating_add(size)
                };
                return Err(ReadError::TooLarge {
                    size,
                    max: self.max,
                });
            }
            let header = at + 4;
            if have < header + size {
                // Room for the whole frame (bounded by the limit just checked).
                self.buf.reserve(header + size - have);
                return Ok(None);
            }
            let mask = [b[at], b[at + 1], b[at + 2], b[at + 3]];
            self.buf.advance(header);
            let mut payload = self.buf.split_to(size);
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= mask[i & 3];
            }
            if self.buf.is_empty() {
                // Nothing buffered: let the allocation go with the payload.
                self.buf = BytesMut::new();
            }
            match opcode {
                OP_PING => return Ok(Some(Incoming::Ping(payload.freeze()))),
                OP_PONG => return Ok(Some(Incoming::Pong)),
                OP_CLOSE => return Ok(Some(Incoming::Close)),
                OP_TEXT | OP_BINARY => {
                    if self.partial.is_some() {
                        return Err(ReadError::Protocol(
                            "a new message before the last one's final fragment",
                        ));
                    }
                    if fin {
                        return Ok(Some(if opcode == OP_TEXT {
                            Incoming::Text
                        } else {
                            Incoming::Binary(payload.freeze())
                        }));
                    }
                    self.partial = Some(Box::new((opcode, payload)));
                }
                OP_CONTINUATION => {
                    let Some(mut partial) = self.partial.take() else {
                        return Err(ReadError::Protocol("a continuation frame with no message"));
                    };
                    partial.1.extend_from_slice(&payload);
                    if !fin {
                        self.partial = Some(partial);
                        continue;
                    }
                    let (first, joined) = *partial;
                    return Ok(Some(if first == OP_TEXT {
                        Incoming::Text
                    } else {
                        Incoming::Binary(joined.freeze())
                    }));
                }
                _ => return Err(ReadError::Protocol("unknown frame opcode")),
            }
        }
    }
}
