//! Key names and the compact encodings shared with the Lua scripts: a channel's
//! "cref" (`<len(app)>:<app><kind digit><name>`), its hash-tagged key base
//! (`<prefix>{<cref>}`, which is also its pub/sub channel name) and the publication body.

use bytes::Bytes;
use std::sync::Arc;
use switchboard_engine::{
    ChannelKey, ChannelKind, EventKind, MessageKind, Publication, shared_str,
};

/// The kind digit; digits sort like [`ChannelKind`], so listings sorted by cref are sorted
/// by kind then name.
fn kind_digit(kind: ChannelKind) -> char {
    match kind {
        ChannelKind::Message => '0',
        ChannelKind::User => '1',
        ChannelKind::Stream => '2',
        ChannelKind::UserMetadata => '3',
    }
}

fn kind_of(digit: u8) -> Option<ChannelKind> {
    match digit {
        b'0' => Some(ChannelKind::Message),
        b'1' => Some(ChannelKind::User),
        b'2' => Some(ChannelKind::Stream),
        b'3' => Some(ChannelKind::UserMetadata),
        _ => None,
    }
}

/// `<len>:<s>`.
pub(crate) fn len_prefixed(s: &str) -> String {
    format!("{}:{s}", s.len())
}

/// The channel reference used inside scripts and indexes.
pub(crate) fn cref(key: &ChannelKey) -> String {
    format!(
        "{}{}{}",
        len_prefixed(&key.app),
        kind_digit(key.kind),
        key.name
    )
}

/// Splits `<len>:<head><rest>`.
pub(crate) fn split_len(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = s.iter().position(|b| *b == b':')?;
    let n: usize = std::str::from_utf8(&s[..colon]).ok()?.parse().ok()?;
    let rest = &s[colon + 1..];
    (rest.len() >= n).then(|| rest.split_at(n))
}

/// The channel a cref names.
pub(crate) fn parse_cref(s: &[u8]) -> Option<ChannelKey> {
    let (app, rest) = split_len(s)?;
    let (&digit, name) = rest.split_first()?;
    Some(ChannelKey::new(
        std::str::from_utf8(app).ok()?,
        kind_of(digit)?,
        std::str::from_utf8(name).ok()?,
    ))
}

/// The key base (and pub/sub channel) of a channel under `prefix`.
pub(crate) fn base(prefix: &str, key: &ChannelKey) -> String {
    format!("{prefix}{{{}}}", cref(key))
}

fn kind_byte(kind: MessageKind) -> u8 {
    match kind {
        MessageKind::Text => 0,
        MessageKind::Binary => 1,
        MessageKind::Event(EventKind::Topic) => 2,
        MessageKind::Event(EventKind::Presence) => 3,
        MessageKind::Event(EventKind::Storage) => 4,
        MessageKind::Event(EventKind::Lock) => 5,
    }
}

fn message_kind(b: u8) -> Option<MessageKind> {
    Some(match b {
        0 => MessageKind::Text,
        1 => MessageKind::Binary,
        2 => MessageKind::Event(EventKind::Topic),
        3 => MessageKind::Event(EventKind::Presence),
        4 => MessageKind::Event(EventKind::Storage),
        5 => MessageKind::Event(EventKind::Lock),
        _ => return None,
    })
}

/// A publication without its position: kind, send_ts, timestamp, three length-prefixed
/// strings (publisher, custom type, topic), then the payload.
pub(crate) fn encode_body(p: &Publication) -> Vec<u8> {
    let strs = [&*p.publisher, &*p.custom_type, &*p.topic];
    let mut out =
        Vec::with_capacity(17 + 12 + strs.iter().map(|s| s.len()).sum::<usize>() + p.payload.len());
    out.push(kind_byte(p.kind));
    out.extend_from_slice(&p.send_ts.to_be_bytes());
    out.extend_from_slice(&p.timestamp_ms.to_be_bytes());
    for s in strs {
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(&p.payload);
    out
}

/// The inverse of [`encode_body`]; the position is left at its default.
pub(crate) fn decode_body(b: &[u8]) -> Option<Publication> {
    let kind = message_kind(*b.first()?)?;
    let u64_at =
        |i: usize| -> Option<u64> { Some(u64::from_be_bytes(b.get(i..i + 8)?.try_into().ok()?)) };
    let send_ts = u64_at(1)?;
    let timestamp_ms = u64_at(9)?;
    let mut at = 17;
    let mut strs: [Arc<str>; 3] = [shared_str(""), shared_str(""), shared_str("")];
    for s in &mut strs {
        let n = u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize;
        at += 4;
        *s = shared_str(std::str::from_utf8(b.get(at..at + n)?).ok()?);
        at += n;
    }
    let [publisher, custom_type, topic] = strs;
    Some(Publication {
        publisher,
        kind,
        custom_type,
        payload: Bytes::copy_from_slice(&b[at..]),
        topic,
        send_ts,
        timestamp_ms,
        position: Default::default(),
    })
}

/// Splits `<decimal>,<rest>`.
pub(crate) fn split_num(b: &[u8]) -> Option<(u64, &[u8])> {
    let comma = b.iter().position(|c| *c == b',')?;
    let n = std::str::from_utf8(&b[..comma]).ok()?.parse().ok()?;
    Some((n, &b[comma + 1..]))
}

/// A recovery log entry `<offset>,<time ms>,<body>` under `epoch`.
pub(crate) fn decode_entry(epoch: u64, b: &[u8]) -> Option<Publication> {
    let (offset, rest) = split_num(b)?;
    let (_time, body) = split_num(rest)?;
    let mut p = decode_body(body)?;
    p.position = switchboard_engine::StreamPosition { epoch, offset };
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cref_round_trips_any_name() {
        for (app, kind, name) in [
            ("app", ChannelKind::Message, "room"),
            ("a:b", ChannelKind::Stream, "x}:{y"),
            ("", ChannelKind::UserMetadata, ""),
            ("12", ChannelKind::User, "3:4\n5"),
        ] {
            let k = ChannelKey::new(app, kind, name);
            assert_eq!(parse_cref(cref(&k).as_bytes()), Some(k));
        }
    }

    #[test]
    fn body_round_trips() {
        let p = Publication {
            publisher: "alice".into(),
            kind: MessageKind::Event(EventKind::Lock),
            custom_type: "ct".into(),
            payload: Bytes::from_static(b"\0,\xff payload"),
            topic: "t".into(),
            send_ts: 7,
            timestamp_ms: u64::MAX,
            position: Default::default(),
        };
        assert_eq!(decode_body(&encode_body(&p)), Some(p));
        assert_eq!(decode_body(b"\x09"), None, "bad kind");
        assert_eq!(decode_body(&[0; 20]), None, "truncated");
    }
}
