//! The token container: [`AccessToken`] parsing (T35–T38, T56–T58), the signature
//! computation (T12–T15), and the zlib + base64 envelope (T16–T19).

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::codec::{Reader, Writer};
use crate::error::TokenError;
use crate::ids::VERSION;
use crate::service::Service;

/// The largest decompressed payload a parser accepts (T37: 64 KiB).
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024;

/// The longest token string a parser looks at. A 64 KiB payload stored without any
/// compression is about 87.5 KiB of base64, so nothing valid is longer; refusing longer
/// strings up front keeps the work per token bounded.
pub const MAX_TOKEN_LEN: usize = 128 * 1024;

/// Standard alphabet, accepting input with or without `=` padding (T19).
const DECODER: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `message` under `key`.
fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    mac(key, message).finalize().into_bytes().into()
}

fn mac(key: &[u8], message: &[u8]) -> HmacSha256 {
    // HMAC is defined for keys of every length, so this constructor cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(message);
    m
}

/// The derived signing key (T12, T13):
/// `HMAC(u32le(salt), HMAC(u32le(issue_ts), certificate text))`.
pub(crate) fn signing_key(app_certificate: &str, issue_ts: u32, salt: u32) -> [u8; 32] {
    let k1 = hmac(&issue_ts.to_le_bytes(), app_certificate.as_bytes());
    hmac(&salt.to_le_bytes(), &k1)
}

/// The signature of `signing_info` under the key derived from the certificate (T14).
pub(crate) fn sign(
    app_certificate: &str,
    issue_ts: u32,
    salt: u32,
    signing_info: &[u8],
) -> [u8; 32] {
    hmac(&signing_key(app_certificate, issue_ts, salt), signing_info)
}

/// `u16` length-prefixed signature followed by the signing info: the decompressed payload.
pub(crate) fn payload(signature: &[u8], signing_info: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    // A parsed signature always fits a u16 length and a built one is 32 bytes; only a
    // hand-made AccessToken could hold a longer one, which is cut to fit.
    let len = u16::try_from(signature.len()).unwrap_or(u16::MAX);
    w.u16(len);
    w.raw(&signature[..usize::from(len)]);
    w.raw(signing_info);
    w.into_bytes()
}

/// `007` + standard padded base64 of the zlib-compressed (default level) payload (T1, T16, T18).
pub(crate) fn encode(payload: &[u8]) -> String {
    use flate2::{Compression, write::ZlibEncoder};
    use std::io::Write;
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail.
    let compressed = enc
        .write_all(payload)
        .and_then(|()| enc.finish())
        .unwrap_or_default();
    format!("{VERSION}{}", general_purpose::STANDARD.encode(compressed))
}

/// Decompresses a zlib stream (T16, T17), refusing output above [`MAX_PAYLOAD_LEN`] (T37).
fn inflate(compressed: &[u8]) -> Result<Vec<u8>, TokenError> {
    let decoder = flate2::bufread::ZlibDecoder::new(compressed);
    let mut out = Vec::new();
    decoder
        .take(MAX_PAYLOAD_LEN as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| TokenError::Malformed)?;
    if out.len() > MAX_PAYLOAD_LEN {
        return Err(TokenError::Malformed);
    }
    Ok(out)
}

/// A parsed AccessToken2, not yet verified: nothing in it is trustworthy until
/// [`AccessToken::signature_valid`] returns true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The App ID the token claims (T39 compares it with the session's).
    pub app_id: String,
    /// Issue time, seconds since the Unix epoch.
    pub issue_ts: u32,
    /// Lifetime in seconds from `issue_ts` (T23, T27).
    pub expire: u32,
    /// The salt mixed into the signing key (T13).
    pub salt: u32,
    /// The services in token order, up to the first unknown type (T57).
    pub services: Vec<Service>,
    /// The stored signature (32 bytes in a well-formed token, T15).
    pub signature: Vec<u8>,
    /// Every payload byte after the signature field: what the signature covers (T5, T58).
    pub signing_info: Vec<u8>,
}

impl AccessToken {
    /// Parses a token string (T35–T38): `UnsupportedVersion` for another prefix,
    /// `Malformed` for anything else that does not decode. Services of an unknown type end
    /// the service list (T57); bytes after the last service are ignored (T58).
    pub fn parse(token: &str) -> Result<AccessToken, TokenError> {
        if token.chars().take(VERSION.len()).count() < VERSION.len() {
            return Err(TokenError::Malformed);
        }
        let Some(body) = token.strip_prefix(VERSION) else {
            return Err(TokenError::UnsupportedVersion);
        };
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let compressed = DECODER.decode(body).map_err(|_| TokenError::Malformed)?;
        let payload = inflate(&compressed)?;
        Self::from_payload(&payload)
    }

    /// Parses a decompressed payload (token.md §4, T38).
    pub fn from_payload(payload: &[u8]) -> Result<AccessToken, TokenError> {
        let mut r = Reader::new(payload);
        let signature = r.bytes()?.to_vec();
        let signing_info = r.rest().to_vec();
        let app_id = r.string()?;
        let issue_ts = r.u32()?;
        let expire = r.u32()?;
        let salt = r.u32()?;
        let service_count = r.u16()?;
        let mut services = Vec::new();
        for _ in 0..service_count {
            match Service::read(&mut r)? {
                Some(service) => services.push(service),
                None => break,
            }
        }
        Ok(AccessToken {
            app_id,
            issue_ts,
            expire,
            salt,
            services,
            signature,
            signing_info,
        })
    }

    /// When the token expires (T27): `issue_ts + expire`, seconds since the epoch.
    pub fn expires_at(&self) -> u64 {
        u64::from(self.issue_ts) + u64::from(self.expire)
    }

    /// The signing key derived from `app_certificate` (T12, T13).
    pub fn signing_key(&self, app_certificate: &str) -> [u8; 32] {
        signing_key(app_certificate, self.issue_ts, self.salt)
    }

    /// The signature this token should carry under `app_certificate` (T14).
    pub fn expected_signature(&self, app_certificate: &str) -> [u8; 32] {
        sign(
            app_certificate,
            self.issue_ts,
            self.salt,
            &self.signing_info,
        )
    }

    /// Whether the stored signature is the one `app_certificate` gives, compared in
    /// constant time; a stored signature that is not 32 bytes long fails (T15).
    pub fn signature_valid(&self, app_certificate: &str) -> bool {
        mac(&self.signing_key(app_certificate), &self.signing_info)
            .verify_slice(&self.signature)
            .is_ok()
    }

    /// The decompressed payload: length-prefixed signature followed by the signing info,
    /// byte for byte as in the token.
    pub fn uncompressed(&self) -> Vec<u8> {
        payload(&self.signature, &self.signing_info)
    }

    /// The services of one type, in token order.
    pub fn services_of_type(&self, service_type: u16) -> impl Iterator<Item = &Service> {
        self.services
            .iter()
            .filter(move |s| s.service_type() == service_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t35_short_and_foreign_prefixes() {
        assert_eq!(AccessToken::parse(""), Err(TokenError::Malformed));
        assert_eq!(AccessToken::parse("00"), Err(TokenError::Malformed));
        assert_eq!(
            AccessToken::parse("006abc"),
            Err(TokenError::UnsupportedVersion)
        );
        assert_eq!(
            AccessToken::parse("00é"),
            Err(TokenError::UnsupportedVersion)
        );
        assert_eq!(AccessToken::parse("0é"), Err(TokenError::Malformed));
        assert_eq!(AccessToken::parse("007"), Err(TokenError::Malformed));
    }

    #[test]
    fn t36_bad_base64_is_malformed() {
        assert_eq!(AccessToken::parse("007!!!!"), Err(TokenError::Malformed));
        assert_eq!(AccessToken::parse("007eJ=x"), Err(TokenError::Malformed));
    }

    #[test]
    fn t19_padding_is_optional() {
        let payload = [32, 0];
        let token = encode(&payload);
        assert!(token.ends_with('='), "test needs a padded token: {token}");
        let unpadded = token.trim_end_matches('=');
        // Both decode to the same (truncated, hence malformed) payload: what matters is
        // that neither fails at the base64 step.
        assert_eq!(
            DECODER.decode(&token[3..]).unwrap(),
            DECODER.decode(&unpadded[3..]).unwrap()
        );
    }

    #[test]
    fn t37_payload_bound() {
        let ok = vec![0u8; MAX_PAYLOAD_LEN];
        assert_eq!(inflate(&zlib(&ok)).map(|v| v.len()), Ok(MAX_PAYLOAD_LEN));
        let big = vec![0u8; MAX_PAYLOAD_LEN + 1];
        assert_eq!(inflate(&zlib(&big)), Err(TokenError::Malformed));
    }

    #[test]
    fn t17_truncated_stream_and_bad_adler_are_malformed() {
        let z = zlib(b"hello hello hello");
        assert!(inflate(&z).is_ok());
        for cut in 0..z.len() {
            assert_eq!(
                inflate(&z[..cut]),
                Err(TokenError::Malformed),
                "cut at {cut}"
            );
        }
        let mut bad = z.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(inflate(&bad), Err(TokenError::Malformed));
    }

    #[test]
    fn t17_bytes_after_the_zlib_stream_are_ignored_like_the_reference() {
        let mut z = zlib(b"hello");
        z.extend_from_slice(b"garbage");
        assert_eq!(inflate(&z), Ok(b"hello".to_vec()));
    }

    #[test]
    fn t15_signature_of_wrong_length_fails() {
        let mut t = AccessToken {
            app_id: String::new(),
            issue_ts: 1,
            expire: 1,
            salt: 1,
            services: vec![],
            signature: vec![],
            signing_info: b"abc".to_vec(),
        };
        let good = t.expected_signature("cert");
        t.signature = good.to_vec();
        assert!(t.signature_valid("cert"));
        assert!(!t.signature_valid("other"));
        t.signature = good[..31].to_vec();
        assert!(!t.signature_valid("cert"));
        t.signature = [good.as_slice(), &[0]].concat();
        assert!(!t.signature_valid("cert"));
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        use flate2::{Compression, write::ZlibEncoder};
        use std::io::Write;
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }
}
