//! The reference vectors of `shared/vectors/tokens.json` (token.md §1): decoding, the
//! intermediate values (T5, T12–T14), builder reproduction (§8, T20), every `checks[]`
//! outcome and every invalid vector's `expected_error` (§10, §11). Failures name the
//! vector id; each test collects all failures before reporting.

mod common;

use common::{load_vectors, n, permissions_of, run_check, s};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use switchboard_token::{
    AccessToken, RtcPrivilegeExpiry, RtcRole, Service, TokenBuilder, TokenError,
    build_rtc_rtm_token, build_rtc_token, build_rtc_token_with_privileges, build_rtm_token,
    privilege_name, rtm2, service_type,
};

fn valid() -> Vec<Value> {
    load_vectors()["valid"].as_array().expect("valid[]").clone()
}

fn invalid() -> Vec<Value> {
    load_vectors()["invalid"]
        .as_array()
        .expect("invalid[]")
        .clone()
}

fn report(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{what}: {} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Our decoding of a token in the shape of a vector's `decoded` object.
fn decoded_json(t: &AccessToken) -> Value {
    let services: Vec<Value> = t.services.iter().map(service_json).collect();
    json!({
        "version": "007",
        "app_id": t.app_id,
        "issue_ts": t.issue_ts,
        "expire": t.expire,
        "token_expires_at": t.expires_at(),
        "salt": t.salt,
        "services": services,
    })
}

fn service_json(svc: &Service) -> Value {
    let privileges: Vec<Value> = svc
        .privileges()
        .iter()
        .map(|(&id, &expire)| {
            json!({"privilege": id, "expire": expire, "name": privilege_name(svc.service_type(), id)})
        })
        .collect();
    let mut v = json!({"type": svc.service_type(), "name": svc.name(), "privileges": privileges});
    match svc {
        Service::Rtc {
            channel_name, uid, ..
        } => {
            v["channel_name"] = json!(channel_name);
            v["uid"] = json!(uid);
        }
        Service::Rtm { user_id, .. } => v["user_id"] = json!(user_id),
        Service::Rtm2 {
            user_id,
            permissions,
            ..
        } => {
            v["user_id"] = json!(user_id);
            v["permissions"] = permissions
                .iter()
                .map(|p| {
                    json!({"resource_type": p.resource_type, "permission_type": p.permission_type,
                           "resources": p.resources})
                })
                .collect();
        }
        Service::Other { fields, .. } => v["fields"] = json!(format!("{fields:?}")),
    }
    v
}

fn u32_of(v: &Value, key: &str) -> u32 {
    u32::try_from(n(v, key)).unwrap_or_else(|_| panic!("{key} does not fit u32"))
}

fn role_of(inputs: &Value) -> RtcRole {
    match n(inputs, "role_value") {
        1 => RtcRole::Publisher,
        2 => RtcRole::Subscriber,
        other => panic!("unknown role_value {other}"),
    }
}

/// A numeric uid as the reference writes it: `0` → `""`, else decimal text (T8).
fn uid_text(inputs: &Value) -> String {
    match n(inputs, "uid") {
        0 => String::new(),
        uid => uid.to_string(),
    }
}

fn rtc_expiry(inputs: &Value) -> RtcPrivilegeExpiry {
    RtcPrivilegeExpiry {
        join_channel: u32_of(inputs, "join_channel_privilege_expire"),
        publish_audio: u32_of(inputs, "pub_audio_privilege_expire"),
        publish_video: u32_of(inputs, "pub_video_privilege_expire"),
        publish_data: u32_of(inputs, "pub_data_stream_privilege_expire"),
    }
}

fn privilege_map(v: &Value) -> BTreeMap<u16, u32> {
    v.as_object()
        .expect("privileges object")
        .iter()
        .map(|(k, e)| {
            (
                k.parse().expect("privilege id"),
                e.as_u64().expect("expire") as u32,
            )
        })
        .collect()
}

/// A `services_in_insertion_order` entry of a direct `AccessToken2` build.
fn direct_service(v: &Value) -> Service {
    let privileges = privilege_map(&v["privileges"]);
    match n(v, "type") {
        1 => Service::Rtc {
            channel_name: s(v, "channel_name").to_owned(),
            uid: s(v, "uid").to_owned(),
            privileges,
        },
        2 => Service::Rtm {
            user_id: s(v, "user_id").to_owned(),
            privileges,
        },
        other => panic!("direct service type {other} not handled"),
    }
}

/// The builder (with the vector's fixed issue_ts and salt) that `builder` names (§8).
fn builder_for(vector: &Value) -> TokenBuilder {
    let b = s(vector, "builder");
    let i = &vector["inputs"];
    let (app, cert) = (s(i, "app_id"), s(i, "app_certificate"));
    let new = |expire: u32| {
        TokenBuilder::new(app, cert, expire)
            .issue_ts(u32_of(i, "issue_ts"))
            .salt(u32_of(i, "salt"))
    };
    let name = b.split('(').next().unwrap_or(b);
    match name {
        "RtmTokenBuilder.buildToken" => {
            let expire = u32_of(i, "expire");
            new(expire).add_service(Service::rtm(s(i, "user_id"), expire))
        }
        "RtmTokenBuilder.buildTokenWithPermissions" => {
            let expire = u32_of(i, "expire");
            new(expire).add_service(Service::rtm2(s(i, "user_id"), permissions_of(i), expire))
        }
        "RtcTokenBuilder.buildTokenWithUid" | "RtcTokenBuilder.buildTokenWithUserAccount" => {
            let uid = if name.ends_with("Uid") {
                uid_text(i)
            } else {
                s(i, "account").to_owned()
            };
            new(u32_of(i, "token_expire")).add_service(Service::rtc(
                s(i, "channel_name"),
                &uid,
                role_of(i),
                u32_of(i, "privilege_expire"),
            ))
        }
        "RtcTokenBuilder.BuildTokenWithUserAccountAndPrivilege" => new(u32_of(i, "token_expire"))
            .add_service(Service::rtc_with_privileges(
                s(i, "channel_name"),
                s(i, "account"),
                rtc_expiry(i),
            )),
        "RtcTokenBuilder.buildTokenWithRtm" => {
            let expire = u32_of(i, "token_expire");
            new(expire)
                .add_service(Service::rtc(
                    s(i, "channel_name"),
                    s(i, "account"),
                    role_of(i),
                    u32_of(i, "privilege_expire"),
                ))
                .add_service(Service::rtm(s(i, "account"), expire))
        }
        "RtcTokenBuilder.buildTokenWithRtm2" => {
            let (channel, account, expiry) =
                (s(i, "channel_name"), s(i, "rtc_account"), rtc_expiry(i));
            let rtc = match role_of(i) {
                RtcRole::Publisher => Service::rtc_with_privileges(channel, account, expiry),
                RtcRole::Subscriber => {
                    Service::rtc(channel, account, RtcRole::Subscriber, expiry.join_channel)
                }
            };
            new(u32_of(i, "rtc_token_expire"))
                .add_service(rtc)
                .add_service(Service::rtm(
                    s(i, "rtm_user_id"),
                    u32_of(i, "rtm_token_expire"),
                ))
        }
        "new AccessToken2" => {
            let mut builder = new(u32_of(i, "expire"));
            for svc in i["services_in_insertion_order"]
                .as_array()
                .expect("services")
            {
                builder = builder.add_service(direct_service(svc));
            }
            builder
        }
        other => panic!("builder {other:?} not mapped"),
    }
}

/// The one-call function of this crate that matches `builder`, if there is one (random salt).
fn exposed_builder(vector: &Value) -> Option<String> {
    let i = &vector["inputs"];
    let (app, cert, ts) = (
        s(i, "app_id"),
        s(i, "app_certificate"),
        u32_of(i, "issue_ts"),
    );
    let name = s(vector, "builder")
        .split('(')
        .next()
        .unwrap_or_default()
        .to_owned();
    let token = match name.as_str() {
        "RtmTokenBuilder.buildToken" => {
            build_rtm_token(app, cert, s(i, "user_id"), u32_of(i, "expire"), ts)
        }
        "RtcTokenBuilder.buildTokenWithUserAccount" => build_rtc_token(
            app,
            cert,
            s(i, "channel_name"),
            s(i, "account"),
            role_of(i),
            u32_of(i, "token_expire"),
            u32_of(i, "privilege_expire"),
            ts,
        ),
        "RtcTokenBuilder.buildTokenWithUid" => build_rtc_token(
            app,
            cert,
            s(i, "channel_name"),
            &uid_text(i),
            role_of(i),
            u32_of(i, "token_expire"),
            u32_of(i, "privilege_expire"),
            ts,
        ),
        "RtcTokenBuilder.BuildTokenWithUserAccountAndPrivilege" => build_rtc_token_with_privileges(
            app,
            cert,
            s(i, "channel_name"),
            s(i, "account"),
            u32_of(i, "token_expire"),
            rtc_expiry(i),
            ts,
        ),
        "RtcTokenBuilder.buildTokenWithRtm" => build_rtc_rtm_token(
            app,
            cert,
            s(i, "channel_name"),
            s(i, "account"),
            role_of(i),
            u32_of(i, "token_expire"),
            u32_of(i, "privilege_expire"),
            ts,
        ),
        _ => return None,
    };
    Some(token.expect("exposed builder refused valid inputs"))
}

#[test]
fn section1_vector_file_shape_and_constants() {
    let v = load_vectors();
    assert_eq!(s(&v, "format"), "accesstoken2-007-test-vectors");
    assert_eq!(v["valid"].as_array().map(Vec::len), Some(15));
    assert_eq!(v["invalid"].as_array().map(Vec::len), Some(15));
    let c = &v["constants"];
    let types = [
        ("rtc", service_type::RTC),
        ("rtm", service_type::RTM),
        ("streaming", service_type::STREAMING),
        ("fpa", service_type::FPA),
        ("chat", service_type::CHAT),
        ("fcdn", service_type::FCDN),
        ("apaas", service_type::APAAS),
        ("rtm2", service_type::RTM2),
        ("convoai", service_type::CONVOAI),
        ("stt", service_type::STT),
    ];
    for (name, t) in types {
        assert_eq!(
            n(&c["service_types"], name),
            u64::from(t),
            "service type {name}"
        );
        assert_eq!(switchboard_token::service_type_name(t), Some(name));
    }
    for (name, id) in c["rtc_privileges"].as_object().expect("rtc privileges") {
        assert_eq!(
            privilege_name(service_type::RTC, id.as_u64().unwrap() as u16),
            Some(name.as_str())
        );
    }
    assert_eq!(n(&c["rtm_privileges"], "login"), 1);
    let r = &c["rtm2_resource_types"];
    assert_eq!(n(r, "messageChannels"), u64::from(rtm2::MESSAGE_CHANNELS));
    assert_eq!(n(r, "streamChannels"), u64::from(rtm2::STREAM_CHANNELS));
    assert_eq!(n(r, "groupChannels"), u64::from(rtm2::GROUP_CHANNELS));
    assert_eq!(n(r, "serverGroups"), u64::from(rtm2::SERVER_GROUPS));
    assert_eq!(n(r, "users"), u64::from(rtm2::USERS));
    assert_eq!(
        n(&c["rtm2_permission_types"], "read"),
        u64::from(rtm2::READ)
    );
    assert_eq!(
        n(&c["rtm2_permission_types"], "write"),
        u64::from(rtm2::WRITE)
    );
}

/// T1–T11, T38: decoding reproduces `decoded` exactly.
#[test]
fn t38_valid_vectors_decode_to_decoded() {
    let mut failures = Vec::new();
    for v in valid() {
        let id = s(&v, "id");
        match AccessToken::parse(s(&v, "token")) {
            Ok(t) if decoded_json(&t) == v["decoded"] => {}
            Ok(t) => failures.push(format!(
                "{id}: decoded {} != {}",
                decoded_json(&t),
                v["decoded"]
            )),
            Err(e) => failures.push(format!("{id}: parse failed: {e:?}")),
        }
    }
    report("decode", &failures);
}

/// T5, T12–T15: uncompressed payload, signing info, signing key and signature.
#[test]
fn t5_t12_t14_valid_vectors_intermediate_values() {
    let mut failures = Vec::new();
    for v in valid() {
        let id = s(&v, "id");
        let (im, cert) = (&v["intermediate"], s(&v["inputs"], "app_certificate"));
        let Ok(t) = AccessToken::parse(s(&v, "token")) else {
            failures.push(format!("{id}: does not parse"));
            continue;
        };
        let ours = [
            ("uncompressed_hex", hex::encode(t.uncompressed())),
            ("signing_info_hex", hex::encode(&t.signing_info)),
            ("signing_key_hex", hex::encode(t.signing_key(cert))),
            ("signature_hex", hex::encode(&t.signature)),
        ];
        for (key, value) in ours {
            if value != s(im, key) {
                failures.push(format!("{id}: {key} {value} != {}", s(im, key)));
            }
        }
        if hex::encode(t.expected_signature(cert)) != s(im, "signature_hex") {
            failures.push(format!("{id}: recomputed signature differs (T14)"));
        }
        if !t.signature_valid(cert)
            || !v["package_result"]["signature_ok"]
                .as_bool()
                .unwrap_or(false)
        {
            failures.push(format!("{id}: signature not valid (T15)"));
        }
    }
    report("intermediate values", &failures);
}

/// §8, T20, T25: the builder given `inputs` reproduces `uncompressed_hex` byte for byte.
#[test]
fn t20_t25_builder_reproduces_uncompressed_payload() {
    let mut failures = Vec::new();
    let mut same_token_string = 0;
    for v in valid() {
        let id = s(&v, "id");
        let builder = builder_for(&v);
        match builder.build_payload() {
            Ok(p) if hex::encode(&p) == s(&v["intermediate"], "uncompressed_hex") => {}
            Ok(p) => failures.push(format!(
                "{id}: built {} != {}",
                hex::encode(p),
                s(&v["intermediate"], "uncompressed_hex")
            )),
            Err(e) => failures.push(format!("{id}: build failed: {e}")),
        }
        match builder.build().map(|t| AccessToken::parse(&t)) {
            Ok(Ok(t))
                if hex::encode(t.uncompressed()) == s(&v["intermediate"], "uncompressed_hex") => {}
            other => failures.push(format!("{id}: built token does not round-trip: {other:?}")),
        }
        if builder.build().ok().as_deref() == Some(s(&v, "token")) {
            same_token_string += 1;
        }
    }
    report("builder reproduction", &failures);
    // Informational only (T20): equal strings need a deflate encoder identical to zlib's.
    eprintln!("token strings identical to the reference: {same_token_string}/15");
}

/// §8: the one-call builders produce the vector's services, app id, times and a valid
/// signature (their salt is random, so the bytes differ).
#[test]
fn section8_exposed_builders_match_vectors() {
    let mut failures = Vec::new();
    let mut covered = 0;
    for v in valid() {
        let id = s(&v, "id");
        let Some(token) = exposed_builder(&v) else {
            continue;
        };
        covered += 1;
        let reference = AccessToken::parse(s(&v, "token")).expect("vector parses");
        let ours = AccessToken::parse(&token).expect("built token parses");
        let cert = s(&v["inputs"], "app_certificate");
        if (
            ours.app_id.as_str(),
            ours.issue_ts,
            ours.expire,
            &ours.services,
        ) != (
            reference.app_id.as_str(),
            reference.issue_ts,
            reference.expire,
            &reference.services,
        ) {
            failures.push(format!("{id}: {ours:?} != {reference:?}"));
        }
        if !ours.signature_valid(cert) || !(1..=99_999_999).contains(&ours.salt) {
            failures.push(format!(
                "{id}: bad signature or salt {} (T15, T22)",
                ours.salt
            ));
        }
    }
    assert!(
        covered >= 10,
        "only {covered} vectors map to exposed builders"
    );
    report("exposed builders", &failures);
}

/// §10, §11: every `checks[]` entry gives its `expected` outcome.
#[test]
fn t35_t50_valid_vector_checks() {
    let mut failures = Vec::new();
    let mut count = 0;
    for v in valid() {
        let id = s(&v, "id");
        for (k, check) in v["checks"].as_array().expect("checks").iter().enumerate() {
            count += 1;
            let got = run_check(s(&v, "token"), check);
            if got != s(check, "expected") {
                failures.push(format!(
                    "{id} check #{k}: got {got}, expected {}",
                    s(check, "expected")
                ));
            }
        }
    }
    assert!(count >= 20, "only {count} checks");
    report("checks", &failures);
}

/// §10: every invalid vector gives its `expected_error`.
#[test]
fn t35_t50_invalid_vectors_expected_error() {
    let mut failures = Vec::new();
    for v in invalid() {
        let id = s(&v, "id");
        let expected = s(&v, "expected_error");
        assert!(
            TokenError::from_identifier(expected).is_some(),
            "{id}: unknown identifier {expected}"
        );
        let got = run_check(s(&v, "token"), &v["check"]);
        if got != expected {
            failures.push(format!("{id}: got {got}, expected {expected}"));
        }
    }
    report("invalid vectors", &failures);
}

/// The package's own parse/signature results on the invalid vectors agree with ours
/// (parse success for 007 tokens, signature validity with `check.app_certificate`).
#[test]
fn t36_t40_invalid_vectors_agree_with_package_results() {
    let mut failures = Vec::new();
    for v in invalid() {
        let id = s(&v, "id");
        let pkg = &v["package_result"];
        let parsed = AccessToken::parse(s(&v, "token"));
        let parse_ok = pkg["parse_ok"].as_bool().expect("parse_ok");
        if parsed.is_ok() != parse_ok {
            failures.push(format!(
                "{id}: parse ok = {}, package said {parse_ok}",
                parsed.is_ok()
            ));
        }
        if let Ok(t) = parsed {
            let sig_ok = t.signature_valid(s(&v["check"], "app_certificate"));
            if sig_ok != pkg["signature_ok"].as_bool().expect("signature_ok") {
                failures.push(format!("{id}: signature ok = {sig_ok}, package disagrees"));
            }
        }
    }
    report("package results", &failures);
}

/// The vendored copy must be the reference file byte for byte wherever the reference
/// is present (it is next to the repository in the project's workspace).
#[test]
fn vendored_vectors_match_the_reference_when_present() {
    let ours = std::fs::read(common::VECTORS_PATH).expect("vendored vectors");
    if let Ok(reference) = std::fs::read(common::REFERENCE_PATH) {
        assert!(
            ours == reference,
            "tests/vectors/tokens.json differs from {}",
            common::REFERENCE_PATH
        );
    }
    assert!(ours.len() > 50_000, "the vendored vector file is complete");
}
