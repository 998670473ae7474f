//! Random inputs for the interop test: names from api.md's character set S, lifetimes,
//! permission trees, package-builder requests with the services they must produce, and
//! services for tokens built here.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use switchboard_token::{
    FieldValue, RtcPrivilegeExpiry, RtcRole, Rtm2Permission, Service, service_type,
};

/// Character set S of api.md §1.8 (user ids and channel names).
const NAME_CHARS: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !#$%&()+-:;<=.>?@[]^_{|}~,";

/// A 32-hex-character app id or certificate, sometimes upper case (T24).
pub fn random_hex32(rng: &mut StdRng) -> String {
    let upper = rng.random_ratio(1, 4);
    (0..32)
        .map(|_| {
            let c = b"0123456789abcdef"[rng.random_range(0..16)] as char;
            if upper { c.to_ascii_uppercase() } else { c }
        })
        .collect()
}

/// A user id or channel name of 1..=64 characters of set S.
pub fn random_name(rng: &mut StdRng) -> String {
    let len = rng.random_range(1..=64);
    (0..len)
        .map(|_| NAME_CHARS[rng.random_range(0..NAME_CHARS.len())] as char)
        .collect()
}

/// A token lifetime: occasionally 0 (T32) or a few seconds, mostly up to 24 h.
pub fn random_expire(rng: &mut StdRng) -> u32 {
    match rng.random_range(0..20) {
        0 => 0,
        1..=2 => rng.random_range(1..=10),
        _ => rng.random_range(60..=86_400),
    }
}

/// A privilege lifetime: often 0 (no own limit, T31), else up to twice the token's.
pub fn random_privilege(rng: &mut StdRng, token_expire: u32) -> u32 {
    if rng.random_ratio(1, 3) {
        0
    } else {
        rng.random_range(1..=token_expire.max(1).saturating_mul(2))
    }
}

/// Publisher or subscriber, evenly.
pub fn random_role(rng: &mut StdRng) -> RtcRole {
    if rng.random() {
        RtcRole::Publisher
    } else {
        RtcRole::Subscriber
    }
}

/// A permission tree without repeated (resource, permission) pairs, in ascending order.
pub fn random_permissions(rng: &mut StdRng) -> Vec<Rtm2Permission> {
    let pairs: BTreeSet<(u16, u16)> = (0..rng.random_range(0..=4))
        .map(|_| (rng.random_range(0..=4), rng.random_range(0..=1)))
        .collect();
    pairs
        .into_iter()
        .map(|(resource_type, permission_type)| Rtm2Permission {
            resource_type,
            permission_type,
            resources: (0..rng.random_range(0..=3))
                .map(|_| random_name(rng))
                .collect(),
        })
        .collect()
}

/// What a package-built token must contain and grant.
pub struct Case {
    /// The driver request: `kind` plus the builder's inputs.
    pub node: Value,
    /// The app id given to the builder.
    pub app_id: String,
    /// The certificate given to the builder.
    pub cert: String,
    /// The token lifetime the builder writes.
    pub expire: u32,
    /// The services the token must carry, in token order.
    pub services: Vec<Service>,
    /// (user id, login privilege value, is RTM2)
    pub login: Option<(String, u32, bool)>,
    /// (channel, uid text, join privilege value)
    pub join: Option<(String, String, u32)>,
}

/// The driver fields of one builder call (beyond the credentials), and what its token must
/// contain and grant: services, login and join expectations (see [`Case`]).
type Expectation = (
    Value,
    Vec<Service>,
    Option<(String, u32, bool)>,
    Option<(String, String, u32)>,
);

/// A random package-builder call; `index` cycles through the six builders.
pub fn random_case(rng: &mut StdRng, index: usize) -> Case {
    let (app_id, cert) = (random_hex32(rng), random_hex32(rng));
    let expire = random_expire(rng);
    let (fields, services, login, join) = match index % 6 {
        0 => rtm_case(rng, expire),
        1 => rtm2_case(rng, expire),
        2 => rtc_case(rng, expire, false),
        3 => rtc_case(rng, expire, true),
        4 => rtc_rtm_case(rng, expire),
        _ => rtc_rtm2_case(rng, expire),
    };
    let mut node = json!({"app_id": app_id, "app_certificate": cert});
    for (k, v) in fields.as_object().expect("fields object") {
        node[k] = v.clone();
    }
    Case {
        node,
        app_id,
        cert,
        expire,
        services,
        login,
        join,
    }
}

/// `RtmTokenBuilder.buildToken`.
fn rtm_case(rng: &mut StdRng, te: u32) -> Expectation {
    let user = random_name(rng);
    let fields = json!({"kind": "rtm", "user_id": user, "expire": te});
    (
        fields,
        vec![Service::rtm(&user, te)],
        Some((user, te, false)),
        None,
    )
}

/// `RtmTokenBuilder.buildTokenWithPermissions`.
fn rtm2_case(rng: &mut StdRng, te: u32) -> Expectation {
    let (user, perms) = (random_name(rng), random_permissions(rng));
    let tree: Vec<Value> = perms
        .iter()
        .map(|p| json!([p.resource_type, p.permission_type, p.resources]))
        .collect();
    let fields = json!({"kind": "rtm2", "user_id": user, "expire": te, "permissions": tree});
    (
        fields,
        vec![Service::rtm2(&user, perms, te)],
        Some((user, te, true)),
        None,
    )
}

/// `RtcTokenBuilder.buildTokenWithUserAccount`, or `buildTokenWithUid` with a numeric uid
/// (0 = the wildcard, written as the empty string, T8).
fn rtc_case(rng: &mut StdRng, te: u32, numeric: bool) -> Expectation {
    let (channel, role, pe) = (
        random_name(rng),
        random_role(rng),
        random_privilege(rng, te),
    );
    let (fields, uid_text) = if numeric {
        let uid: u32 = if rng.random_ratio(1, 4) {
            0
        } else {
            rng.random_range(1..=u32::MAX)
        };
        let text = if uid == 0 {
            String::new()
        } else {
            uid.to_string()
        };
        (json!({"kind": "rtc_uid", "uid": uid}), text)
    } else {
        let account = random_name(rng);
        (json!({"kind": "rtc_account", "account": account}), account)
    };
    let mut fields = fields;
    fields["channel_name"] = json!(channel);
    fields["role"] = json!(role as u8);
    fields["token_expire"] = json!(te);
    fields["privilege_expire"] = json!(pe);
    let services = vec![Service::rtc(&channel, &uid_text, role, pe)];
    (fields, services, None, Some((channel, uid_text, pe)))
}

/// `RtcTokenBuilder.buildTokenWithRtm`: RTC + RTM for one account, login = token lifetime.
fn rtc_rtm_case(rng: &mut StdRng, te: u32) -> Expectation {
    let (channel, account, role) = (random_name(rng), random_name(rng), random_role(rng));
    let pe = random_privilege(rng, te);
    let fields = json!({"kind": "rtc_rtm", "channel_name": channel, "account": account,
                        "role": role as u8, "token_expire": te, "privilege_expire": pe});
    let services = vec![
        Service::rtc(&channel, &account, role, pe),
        Service::rtm(&account, te),
    ];
    (
        fields,
        services,
        Some((account.clone(), te, false)),
        Some((channel, account, pe)),
    )
}

/// `RtcTokenBuilder.buildTokenWithRtm2`: distinct RTC account and RTM user, own lifetimes.
fn rtc_rtm2_case(rng: &mut StdRng, te: u32) -> Expectation {
    let (channel, account, role) = (random_name(rng), random_name(rng), random_role(rng));
    let e = RtcPrivilegeExpiry {
        join_channel: random_privilege(rng, te),
        publish_audio: random_privilege(rng, te),
        publish_video: random_privilege(rng, te),
        publish_data: random_privilege(rng, te),
    };
    let (rtm_user, rtm_te) = (random_name(rng), random_expire(rng));
    let fields = json!({"kind": "rtc_rtm2", "channel_name": channel, "account": account,
        "role": role as u8, "token_expire": te, "join": e.join_channel, "audio": e.publish_audio,
        "video": e.publish_video, "data": e.publish_data, "rtm_user_id": rtm_user,
        "rtm_token_expire": rtm_te});
    let rtc = match role {
        RtcRole::Publisher => Service::rtc_with_privileges(&channel, &account, e),
        RtcRole::Subscriber => Service::rtc(&channel, &account, role, e.join_channel),
    };
    let services = vec![rtc, Service::rtm(&rtm_user, rtm_te)];
    (
        fields,
        services,
        Some((rtm_user, rtm_te, false)),
        Some((channel, account, e.join_channel)),
    )
}

/// A random service of any known type, for tokens built here and parsed by the package.
pub fn random_service(rng: &mut StdRng) -> Service {
    let expire = random_expire(rng);
    let name = |rng: &mut StdRng| {
        if rng.random_ratio(1, 8) {
            String::new()
        } else {
            random_name(rng)
        }
    };
    let privileges = |rng: &mut StdRng, ids: &[u16]| -> BTreeMap<u16, u32> {
        let mut map = BTreeMap::new();
        for &id in ids {
            if rng.random() {
                map.insert(id, random_privilege(rng, expire));
            }
        }
        map
    };
    let other = |service_type: u16, privileges: BTreeMap<u16, u32>, fields: Vec<FieldValue>| {
        Service::Other {
            service_type,
            privileges,
            fields,
        }
    };
    match rng.random_range(0..12) {
        0 => Service::rtm(&name(rng), expire),
        1 => Service::rtc(&name(rng), &name(rng), random_role(rng), expire),
        2 => {
            let e = RtcPrivilegeExpiry {
                join_channel: random_privilege(rng, expire),
                publish_audio: random_privilege(rng, expire),
                publish_video: random_privilege(rng, expire),
                publish_data: random_privilege(rng, expire),
            };
            Service::rtc_with_privileges(&name(rng), &name(rng), e)
        }
        3 => Service::rtm2(&name(rng), random_permissions(rng), expire),
        4 => {
            let p = privileges(rng, &[1, 2]);
            other(
                service_type::STREAMING,
                p,
                vec![FieldValue::Str(name(rng)), FieldValue::Str(name(rng))],
            )
        }
        5 => other(service_type::FPA, privileges(rng, &[1]), vec![]),
        6 => other(
            service_type::CHAT,
            privileges(rng, &[1, 2]),
            vec![FieldValue::Str(name(rng))],
        ),
        7 => {
            let p = privileges(rng, &[1, 2]);
            other(
                service_type::FCDN,
                p,
                vec![FieldValue::Str(name(rng)), FieldValue::Str(name(rng))],
            )
        }
        8 => {
            let p = privileges(rng, &[1, 2, 3]);
            let role = FieldValue::I16(rng.random_range(-2..=3));
            other(
                service_type::APAAS,
                p,
                vec![FieldValue::Str(name(rng)), FieldValue::Str(name(rng)), role],
            )
        }
        9 => other(service_type::CONVOAI, BTreeMap::new(), vec![]),
        10 => other(service_type::STT, BTreeMap::new(), vec![]),
        // Multi-byte UTF-8: string lengths count bytes (§3).
        _ => Service::rtm("usér-名前-🙂", expire),
    }
}

/// A service as the driver reports it (`describeService`), for comparison.
pub fn described(service: &Service) -> Value {
    let privileges: serde_json::Map<String, Value> = service
        .privileges()
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mut out = json!({"type": service.service_type(), "privileges": privileges, "fields": {}});
    let fields = &mut out["fields"];
    match service {
        Service::Rtc {
            channel_name, uid, ..
        } => *fields = json!({"channel_name": channel_name, "uid": uid}),
        Service::Rtm { user_id, .. } => *fields = json!({"user_id": user_id}),
        Service::Rtm2 {
            user_id,
            permissions,
            ..
        } => {
            *fields = json!({"user_id": user_id});
            let tree: Vec<Value> = permissions
                .iter()
                .map(|p| json!([p.resource_type, p.permission_type, p.resources]))
                .collect();
            out["permissions"] = json!(tree);
        }
        Service::Other {
            service_type,
            fields: values,
            ..
        } => {
            let text = |i: usize| match values.get(i) {
                Some(FieldValue::Str(s)) => json!(s),
                Some(FieldValue::I16(v)) => json!(*v as u16), // the package reads i16 as u16 (§15)
                None => Value::Null,
            };
            *fields = match *service_type {
                service_type::STREAMING | service_type::FCDN => {
                    json!({"channel_name": text(0), "account": text(1)})
                }
                service_type::CHAT => json!({"user_id": text(0)}),
                service_type::APAAS => {
                    json!({"room_uuid": text(0), "user_uuid": text(1), "role": text(2)})
                }
                _ => json!({}),
            };
        }
    }
    out
}
