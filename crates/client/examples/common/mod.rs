//! What every example shares: where the server is, and tokens for a user.
//!
//! Run `switchboard serve` first (`cargo run --release -p switchboard-cli -- serve`); it
//! prints the app id and certificate. Then, in the shell of each example:
//!
//! ```text
//! export SWITCHBOARD_APP_ID=<app id>  SWITCHBOARD_APP_CERT=<certificate>
//! # optional, the default is the server's default address:
//! export SWITCHBOARD_ENDPOINT=ws://127.0.0.1:7400
//! ```
//!
//! The examples mint their own tokens from the certificate, as an app server would; a
//! real client gets its token from its app server instead.

#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};
use switchboard_client::{Client, ClientConfig};

/// The app id, from `SWITCHBOARD_APP_ID`.
pub fn app_id() -> String {
    std::env::var("SWITCHBOARD_APP_ID").unwrap_or_else(|_| {
        eprintln!(
            "set SWITCHBOARD_APP_ID (and SWITCHBOARD_APP_CERT) to what `switchboard serve` printed"
        );
        std::process::exit(2)
    })
}

/// The app certificate, from `SWITCHBOARD_APP_CERT` (empty: an app without one).
pub fn app_cert() -> String {
    std::env::var("SWITCHBOARD_APP_CERT").unwrap_or_default()
}

/// Settings pointing at `SWITCHBOARD_ENDPOINT` (default `ws://127.0.0.1:7400`).
pub fn config() -> ClientConfig {
    let endpoint =
        std::env::var("SWITCHBOARD_ENDPOINT").unwrap_or_else(|_| "ws://127.0.0.1:7400".to_string());
    ClientConfig::new(endpoint)
}

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// A one-hour RTM login token for `user` (empty when the app has no certificate).
pub fn rtm_token(user: &str) -> String {
    let cert = app_cert();
    if cert.is_empty() {
        return String::new();
    }
    switchboard_token::build_rtm_token(&app_id(), &cert, user, 3600, now()).expect("token builds")
}

/// A one-hour RTC token for `user` in stream channel `channel` (empty without a
/// certificate).
pub fn rtc_token(channel: &str, user: &str) -> String {
    let cert = app_cert();
    if cert.is_empty() {
        return String::new();
    }
    switchboard_token::build_rtc_token(
        &app_id(),
        &cert,
        channel,
        user,
        switchboard_token::RtcRole::Publisher,
        3600,
        3600,
        now(),
    )
    .expect("token builds")
}

/// A client of the app for `user`, logged in with `config`.
pub async fn login_with(user: &str, config: ClientConfig) -> Client {
    let client = Client::new(&app_id(), user, config).expect("valid app and user id");
    if let Err(e) = client.login(&rtm_token(user)).await {
        eprintln!("login as {user} failed: {e} (is `switchboard serve` running?)");
        std::process::exit(1);
    }
    client
}

/// A client of the app for `user`, logged in with [`config`].
pub async fn login(user: &str) -> Client {
    login_with(user, config()).await
}
