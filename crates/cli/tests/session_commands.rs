//! Issue 21's command-line part: the calls that act on a live session are reachable
//! from the command line — `sub --no-message` (withMessage: false), topic meta
//! (`join-topic TOPIC META`, `pub --stream --meta`, api.md §4.3), and `leaveTopic`,
//! `unsubscribeTopic`, `unsubscribe` as commands on a running `sub --commands` (R70,
//! R82, R92, R100).

mod common;

use common::{Proc, Served, json_lines, run};
use std::io::Write;

/// The session calls from the command line, each checked by its effect: topic meta
/// reaches a follower in the topic SNAPSHOT (R92) and in REMOTE_JOIN, `leave-topic`
/// brings REMOTE_LEAVE (R100); `unsubscribe` takes the user out of the channel, so
/// `whoNow` no longer lists her (R82); `sub --no-message` gets no message of the
/// channel (R70).
#[test]
fn a_running_sub_takes_session_commands_on_stdin() {
    let s = Served::start("session-commands", &[]);
    let env = s.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let rtc = |user: &str| {
        let out = run(
            &["token", "rtc", "--channel", "match", "--user-id", user],
            &env,
        );
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string()
    };
    let (ra, rb) = (rtc("alice"), rtc("bob"));
    let (ta, tb, tc) = (
        s.token("alice", &[]),
        s.token("bob", &[]),
        s.token("carol", &[]),
    );

    // alice: in "room", and in stream channel "match" where she publishes with meta.
    let (alice, mut to_alice) = Proc::spawn_interactive(
        &[
            "sub",
            "--commands",
            "--user-id",
            "alice",
            "--token",
            &ta,
            "room",
            "--stream",
            "match",
            "--rtc-token",
            &ra,
        ],
        &env,
    );
    alice.expect_json("alice joined", |v| v["event"] == "joinResponse");
    writeln!(to_alice, "join-topic moves white pieces").expect("write");
    let r = alice.expect_json("joinTopic", |v| v["event"] == "joinTopicResponse");
    assert_eq!(r["topicName"], "moves");

    // bob follows the topic and sees alice's meta.
    let (bob, mut to_bob) = Proc::spawn_interactive(
        &[
            "sub",
            "--commands",
            "--user-id",
            "bob",
            "--token",
            &tb,
            "--stream",
            "match",
            "--rtc-token",
            &rb,
            "--topic",
            "moves",
        ],
        &env,
    );
    let r = bob.expect_json("subscribeTopic", |v| v["event"] == "subscribeTopicResponse");
    assert_eq!(r["succeedUsers"][0], "alice");
    let snapshot = bob.expect_json("the topic snapshot", |v| {
        v["event"] == "topic" && v["eventType"] == "SNAPSHOT"
    });
    let publishers = &snapshot["topicInfos"][0]["publishers"];
    assert_eq!(publishers[0]["publisherUserId"], "alice");
    assert_eq!(publishers[0]["publisherMeta"], "white pieces");

    // unsubscribeTopic from bob's side, leaveTopic from alice's.
    writeln!(to_bob, "unsubscribe-topic moves").expect("write");
    let r = bob.expect_json("unsubscribeTopic", |v| {
        v["event"] == "unsubscribeTopicResponse"
    });
    assert_eq!(r["topicName"], "moves");
    writeln!(to_alice, "leave-topic moves").expect("write");
    alice.expect_json("leaveTopic", |v| v["event"] == "leaveTopicResponse");
    let left = bob.expect_json("alice's REMOTE_LEAVE", |v| {
        v["event"] == "topic" && v["eventType"] == "REMOTE_LEAVE"
    });
    assert_eq!(left["publisher"], "alice");
    // Leaving a topic not joined: an error line with the code (-11016), sub goes on.
    writeln!(to_alice, "leave-topic moves").expect("write");
    let e = alice.expect_json("the error", |v| v["event"] == "commandError");
    assert_eq!(e["errorCode"], -11016, "{e}");
    writeln!(to_alice, "dance").expect("write");
    let e = alice.expect_json("unknown command", |v| v["event"] == "commandError");
    assert!(
        e["reason"]
            .as_str()
            .unwrap_or("")
            .contains("unknown command")
    );

    // unsubscribe: alice leaves "room" (whoNow no longer lists her).
    let who = |expect_alice: bool| {
        let r = json_lines(&run(
            &[
                "presence",
                "who",
                "--user-id",
                "carol",
                "--token",
                &tc,
                "room",
            ],
            &env,
        ));
        let users: Vec<String> = r[0]["occupants"]
            .as_array()
            .expect("occupants")
            .iter()
            .filter_map(|o| o["userId"].as_str().map(str::to_string))
            .collect();
        assert_eq!(
            users.contains(&"alice".to_string()),
            expect_alice,
            "{users:?}"
        );
    };
    who(true);
    writeln!(to_alice, "unsubscribe room").expect("write");
    let r = alice.expect_json("unsubscribe", |v| v["event"] == "unsubscribeResponse");
    assert_eq!(r["channelName"], "room");
    who(false);

    // withMessage: false — dave is in "room" without its messages; a USER message sent
    // after a channel message arrives, the channel message never does (one connection
    // delivers in order, so it would have come first).
    let dave = Proc::spawn(
        &[
            "sub",
            "--user-id",
            "dave",
            "--token",
            &s.token("dave", &[]),
            "--no-message",
            "room",
        ],
        &env,
    );
    dave.expect_json("dave subscribed", |v| v["event"] == "subscribeResponse");
    let out = run(
        &[
            "pub",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "room",
            "not for dave",
        ],
        &env,
    );
    assert!(out.status.success());
    let out = run(
        &[
            "pub",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "--to-user",
            "dave",
            "after",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = dave.expect_json("a message", |v| v["event"] == "message");
    assert_eq!(
        m["message"], "after",
        "withMessage false: no channel message"
    );

    // pub --stream --meta: bob, following the topic again, sees carol's meta.
    writeln!(to_bob, "subscribe-topic moves carol").expect("write");
    bob.expect_json("subscribeTopic carol", |v| {
        v["event"] == "subscribeTopicResponse" && v["succeedUsers"][0] == "carol"
    });
    let rc = {
        let out = run(
            &["token", "rtc", "--channel", "match", "--user-id", "carol"],
            &env,
        );
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string()
    };
    let out = run(
        &[
            "pub",
            "--user-id",
            "carol",
            "--token",
            &tc,
            "--stream",
            "match",
            "--topic",
            "moves",
            "--rtc-token",
            &rc,
            "--meta",
            "black",
            "e7e5",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let joined = bob.expect_json("carol's REMOTE_JOIN", |v| {
        v["event"] == "topic" && v["eventType"] == "REMOTE_JOIN" && v["publisher"] == "carol"
    });
    let p = &joined["topicInfos"][0]["publishers"][0];
    assert_eq!(p["publisherMeta"], "black", "{joined}");

    // leave: alice leaves the stream channel.
    writeln!(to_alice, "leave").expect("write");
    alice.expect_json("leave", |v| v["event"] == "leaveResponse");
}
