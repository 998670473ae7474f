//! Primitive encodings of token.md §3: little-endian `u16`/`u32`/`i16`, length-prefixed
//! `bytes`/`string` and the `privilege_map`. The reader checks every length against the
//! remaining input before reading (T56); the writer refuses lengths that do not fit a `u16`.

use std::collections::BTreeMap;

use crate::error::{BuildError, TokenError};

/// A cursor over untrusted bytes; every read either succeeds or returns `Malformed`.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        let (head, tail) = self.rest.split_at_checked(n).ok_or(TokenError::Malformed)?;
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TokenError> {
        let head = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }

    /// A little-endian `u16`.
    pub(crate) fn u16(&mut self) -> Result<u16, TokenError> {
        self.array().map(u16::from_le_bytes)
    }

    /// A little-endian `u32`.
    pub(crate) fn u32(&mut self) -> Result<u32, TokenError> {
        self.array().map(u32::from_le_bytes)
    }

    /// A little-endian two's complement `i16`.
    pub(crate) fn i16(&mut self) -> Result<i16, TokenError> {
        self.array().map(i16::from_le_bytes)
    }

    /// A `bytes` field: `u16` length, then that many bytes.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], TokenError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A `string` field; content that is not UTF-8 is malformed (no conforming builder
    /// writes it, and lossy decoding would break byte-wise comparison, T60).
    pub(crate) fn string(&mut self) -> Result<String, TokenError> {
        let raw = self.bytes()?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| TokenError::Malformed)
    }

    /// A `privilege_map`; any order is accepted and a repeated id keeps its last value (T4).
    pub(crate) fn privilege_map(&mut self) -> Result<BTreeMap<u16, u32>, TokenError> {
        let count = self.u16()?;
        let mut map = BTreeMap::new();
        for _ in 0..count {
            let id = self.u16()?;
            let value = self.u32()?;
            map.insert(id, value);
        }
        Ok(map)
    }
}

/// An append-only encoder for the token payload.
#[derive(Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// The bytes written so far.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Appends raw bytes without a length prefix.
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Appends a little-endian `u16`.
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a little-endian `u32`.
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a little-endian `i16`.
    pub(crate) fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a count as `u16`, refusing counts above 65,535.
    pub(crate) fn count(&mut self, n: usize, what: &'static str) -> Result<(), BuildError> {
        let n = u16::try_from(n).map_err(|_| BuildError::TooMany(what))?;
        self.u16(n);
        Ok(())
    }

    /// Appends a `bytes` field (T3: at most 65,535 bytes).
    pub(crate) fn bytes(&mut self, v: &[u8], field: &'static str) -> Result<(), BuildError> {
        let len = u16::try_from(v.len()).map_err(|_| BuildError::FieldTooLong(field))?;
        self.u16(len);
        self.raw(v);
        Ok(())
    }

    /// Appends a `string` field.
    pub(crate) fn string(&mut self, v: &str, field: &'static str) -> Result<(), BuildError> {
        self.bytes(v.as_bytes(), field)
    }

    /// Appends a `privilege_map` in ascending id order (T4).
    pub(crate) fn privilege_map(&mut self, map: &BTreeMap<u16, u32>) -> Result<(), BuildError> {
        self.count(map.len(), "privileges")?;
        for (&id, &value) in map {
            self.u16(id);
            self.u32(value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t56_short_reads_are_malformed_not_panics() {
        assert_eq!(Reader::new(&[1]).u16(), Err(TokenError::Malformed));
        assert_eq!(Reader::new(&[1, 2, 3]).u32(), Err(TokenError::Malformed));
        assert_eq!(
            Reader::new(&[5, 0, b'a']).bytes(),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            Reader::new(&[2, 0, 1, 0]).privilege_map(),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn t4_privilege_map_repeated_id_keeps_last_value() {
        let bytes = [2, 0, 1, 0, 10, 0, 0, 0, 1, 0, 20, 0, 0, 0];
        let map = Reader::new(&bytes).privilege_map().unwrap();
        assert_eq!(map.into_iter().collect::<Vec<_>>(), vec![(1, 20)]);
    }

    #[test]
    fn t3_writer_refuses_fields_over_u16() {
        let long = "x".repeat(65_536);
        assert_eq!(
            Writer::default().string(&long, "user_id"),
            Err(BuildError::FieldTooLong("user_id"))
        );
        assert!(Writer::default().string(&long[..65_535], "user_id").is_ok());
    }

    #[test]
    fn section3_primitives_are_little_endian() {
        let mut w = Writer::default();
        w.u16(0x0102);
        w.u32(0x0304_0506);
        w.i16(-2);
        assert_eq!(w.into_bytes(), [2, 1, 6, 5, 4, 3, 0xfe, 0xff]);
    }
}
