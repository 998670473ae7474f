//! Interop with Agora's own npm package `agora-token` 2.0.6, the reference of token.md.
//!
//! The package is installed with npm under `CARGO_TARGET_TMPDIR` (once; reused after) and
//! driven by `tests/interop/agora_interop.js` over JSON on stdin/stdout:
//! - tokens built by the package's builders (random inputs chosen here) are parsed,
//!   rebuilt byte for byte and verified by this crate, with positive and negative checks;
//! - tokens built by this crate are parsed and signature-checked by the package, which
//!   reports every field back.
//!
//! Node.js and npm must be on PATH: without them the test fails (CI installs them).

mod interop;

use interop::inputs::{Case, described, random_case, random_expire, random_hex32, random_service};
use interop::node::run_node;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use switchboard_token::{
    AccessToken, TokenBuilder, TokenError, VerifyOptions, verify_login, verify_stream_join,
};

/// A user id that no generated token names: `/` is not in set S, which generated names use.
const STRANGER: &str = "stranger/not-in-any-token";

type Outcome = Result<u64, TokenError>;

/// The spec's outcome for a token issued at `ts` with lifetime `expire` whose relied-on
/// privilege has value `privilege`, checked at `now` (T28–T32, T53).
fn oracle(ts: u32, expire: u32, privilege: u32, now: u64) -> Outcome {
    let token_end = u64::from(ts) + u64::from(expire);
    if expire == 0 || now >= token_end {
        return Err(TokenError::TokenExpired);
    }
    if privilege == 0 {
        return Ok(token_end);
    }
    let privilege_end = u64::from(ts) + u64::from(privilege);
    if now >= privilege_end {
        Err(TokenError::PrivilegeExpired)
    } else {
        Ok(token_end.min(privilege_end))
    }
}

/// Clock values worth checking: issue time, a random point, and both sides of the token's
/// and the privilege's ends.
fn check_times(rng: &mut StdRng, ts: u32, expire: u32, privilege: u32) -> Vec<u64> {
    let ts = u64::from(ts);
    let mut times = vec![
        ts,
        ts + rng.random_range(0..=u64::from(expire.max(privilege)) + 5),
    ];
    for end in [expire, privilege] {
        if end > 0 {
            times.extend([ts + u64::from(end) - 1, ts + u64::from(end)]);
        }
    }
    times
}

/// One package-built token under test, with the failures found so far.
struct Checker<'a> {
    name: String,
    token: &'a str,
    case: &'a Case,
    issue_ts: u32,
    failures: Vec<String>,
}

impl Checker<'_> {
    fn expect(&mut self, what: &str, got: Outcome, want: Outcome) {
        if got != want {
            self.failures.push(format!(
                "{}: {what}: got {got:?}, expected {want:?}",
                self.name
            ));
        }
    }

    /// `want` unless the token is already dead (expire 0), which is checked first (T41).
    fn unless_expired(&self, want: TokenError) -> Outcome {
        Err(if self.case.expire == 0 {
            TokenError::TokenExpired
        } else {
            want
        })
    }

    fn login(&self, user: &str, now: u64, cert: &str, opts: &VerifyOptions) -> Outcome {
        verify_login(self.token, &self.case.app_id, cert, user, now, opts).map(|c| c.expires_at)
    }

    fn join(&self, user: &str, channel: &str, now: u64, cert: &str) -> Outcome {
        let opts = VerifyOptions::default();
        verify_stream_join(
            self.token,
            &self.case.app_id,
            cert,
            user,
            channel,
            now,
            &opts,
        )
        .map(|c| c.expires_at)
    }

    /// Decoding matches the builder inputs, and our builder reproduces the bytes (§1, §8).
    fn check_decoding(&mut self, t: &AccessToken, before: u64, after: u64) {
        if !(before..=after).contains(&u64::from(t.issue_ts)) || !(1..=99_999_999).contains(&t.salt)
        {
            let msg = format!(
                "issue_ts {} not in [{before}, {after}] or salt {} (T21, T22)",
                t.issue_ts, t.salt
            );
            self.failures.push(format!("{}: {msg}", self.name));
        }
        let case = self.case;
        if (t.app_id.as_str(), t.expire, &t.services)
            != (case.app_id.as_str(), case.expire, &case.services)
        {
            self.failures.push(format!(
                "{}: decoded {t:?}, expected {:?}",
                self.name, case.services
            ));
        }
        let mut rebuilt = TokenBuilder::new(&case.app_id, &case.cert, case.expire)
            .issue_ts(t.issue_ts)
            .salt(t.salt);
        for s in &case.services {
            rebuilt = rebuilt.add_service(s.clone());
        }
        if rebuilt.build_payload().as_ref() != Ok(&t.uncompressed()) {
            self.failures.push(format!(
                "{}: rebuilt payload differs from the package's",
                self.name
            ));
        }
    }

    /// RTM login: the oracle at several times, then another user, a wrong certificate,
    /// RTM2 with RTM2 disabled, or a token without RTM (T40, T43–T46).
    fn check_login(&mut self, rng: &mut StdRng) {
        let (ts, cert) = (self.issue_ts, self.case.cert.clone());
        let at_issue = u64::from(ts);
        let (rtm2_on, default) = (
            VerifyOptions {
                accept_rtm2: true,
                ..Default::default()
            },
            VerifyOptions::default(),
        );
        let Some((user, value, rtm2)) = self.case.login.clone() else {
            let got = self.login(STRANGER, at_issue, &cert, &rtm2_on);
            self.expect(
                "login without an RTM service (T43)",
                got,
                self.unless_expired(TokenError::ServiceMissing),
            );
            return;
        };
        for now in check_times(rng, ts, self.case.expire, value) {
            let got = self.login(&user, now, &cert, &rtm2_on);
            self.expect(
                &format!("login at {now}"),
                got,
                oracle(ts, self.case.expire, value, now),
            );
        }
        let got = self.login(STRANGER, at_issue, &cert, &rtm2_on);
        self.expect(
            "login as another user (T44)",
            got,
            self.unless_expired(TokenError::UserIdMismatch),
        );
        let got = self.login(&user, at_issue, &random_hex32(rng), &rtm2_on);
        self.expect(
            "login with a wrong certificate (T40)",
            got,
            Err(TokenError::SignatureMismatch),
        );
        if rtm2 {
            let got = self.login(&user, at_issue, &cert, &default);
            self.expect(
                "RTM2 login with RTM2 disabled (T46)",
                got,
                self.unless_expired(TokenError::ServiceMissing),
            );
        }
    }

    /// Stream channel join: the oracle at several times, then another user (wildcard or
    /// not), another channel, a wrong certificate, or a token without RTC (T47–T50).
    fn check_join(&mut self, rng: &mut StdRng) {
        let (ts, cert) = (self.issue_ts, self.case.cert.clone());
        let at_issue = u64::from(ts);
        let Some((channel, uid, value)) = self.case.join.clone() else {
            let got = self.join(STRANGER, "c", at_issue, &cert);
            self.expect(
                "join without an RTC service (T47)",
                got,
                self.unless_expired(TokenError::ServiceMissing),
            );
            return;
        };
        let user = if uid.is_empty() {
            STRANGER
        } else {
            uid.as_str()
        };
        for now in check_times(rng, ts, self.case.expire, value) {
            let got = self.join(user, &channel, now, &cert);
            self.expect(
                &format!("join at {now}"),
                got,
                oracle(ts, self.case.expire, value, now),
            );
        }
        let other_user = if uid.is_empty() {
            oracle(ts, self.case.expire, value, at_issue)
        } else {
            self.unless_expired(TokenError::UserIdMismatch)
        };
        let got = self.join(STRANGER, &channel, at_issue, &cert);
        self.expect("join as another user (T49)", got, other_user);
        let got = self.join(user, &format!("{channel}x"), at_issue, &cert);
        self.expect(
            "join another channel (T48)",
            got,
            self.unless_expired(TokenError::ChannelMismatch),
        );
        let got = self.join(user, &channel, at_issue, &random_hex32(rng));
        self.expect(
            "join with a wrong certificate (T40)",
            got,
            Err(TokenError::SignatureMismatch),
        );
    }
}

/// Checks one package-built token; returns the failures found, naming the case.
fn check_case(rng: &mut StdRng, k: usize, case: &Case, built: &Value) -> Vec<String> {
    let name = format!("case {k} ({})", case.node["kind"].as_str().unwrap_or("?"));
    let token = built["token"].as_str().expect("token");
    let t = match AccessToken::parse(token) {
        Ok(t) => t,
        Err(e) => return vec![format!("{name}: parse failed: {e:?} for {token}")],
    };
    let mut checker = Checker {
        name,
        token,
        case,
        issue_ts: t.issue_ts,
        failures: Vec::new(),
    };
    let (before, after) = (
        built["before"].as_u64().unwrap(),
        built["after"].as_u64().unwrap(),
    );
    checker.check_decoding(&t, before, after);
    checker.check_login(rng);
    checker.check_join(rng);
    checker.failures
}

#[test]
fn agora_built_tokens_parse_rebuild_and_verify_here() {
    let mut rng = StdRng::seed_from_u64(0xa607_2006);
    let cases: Vec<Case> = (0..60).map(|k| random_case(&mut rng, k)).collect();
    let requests: Vec<Value> = cases.iter().map(|c| c.node.clone()).collect();
    let response = run_node(&requests, &[]);
    let built = response["built"].as_array().expect("built[]");
    assert_eq!(built.len(), cases.len());
    let failures: Vec<String> = cases
        .iter()
        .zip(built)
        .enumerate()
        .flat_map(|(k, (case, b))| check_case(&mut rng, k, case, b))
        .collect();
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `cert` with its first character changed: a well-formed but wrong certificate.
fn other_certificate(cert: &str) -> String {
    let first = if cert.starts_with('0') { "1" } else { "0" };
    format!("{first}{}", &cert[1..])
}

#[test]
fn tokens_built_here_parse_and_verify_in_agora() {
    let mut rng = StdRng::seed_from_u64(0x0b5e_2006);
    let mut tokens = Vec::new();
    for k in 0..50 {
        let (app, cert) = (random_hex32(&mut rng), random_hex32(&mut rng));
        let mut b = TokenBuilder::new(&app, &cert, random_expire(&mut rng))
            .issue_ts(rng.random_range(1_500_000_000..=2_100_000_000));
        if k % 2 == 0 {
            b = b.salt(rng.random());
        }
        for _ in 0..rng.random_range(1..=4) {
            b = b.add_service(random_service(&mut rng));
        }
        tokens.push((b.build().expect("build"), cert));
    }
    let requests: Vec<Value> = tokens
        .iter()
        .map(|(token, cert)| {
            json!({"token": token, "certificate": cert, "wrong_certificate": other_certificate(cert)})
        })
        .collect();
    let response = run_node(&[], &requests);
    let parsed = response["parsed"].as_array().expect("parsed[]");
    assert_eq!(parsed.len(), tokens.len());
    let mut failures = Vec::new();
    for (k, ((token, _), p)) in tokens.iter().zip(parsed).enumerate() {
        let ours = AccessToken::parse(token).expect("our token parses");
        let services: Vec<Value> = ours.services.iter().map(described).collect();
        let expected = json!({
            "parse_ok": true, "signature_ok": true, "wrong_signature_ok": false,
            "app_id": ours.app_id, "issue_ts": ours.issue_ts, "expire": ours.expire, "salt": ours.salt,
            "services": services, "inflated_hex": hex::encode(ours.uncompressed()),
        });
        if *p != expected {
            failures.push(format!(
                "token {k} {token}:\n  package: {p}\n  ours:    {expected}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
