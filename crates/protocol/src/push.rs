//! The message push, encoded from borrowed fields. A push is the server's most frequent
//! message; the generated `MessagePush` needs owned strings (channel, publisher, topic,
//! custom type) built for every publication only to be copied into the encoding. This
//! writes the same bytes straight from borrowed fields; a test (and a property test)
//! hold it byte for byte to prost's encoding of the generated type.

use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

/// Field number of `ServerMessage.message` (the `MessagePush` arm of its body).
const SERVER_MESSAGE_PUSH: u32 = 100;

/// A `MessagePush` whose strings and payload are borrowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagePushRef<'a> {
    /// `ChannelType` value.
    pub channel_type: i32,
    /// Channel name (for USER messages the publisher's user id).
    pub channel_name: &'a str,
    /// Topic of a topic message; empty otherwise.
    pub topic_name: &'a str,
    /// Publisher's user id.
    pub publisher: &'a str,
    /// `MessageType` value.
    pub message_type: i32,
    /// Custom type; may be empty.
    pub custom_type: &'a str,
    /// Message payload.
    pub payload: &'a [u8],
    /// Server time of the publication, ms since the epoch.
    pub timestamp: u64,
    /// Stream position: epoch.
    pub epoch: u64,
    /// Stream position: offset.
    pub offset: u64,
    /// Topic messages: the publisher's media-calibration timestamp, ms (0 = none).
    pub send_ts: u64,
}

fn varint_field_len(tag: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(v)
    }
}

fn bytes_field_len(tag: u32, v: &[u8]) -> usize {
    if v.is_empty() {
        0
    } else {
        key_len(tag) + encoded_len_varint(v.len() as u64) + v.len()
    }
}

fn put_varint_field(tag: u32, v: u64, buf: &mut BytesMut) {
    if v != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(v, buf);
    }
}

fn put_bytes_field(tag: u32, v: &[u8], buf: &mut BytesMut) {
    if !v.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(v.len() as u64, buf);
        buf.put_slice(v);
    }
}

impl MessagePushRef<'_> {
    fn position_len(&self) -> usize {
        varint_field_len(1, self.epoch) + varint_field_len(2, self.offset)
    }

    fn body_len(&self) -> usize {
        // Enum values are encoded as sign-extended varints, as prost does for int32.
        let position = self.position_len();
        varint_field_len(1, self.channel_type as i64 as u64)
            + bytes_field_len(2, self.channel_name.as_bytes())
            + bytes_field_len(3, self.topic_name.as_bytes())
            + bytes_field_len(4, self.publisher.as_bytes())
            + varint_field_len(5, self.message_type as i64 as u64)
            + bytes_field_len(6, self.custom_type.as_bytes())
            + bytes_field_len(7, self.payload)
            + varint_field_len(8, self.timestamp)
            + key_len(9)
            + encoded_len_varint(position as u64)
            + position
            + varint_field_len(10, self.send_ts)
    }

    /// The push as `ServerMessage { id: 0, body: message }`, length-prefixed: the same
    /// chunk as `frame::encode` of the generated message.
    pub fn encode(&self) -> Bytes {
        let body = self.body_len();
        let message = key_len(SERVER_MESSAGE_PUSH) + encoded_len_varint(body as u64) + body;
        let mut buf = BytesMut::with_capacity(encoded_len_varint(message as u64) + message);
        encode_varint(message as u64, &mut buf);
        encode_key(SERVER_MESSAGE_PUSH, WireType::LengthDelimited, &mut buf);
        encode_varint(body as u64, &mut buf);
        put_varint_field(1, self.channel_type as i64 as u64, &mut buf);
        put_bytes_field(2, self.channel_name.as_bytes(), &mut buf);
        put_bytes_field(3, self.topic_name.as_bytes(), &mut buf);
        put_bytes_field(4, self.publisher.as_bytes(), &mut buf);
        put_varint_field(5, self.message_type as i64 as u64, &mut buf);
        put_bytes_field(6, self.custom_type.as_bytes(), &mut buf);
        put_bytes_field(7, self.payload, &mut buf);
        put_varint_field(8, self.timestamp, &mut buf);
        encode_key(9, WireType::LengthDelimited, &mut buf);
        encode_varint(self.position_len() as u64, &mut buf);
        put_varint_field(1, self.epoch, &mut buf);
        put_varint_field(2, self.offset, &mut buf);
        put_varint_field(10, self.send_ts, &mut buf);
        buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{self, server_message::Body};
    use proptest::prelude::*;

    fn generated(p: &MessagePushRef<'_>) -> Bytes {
        crate::frame::encode(&pb::ServerMessage {
            id: 0,
            body: Some(Body::Message(pb::MessagePush {
                channel_type: p.channel_type,
                channel_name: p.channel_name.into(),
                topic_name: p.topic_name.into(),
                publisher: p.publisher.into(),
                message_type: p.message_type,
                custom_type: p.custom_type.into(),
                payload: Bytes::copy_from_slice(p.payload),
                timestamp: p.timestamp,
                position: Some(pb::StreamPosition {
                    epoch: p.epoch,
                    offset: p.offset,
                }),
                send_ts: p.send_ts,
            })),
        })
    }

    #[test]
    fn same_bytes_as_the_generated_type_for_defaults_and_a_full_push() {
        let full = MessagePushRef {
            channel_type: 2,
            channel_name: "room-1",
            topic_name: "t",
            publisher: "alice",
            message_type: 1,
            custom_type: "chat",
            payload: &[7u8; 300],
            timestamp: 1_763_900_000_000,
            epoch: 42,
            offset: 9,
            send_ts: 5,
        };
        for p in [MessagePushRef::default(), full] {
            assert_eq!(p.encode(), generated(&p), "{p:?}");
        }
    }

    proptest! {
        #[test]
        fn same_bytes_as_the_generated_type(
            channel_type in -3i32..5,
            channel_name in "\\PC{0,20}",
            topic_name in "\\PC{0,5}",
            publisher in "\\PC{0,10}",
            message_type in -1i32..3,
            custom_type in "\\PC{0,5}",
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            timestamp in any::<u64>(),
            epoch in any::<u64>(),
            offset in prop_oneof![Just(0u64), any::<u64>()],
            send_ts in prop_oneof![Just(0u64), any::<u64>()],
        ) {
            let p = MessagePushRef {
                channel_type,
                channel_name: &channel_name,
                topic_name: &topic_name,
                publisher: &publisher,
                message_type,
                custom_type: &custom_type,
                payload: &payload,
                timestamp,
                epoch,
                offset,
                send_ts,
            };
            prop_assert_eq!(p.encode(), generated(&p));
        }
    }
}
