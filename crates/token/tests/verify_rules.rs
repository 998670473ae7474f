//! Rule-by-rule tests of building and verifying beyond the vectors: builder refusals and
//! ordering (T21, T22, T24, T25), expiry (T28, T30, T32, T34), verification order
//! (T37–T41), purpose checks (T43–T47, T50, T51), effective expiry (T53) and parser
//! leniency (T57–T60).

use base64::Engine;
use flate2::{Compression, write::ZlibEncoder};
use std::collections::BTreeMap;
use std::io::Write;
use switchboard_token::{
    AccessToken, BuildError, Credential, FieldValue, RtcRole, Service, TokenBuilder, TokenError,
    VerifyOptions, build_rtc_rtm_token, build_rtm_token, privilege, service_type, verify_login,
    verify_stream_join, verify_token,
};

const APP: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const CERT: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";
const OTHER_CERT: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const TS: u32 = 1_700_000_000;
const NOW: u64 = TS as u64 + 10;

fn opts() -> VerifyOptions {
    VerifyOptions::default()
}

fn build(expire: u32, services: Vec<Service>) -> String {
    let mut b = TokenBuilder::new(APP, CERT, expire).issue_ts(TS).salt(7);
    for s in services {
        b = b.add_service(s);
    }
    b.build().expect("build")
}

fn login(token: &str, user: &str, now: u64) -> Result<Credential, TokenError> {
    verify_login(token, APP, CERT, user, now, &opts())
}

fn join(token: &str, user: &str, channel: &str, now: u64) -> Result<Credential, TokenError> {
    verify_stream_join(token, APP, CERT, user, channel, now, &opts())
}

fn rtm(user: &str, privileges: &[(u16, u32)]) -> Service {
    Service::Rtm {
        user_id: user.into(),
        privileges: privileges.iter().copied().collect(),
    }
}

fn rtc(channel: &str, uid: &str, privileges: &[(u16, u32)]) -> Service {
    Service::Rtc {
        channel_name: channel.into(),
        uid: uid.into(),
        privileges: privileges.iter().copied().collect(),
    }
}

/// Signs arbitrary signing-info bytes with CERT and wraps them as a token (T5, T14, T16).
fn seal(signing_info: Vec<u8>, issue_ts: u32, salt: u32) -> String {
    let mut t = AccessToken {
        app_id: String::new(),
        issue_ts,
        expire: 0,
        salt,
        services: vec![],
        signature: vec![],
        signing_info,
    };
    t.signature = t.expected_signature(CERT).to_vec();
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(&t.uncompressed()).unwrap();
    format!(
        "007{}",
        base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap())
    )
}

/// Signing info header: app id, issue_ts, expire, salt, service count (token.md §4).
fn header(expire: u32, salt: u32, count: u16) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(APP.len() as u16).to_le_bytes());
    v.extend_from_slice(APP.as_bytes());
    v.extend_from_slice(&TS.to_le_bytes());
    v.extend_from_slice(&expire.to_le_bytes());
    v.extend_from_slice(&salt.to_le_bytes());
    v.extend_from_slice(&count.to_le_bytes());
    v
}

/// An RTM service record for `user` with login = `expire` (T6).
fn rtm_record(user: &str, expire: u32) -> Vec<u8> {
    let mut v = vec![2, 0, 1, 0, 1, 0];
    v.extend_from_slice(&expire.to_le_bytes());
    v.extend_from_slice(&(user.len() as u16).to_le_bytes());
    v.extend_from_slice(user.as_bytes());
    v
}

#[test]
fn t24_builder_refuses_bad_ids_and_empty_service_list() {
    let svc = || Service::rtm("a", 60);
    let b = |app: &str, cert: &str| {
        TokenBuilder::new(app, cert, 60)
            .issue_ts(TS)
            .add_service(svc())
            .build()
    };
    assert_eq!(b("a1b2", CERT), Err(BuildError::InvalidAppId));
    assert_eq!(
        b(&APP.replace('a', "g"), CERT),
        Err(BuildError::InvalidAppId)
    );
    assert_eq!(b(&format!("{APP}0"), CERT), Err(BuildError::InvalidAppId));
    assert_eq!(b(APP, "xyz"), Err(BuildError::InvalidAppCertificate));
    assert!(
        b(&APP.to_uppercase(), &CERT.to_uppercase()).is_ok(),
        "either case is hex (T24)"
    );
    assert_eq!(
        TokenBuilder::new(APP, CERT, 60).issue_ts(TS).build(),
        Err(BuildError::NoService)
    );
    assert_eq!(
        build_rtm_token(APP, "", "a", 60, TS),
        Err(BuildError::InvalidAppCertificate)
    );
}

#[test]
fn t21_issue_ts_must_be_given_and_t22_salt_is_random_in_range() {
    let b = TokenBuilder::new(APP, CERT, 60).add_service(Service::rtm("a", 60));
    assert_eq!(b.build(), Err(BuildError::MissingIssueTs));
    let b = b.issue_ts(TS);
    let salts: Vec<u32> = (0..50)
        .map(|_| AccessToken::parse(&b.build().unwrap()).unwrap().salt)
        .collect();
    assert!(salts.iter().all(|s| (1..=99_999_999).contains(s)));
    assert!(salts.iter().any(|&s| s != salts[0]), "salt is not random");
}

#[test]
fn t3_t37_builder_refuses_oversized_fields_and_payloads() {
    let long = "u".repeat(65_536);
    let r = TokenBuilder::new(APP, CERT, 60)
        .issue_ts(TS)
        .add_service(Service::rtm(&long, 60))
        .build();
    assert_eq!(r, Err(BuildError::FieldTooLong("user_id")));
    let mut b = TokenBuilder::new(APP, CERT, 60).issue_ts(TS);
    for _ in 0..2 {
        b = b.add_service(Service::rtm(&"u".repeat(40_000), 60));
    }
    assert_eq!(b.build(), Err(BuildError::PayloadTooLarge));
}

#[test]
fn t25_services_sorted_by_type_keeping_insertion_order() {
    let token = build(
        60,
        vec![
            rtm("second-rtm", &[(1, 0)]),
            Service::Other {
                service_type: service_type::CONVOAI,
                privileges: BTreeMap::new(),
                fields: vec![],
            },
            rtc("c", "u", &[(1, 0)]),
            rtm("first-rtm", &[(1, 0)]),
        ],
    );
    let t = AccessToken::parse(&token).unwrap();
    let order: Vec<(u16, String)> = t
        .services
        .iter()
        .map(|s| match s {
            Service::Rtc { uid, .. } => (1, uid.clone()),
            Service::Rtm { user_id, .. } => (2, user_id.clone()),
            other => (other.service_type(), String::new()),
        })
        .collect();
    let expected = [(1, "u"), (2, "second-rtm"), (2, "first-rtm"), (9, "")];
    assert_eq!(order, expected.map(|(t, s)| (t, s.to_owned())));
}

#[test]
fn t28_t32_expiry_boundary_and_zero_expire() {
    let token = build_rtm_token(APP, CERT, "alice", 600, TS).unwrap();
    assert!(login(&token, "alice", u64::from(TS) + 599).is_ok());
    assert_eq!(
        login(&token, "alice", u64::from(TS) + 600),
        Err(TokenError::TokenExpired)
    );
    let zero = build(0, vec![rtm("alice", &[(1, 0)])]);
    assert_eq!(
        login(&zero, "alice", u64::from(TS) - 100),
        Err(TokenError::TokenExpired)
    );
    assert_eq!(
        login(&zero, "alice", u64::from(TS)),
        Err(TokenError::TokenExpired)
    );
}

#[test]
fn t34_future_issue_ts_accepted_by_default_refused_beyond_skew() {
    let token = build(600, vec![rtm("alice", &[(1, 600)])]);
    let early = u64::from(TS) - 1000;
    assert_eq!(
        login(&token, "alice", early),
        Ok(Credential {
            expires_at: u64::from(TS) + 600
        })
    );
    let strict = VerifyOptions {
        max_clock_skew: Some(60),
        ..VerifyOptions::default()
    };
    let with_skew = |now| verify_login(&token, APP, CERT, "alice", now, &strict);
    assert_eq!(with_skew(early), Err(TokenError::IssuedInFuture));
    assert!(with_skew(u64::from(TS) - 60).is_ok());
    assert_eq!(
        with_skew(u64::from(TS) - 61),
        Err(TokenError::IssuedInFuture)
    );
    // T41: the skew check comes before expiry.
    let zero = build(0, vec![rtm("alice", &[(1, 0)])]);
    assert_eq!(
        verify_login(&zero, APP, CERT, "alice", early, &strict),
        Err(TokenError::IssuedInFuture)
    );
}

#[test]
fn t39_t40_t41_verification_order() {
    let token = build_rtm_token(APP, CERT, "alice", 600, TS).unwrap();
    let late = u64::from(TS) + 10_000;
    // App id before signature, signature before expiry and purpose checks.
    assert_eq!(
        verify_login(&token, &APP.to_uppercase(), CERT, "bob", late, &opts()),
        Err(TokenError::AppIdMismatch)
    );
    assert_eq!(
        verify_login(&token, APP, OTHER_CERT, "bob", late, &opts()),
        Err(TokenError::SignatureMismatch)
    );
    assert_eq!(
        verify_login(&token, APP, CERT, "bob", late, &opts()),
        Err(TokenError::TokenExpired)
    );
    assert_eq!(
        verify_login(&token, APP, CERT, "bob", NOW, &opts()),
        Err(TokenError::UserIdMismatch)
    );
    assert_eq!(
        verify_stream_join(&token, APP, OTHER_CERT, "alice", "c", NOW, &opts()),
        Err(TokenError::SignatureMismatch)
    );
    assert_eq!(verify_token(&token, APP, CERT).map(|t| t.expire), Ok(600));
}

#[test]
fn t43_t45_login_service_user_and_privilege() {
    let rtc_only = build(600, vec![rtc("c", "alice", &[(1, 0)])]);
    assert_eq!(
        login(&rtc_only, "alice", NOW),
        Err(TokenError::ServiceMissing)
    );
    let no_login = build(600, vec![rtm("alice", &[(2, 0)])]);
    assert_eq!(
        login(&no_login, "alice", NOW),
        Err(TokenError::PrivilegeMissing)
    );
    let short = build(600, vec![rtm("alice", &[(1, 100)])]);
    assert_eq!(
        login(&short, "alice", u64::from(TS) + 99),
        Ok(Credential {
            expires_at: u64::from(TS) + 100
        })
    );
    assert_eq!(
        login(&short, "alice", u64::from(TS) + 100),
        Err(TokenError::PrivilegeExpired)
    );
    // T44: the empty user id is a wildcard.
    let wildcard = build(600, vec![rtm("", &[(1, 0)])]);
    assert_eq!(
        login(&wildcard, "anyone", NOW),
        Ok(Credential {
            expires_at: u64::from(TS) + 600
        })
    );
}

#[test]
fn t44_t53_several_rtm_services_the_usable_one_decides() {
    let token = build(
        600,
        vec![
            rtm("alice", &[(2, 0)]),
            rtm("", &[(1, 300)]),
            rtm("bob", &[(1, 0)]),
        ],
    );
    assert_eq!(
        login(&token, "alice", NOW),
        Ok(Credential {
            expires_at: u64::from(TS) + 300
        })
    );
    assert_eq!(
        login(&token, "bob", NOW),
        Ok(Credential {
            expires_at: u64::from(TS) + 600
        })
    );
    assert_eq!(
        login(&token, "alice", u64::from(TS) + 300),
        Err(TokenError::PrivilegeExpired)
    );
}

#[test]
fn t46_rtm2_login_only_when_enabled_t7_later_services_seen() {
    let token = build(
        600,
        vec![
            Service::Other {
                service_type: service_type::APAAS,
                privileges: BTreeMap::from([(1, 0)]),
                fields: vec![
                    FieldValue::Str("room".into()),
                    FieldValue::Str("u".into()),
                    FieldValue::I16(-1),
                ],
            },
            Service::Other {
                service_type: service_type::CHAT,
                privileges: BTreeMap::new(),
                fields: vec![FieldValue::Str("dave".into())],
            },
            Service::rtm2("dave", vec![], 600),
            Service::Other {
                service_type: service_type::STT,
                privileges: BTreeMap::new(),
                fields: vec![],
            },
        ],
    );
    assert_eq!(login(&token, "dave", NOW), Err(TokenError::ServiceMissing));
    let rtm2 = VerifyOptions {
        accept_rtm2: true,
        ..VerifyOptions::default()
    };
    assert!(verify_login(&token, APP, CERT, "dave", NOW, &rtm2).is_ok());
    assert_eq!(
        verify_login(&token, APP, CERT, "erin", NOW, &rtm2),
        Err(TokenError::UserIdMismatch)
    );
    assert_eq!(AccessToken::parse(&token).unwrap().services.len(), 4);
}

#[test]
fn t26_t47_t50_stream_join_checks_in_order() {
    let rtm_only = build(600, vec![rtm("alice", &[(1, 0)])]);
    assert_eq!(
        join(&rtm_only, "alice", "c", NOW),
        Err(TokenError::ServiceMissing)
    );
    let token = build(
        600,
        vec![rtc("room", "alice", &[(1, 0)]), rtc("other", "", &[(2, 0)])],
    );
    assert_eq!(
        join(&token, "bob", "nope", NOW),
        Err(TokenError::ChannelMismatch)
    );
    assert_eq!(
        join(&token, "bob", "room", NOW),
        Err(TokenError::UserIdMismatch)
    );
    assert_eq!(
        join(&token, "alice", "room", NOW),
        Ok(Credential {
            expires_at: u64::from(TS) + 600
        })
    );
    assert_eq!(
        join(&token, "bob", "other", NOW),
        Err(TokenError::PrivilegeMissing)
    );
    let combined =
        build_rtc_rtm_token(APP, CERT, "room", "alice", RtcRole::Subscriber, 600, 0, TS).unwrap();
    assert!(login(&combined, "alice", NOW).is_ok());
    assert!(join(&combined, "alice", "room", NOW).is_ok());
}

#[test]
fn t51_t53_publish_privilege_and_effective_expiry() {
    let token = build(600, vec![rtc("room", "alice", &[(1, 500), (4, 200)])]);
    let t = verify_token(&token, APP, CERT).unwrap();
    let check = |p, now| t.check_rtc_privilege("room", "alice", p, now, &opts());
    assert_eq!(
        check(privilege::JOIN_CHANNEL, NOW),
        Ok(Credential {
            expires_at: u64::from(TS) + 500
        })
    );
    assert_eq!(
        check(privilege::PUBLISH_DATA_STREAM, NOW),
        Ok(Credential {
            expires_at: u64::from(TS) + 200
        })
    );
    assert_eq!(
        check(privilege::PUBLISH_DATA_STREAM, u64::from(TS) + 200),
        Err(TokenError::PrivilegeExpired)
    );
    assert_eq!(
        check(privilege::PUBLISH_AUDIO_STREAM, NOW),
        Err(TokenError::PrivilegeMissing)
    );
    // T30: a privilege longer than the token ends with the token.
    let long = build(600, vec![rtc("room", "alice", &[(1, 9_000)])]);
    assert_eq!(
        join(&long, "alice", "room", NOW),
        Ok(Credential {
            expires_at: u64::from(TS) + 600
        })
    );
    assert_eq!(
        join(&long, "alice", "room", u64::from(TS) + 600),
        Err(TokenError::TokenExpired)
    );
}

#[test]
fn t57_unknown_service_stops_parsing_token_still_valid() {
    let mut info = header(600, 5, 3);
    info.extend(rtm_record("alice", 0));
    info.extend([42, 0, 0xde, 0xad]); // unknown type 42 and bytes of unknown layout
    info.extend(rtm_record("bob", 0));
    let token = seal(info, TS, 5);
    let t = AccessToken::parse(&token).unwrap();
    assert_eq!(t.services, vec![rtm("alice", &[(1, 0)])]);
    assert!(login(&token, "alice", NOW).is_ok());
    assert_eq!(
        login(&token, "bob", NOW),
        Err(TokenError::UserIdMismatch),
        "services after it are not seen"
    );
}

#[test]
fn t58_trailing_bytes_ignored_but_signed() {
    let mut info = header(600, 5, 1);
    info.extend(rtm_record("alice", 0));
    info.extend(b"trailing");
    let token = seal(info, TS, 5);
    assert!(login(&token, "alice", NOW).is_ok());
    let t = AccessToken::parse(&token).unwrap();
    assert!(t.signing_info.ends_with(b"trailing"));
}

#[test]
fn t59_zero_services_fail_every_purpose_with_service_missing() {
    let token = seal(header(600, 5, 0), TS, 5);
    assert_eq!(login(&token, "alice", NOW), Err(TokenError::ServiceMissing));
    assert_eq!(
        join(&token, "alice", "room", NOW),
        Err(TokenError::ServiceMissing)
    );
}

#[test]
fn t38_truncated_service_list_is_malformed() {
    let mut info = header(600, 5, 2);
    info.extend(rtm_record("alice", 0));
    let token = seal(info, TS, 5);
    assert_eq!(AccessToken::parse(&token), Err(TokenError::Malformed));
    assert_eq!(login(&token, "alice", NOW), Err(TokenError::Malformed));
}

#[test]
fn t60_names_compare_as_bytes_without_normalisation() {
    let token = build(
        600,
        vec![rtm("Alice", &[(1, 0)]), rtc("Room", "Alice", &[(1, 0)])],
    );
    assert_eq!(login(&token, "alice", NOW), Err(TokenError::UserIdMismatch));
    assert_eq!(
        login(&token, "Alice ", NOW),
        Err(TokenError::UserIdMismatch)
    );
    assert_eq!(
        join(&token, "Alice", "room", NOW),
        Err(TokenError::ChannelMismatch)
    );
    // "é" precomposed vs decomposed.
    let nfc = build(600, vec![rtm("caf\u{e9}", &[(1, 0)])]);
    assert_eq!(
        login(&nfc, "cafe\u{301}", NOW),
        Err(TokenError::UserIdMismatch)
    );
    assert!(login(&nfc, "caf\u{e9}", NOW).is_ok());
}

#[test]
fn section10_identifiers_codes_and_reasons() {
    let table = [
        (TokenError::Malformed, "MALFORMED", -10005, "INVALID_TOKEN"),
        (
            TokenError::UnsupportedVersion,
            "UNSUPPORTED_VERSION",
            -10005,
            "INVALID_TOKEN",
        ),
        (
            TokenError::AppIdMismatch,
            "APP_ID_MISMATCH",
            -10016,
            "INCONSISTENT_APP_ID",
        ),
        (
            TokenError::SignatureMismatch,
            "SIGNATURE_MISMATCH",
            -10005,
            "INVALID_TOKEN",
        ),
        (
            TokenError::TokenExpired,
            "TOKEN_EXPIRED",
            -10009,
            "TOKEN_EXPIRED",
        ),
        (
            TokenError::IssuedInFuture,
            "ISSUED_IN_FUTURE",
            -10005,
            "INVALID_TOKEN",
        ),
        (
            TokenError::ServiceMissing,
            "SERVICE_MISSING",
            -10005,
            "INVALID_TOKEN",
        ),
        (
            TokenError::PrivilegeMissing,
            "PRIVILEGE_MISSING",
            -10005,
            "INVALID_TOKEN",
        ),
        (
            TokenError::PrivilegeExpired,
            "PRIVILEGE_EXPIRED",
            -10009,
            "TOKEN_EXPIRED",
        ),
        (
            TokenError::UserIdMismatch,
            "USER_ID_MISMATCH",
            -10005,
            "INVALID_TOKEN",
        ),
        (
            TokenError::ChannelMismatch,
            "CHANNEL_MISMATCH",
            -10005,
            "INVALID_TOKEN",
        ),
    ];
    assert_eq!(table.len(), TokenError::ALL.len());
    for (e, id, code, reason) in table {
        assert_eq!(e.identifier(), id);
        assert_eq!(e.sdk_error_code(), code, "{id}");
        assert_eq!(e.login_link_state_reason(), reason, "{id}");
        assert_eq!(TokenError::from_identifier(id), Some(e));
        assert_eq!(e.to_string(), e.description());
        assert!(!e.description().is_empty());
    }
    assert!(
        TokenError::SignatureMismatch
            .description()
            .contains("signature")
    );
}
