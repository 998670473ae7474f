//! RTM2 permission grants (token.md §5 tree, T46) read from the reference vector
//! `rtm2_permissions` (built by `agora-token`'s `RtmTokenBuilder.buildTokenWithPermissions`):
//! what its tree grants and refuses under the name matching of docs/token.md, and that
//! this crate's builder writes the same payload byte for byte.

mod common;

use common::{load_vectors, n, permissions_of, s};
use switchboard_token::{
    AccessToken, Rtm2Grants, Service, TokenBuilder, VerifyOptions, rtm2, verify_login,
};

fn vector() -> serde_json::Value {
    load_vectors()["valid"]
        .as_array()
        .expect("valid[]")
        .iter()
        .find(|v| v["id"] == "rtm2_permissions")
        .expect("vector rtm2_permissions")
        .clone()
}

fn rtm2_on() -> VerifyOptions {
    VerifyOptions {
        accept_rtm2: true,
        ..Default::default()
    }
}

/// T46: the vector's token logs dave in (with RTM2 accepted) and its grants are
/// exactly its tree: read lobby and news, write lobby (message channels), read room-1
/// (stream channels); nothing on users, nothing else.
#[test]
fn t46_the_vector_tree_grants_exactly_what_it_lists() {
    let v = vector();
    let token = s(&v, "token");
    let inputs = &v["inputs"];
    let now = n(inputs, "issue_ts") + 10;
    let (app, cert) = (s(inputs, "app_id"), s(inputs, "app_certificate"));
    verify_login(token, app, cert, "dave", now, &rtm2_on()).expect("dave logs in");
    let t = AccessToken::parse(token).expect("parses");
    let g = t
        .login_grants("dave", now, &rtm2_on())
        .expect("bounded by its tree");
    use rtm2::{MESSAGE_CHANNELS as MC, READ, STREAM_CHANNELS as SC, USERS, WRITE};
    let granted = [
        (MC, READ, "lobby"),
        (MC, READ, "news"),
        (MC, WRITE, "lobby"),
        (SC, READ, "room-1"),
    ];
    let refused = [
        (MC, WRITE, "news"),
        (MC, READ, "lobby2"),
        (MC, READ, "room-1"),
        (SC, WRITE, "room-1"),
        (SC, READ, "room-2"),
        (USERS, READ, "dave"),
        (USERS, WRITE, "erin"),
        (rtm2::GROUP_CHANNELS, READ, "lobby"),
    ];
    for (rt, pt, name) in granted {
        assert!(g.allows(rt, pt, name), "granted: {rt}/{pt}/{name}");
    }
    for (rt, pt, name) in refused {
        assert!(!g.allows(rt, pt, name), "refused: {rt}/{pt}/{name}");
    }
    assert_eq!(g, Rtm2Grants::new(permissions_of(&v["inputs"])));
}

/// T10, §8: the crate's builder, given the vector's inputs, writes the vector's payload
/// byte for byte (before compression: zlib's output is not part of the format, as in
/// vectors.rs), so tokens built for the server tests carry the reference layout.
#[test]
fn t10_the_builder_reproduces_the_rtm2_vector() {
    let v = vector();
    let inputs = &v["inputs"];
    let built = TokenBuilder::new(s(inputs, "app_id"), s(inputs, "app_certificate"), 3600)
        .issue_ts(n(inputs, "issue_ts") as u32)
        .salt(n(inputs, "salt") as u32)
        .add_service(Service::rtm2(
            s(inputs, "user_id"),
            permissions_of(&v["inputs"]),
            n(inputs, "expire") as u32,
        ))
        .build_payload()
        .expect("builds");
    let reference = AccessToken::parse(s(&v, "token")).expect("parses");
    assert_eq!(built, reference.uncompressed());
}
