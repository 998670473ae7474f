//! Framing: a WebSocket binary frame carries one or more protobuf messages, each
//! prefixed by its length as a varint. Encoding appends to a buffer so a writer can
//! put everything queued into one frame; decoding iterates without copying payloads.

use bytes::{Buf, Bytes, BytesMut};
use prost::Message;

/// A frame that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame holds no message at all.
    #[error("empty frame")]
    Empty,
    /// A length prefix or message body is truncated or not valid protobuf.
    #[error("malformed message in frame: {0}")]
    Malformed(String),
    /// More messages in one frame than the receiver accepts.
    #[error("too many messages in one frame (limit {0})")]
    TooManyMessages(usize),
}

/// Appends `msg` with its varint length prefix to `buf`.
pub fn encode_into<M: Message>(msg: &M, buf: &mut BytesMut) {
    buf.reserve(msg.encoded_len() + 5);
    // Encoding into a BytesMut only fails for lack of capacity, which BytesMut grows.
    let _ = msg.encode_length_delimited(buf);
}

/// Encodes one message as a stand-alone length-delimited chunk, ready to be queued on
/// any number of connections (encode once, share the `Bytes`).
pub fn encode<M: Message>(msg: &M) -> Bytes {
    let mut buf = BytesMut::with_capacity(msg.encoded_len() + 5);
    encode_into(msg, &mut buf);
    buf.freeze()
}

/// Iterates over the messages of one frame. Stops at the first error, which it yields.
pub struct FrameDecoder<M> {
    buf: Bytes,
    remaining_messages: usize,
    max_messages: usize,
    failed: bool,
    _marker: std::marker::PhantomData<M>,
}

impl<M: Message + Default> FrameDecoder<M> {
    /// Decodes `frame`, accepting at most `max_messages` messages in it.
    pub fn new(frame: Bytes, max_messages: usize) -> Self {
        FrameDecoder {
            buf: frame,
            remaining_messages: max_messages,
            max_messages,
            failed: false,
            _marker: std::marker::PhantomData,
        }
    }
}

impl<M: Message + Default> Iterator for FrameDecoder<M> {
    type Item = Result<M, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || !self.buf.has_remaining() {
            return None;
        }
        if self.remaining_messages == 0 {
            self.failed = true;
            return Some(Err(FrameError::TooManyMessages(self.max_messages)));
        }
        self.remaining_messages -= 1;
        match M::decode_length_delimited(&mut self.buf) {
            Ok(m) => Some(Ok(m)),
            Err(e) => {
                self.failed = true;
                Some(Err(FrameError::Malformed(e.to_string())))
            }
        }
    }
}

/// Decodes every message of a frame, or the first error. An empty frame is an error.
pub fn decode_all<M: Message + Default>(
    frame: Bytes,
    max_messages: usize,
) -> Result<Vec<M>, FrameError> {
    if frame.is_empty() {
        return Err(FrameError::Empty);
    }
    FrameDecoder::new(frame, max_messages).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{ClientMessage, Heartbeat, PublishRequest, client_message::Body};

    fn hb(id: u32) -> ClientMessage {
        ClientMessage {
            id,
            body: Some(Body::Heartbeat(Heartbeat {})),
        }
    }

    #[test]
    fn several_messages_in_one_frame_round_trip() {
        let mut buf = BytesMut::new();
        encode_into(&hb(1), &mut buf);
        let publish = ClientMessage {
            id: 2,
            body: Some(Body::Publish(PublishRequest {
                channel_name: "c".into(),
                payload: Bytes::from_static(b"hello"),
                ..Default::default()
            })),
        };
        encode_into(&publish, &mut buf);
        encode_into(&hb(3), &mut buf);
        let msgs: Vec<ClientMessage> = decode_all(buf.freeze(), 16).expect("decodes");
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[1], publish);
    }

    #[test]
    fn truncated_and_garbage_frames_are_errors_not_panics() {
        let full = encode(&hb(7));
        for cut in 1..full.len() {
            let r = decode_all::<ClientMessage>(full.slice(..cut), 16);
            assert!(r.is_err(), "cut at {cut}");
        }
        assert_eq!(
            decode_all::<ClientMessage>(Bytes::new(), 16),
            Err(FrameError::Empty)
        );
        assert!(decode_all::<ClientMessage>(Bytes::from_static(&[0xff; 12]), 16).is_err());
    }

    #[test]
    fn message_count_is_bounded() {
        let mut buf = BytesMut::new();
        for i in 0..5 {
            encode_into(&hb(i), &mut buf);
        }
        assert_eq!(
            decode_all::<ClientMessage>(buf.freeze(), 4),
            Err(FrameError::TooManyMessages(4))
        );
    }
}
