//! `switchboard token rtm|rtc|inspect`: build tokens the way Agora's builders do, and
//! decode one into JSON (with its signature and expiry checked when given a certificate).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use switchboard_token::{AccessToken, FieldValue, RtcRole, Service};

/// Token subcommands.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// An RTM login token (like RtmTokenBuilder.buildToken).
    Rtm(RtmArgs),
    /// An RTC token for a stream channel, publisher role (like buildTokenWithUserAccount).
    Rtc(RtcArgs),
    /// Decode a token and print it as JSON.
    Inspect(InspectArgs),
}

/// Common builder flags.
#[derive(Args)]
pub struct AppArgs {
    /// App id (32 hex characters).
    #[arg(long, env = "SWITCHBOARD_APP_ID")]
    app_id: String,
    /// App certificate (32 hex characters).
    #[arg(long, env = "SWITCHBOARD_APP_CERT")]
    app_cert: String,
    /// Lifetime in seconds (token and privileges).
    #[arg(long, env = "SWITCHBOARD_TOKEN_EXPIRE", default_value_t = 3600)]
    expire: u32,
}

/// `token rtm` flags.
#[derive(Args)]
pub struct RtmArgs {
    #[command(flatten)]
    app: AppArgs,
    /// The user id the token logs in.
    #[arg(long, env = "SWITCHBOARD_USER_ID")]
    user_id: String,
}

/// `token rtc` flags.
#[derive(Args)]
pub struct RtcArgs {
    #[command(flatten)]
    app: AppArgs,
    /// The stream channel the token joins.
    #[arg(long, env = "SWITCHBOARD_CHANNEL")]
    channel: String,
    /// The user id (RTC user account).
    #[arg(long, env = "SWITCHBOARD_USER_ID")]
    user_id: String,
}

/// `token inspect` flags.
#[derive(Args)]
pub struct InspectArgs {
    /// The token.
    token: String,
    /// Check the signature with this certificate.
    #[arg(long, env = "SWITCHBOARD_APP_CERT")]
    app_cert: Option<String>,
}

fn now_secs() -> u32 {
    (switchboard_protocol::now_ms() / 1000) as u32
}

/// Runs a token subcommand.
pub fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Rtm(a) => {
            let t = switchboard_token::build_rtm_token(
                &a.app.app_id,
                &a.app.app_cert,
                &a.user_id,
                a.app.expire,
                now_secs(),
            )
            .map_err(|e| anyhow::anyhow!("cannot build the token: {e}"))?;
            println!("{t}");
        }
        TokenCommand::Rtc(a) => {
            let t = switchboard_token::build_rtc_token(
                &a.app.app_id,
                &a.app.app_cert,
                &a.channel,
                &a.user_id,
                RtcRole::Publisher,
                a.app.expire,
                a.app.expire,
                now_secs(),
            )
            .map_err(|e| anyhow::anyhow!("cannot build the token: {e}"))?;
            println!("{t}");
        }
        TokenCommand::Inspect(a) => println!("{}", inspect(&a.token, a.app_cert.as_deref())?),
    }
    Ok(())
}

fn privileges_json(service: &Service) -> Value {
    let ty = service.service_type();
    service
        .privileges()
        .iter()
        .map(|(id, expire)| {
            json!({
                "privilege": id,
                "name": switchboard_token::privilege_name(ty, *id),
                "expire": expire,
            })
        })
        .collect()
}

fn service_json(service: &Service) -> Value {
    let mut v = json!({
        "type": service.service_type(),
        "name": service.name(),
        "privileges": privileges_json(service),
    });
    match service {
        Service::Rtc {
            channel_name, uid, ..
        } => {
            v["channelName"] = json!(channel_name);
            v["uid"] = json!(uid);
        }
        Service::Rtm { user_id, .. } => v["userId"] = json!(user_id),
        Service::Rtm2 {
            user_id,
            permissions,
            ..
        } => {
            v["userId"] = json!(user_id);
            v["permissions"] = json!(format!("{permissions:?}"));
        }
        Service::Other { fields, .. } => {
            let fields: Vec<Value> = fields
                .iter()
                .map(|f| match f {
                    FieldValue::Str(s) => json!(s),
                    FieldValue::I16(n) => json!(n),
                })
                .collect();
            v["fields"] = json!(fields);
        }
    }
    v
}

/// Decodes a token into one JSON object.
pub fn inspect(token: &str, cert: Option<&str>) -> anyhow::Result<String> {
    let parsed = match AccessToken::parse(token) {
        Ok(t) => t,
        Err(e) => bail!(
            "not a valid AccessToken2 token: {} ({})",
            e.identifier(),
            e.description()
        ),
    };
    let now = u64::from(now_secs());
    let mut v = json!({
        "version": "007",
        "appId": parsed.app_id,
        "issueTs": parsed.issue_ts,
        "expire": parsed.expire,
        "expiresAt": parsed.expires_at(),
        "salt": parsed.salt,
        "services": parsed.services.iter().map(service_json).collect::<Vec<_>>(),
        "expired": parsed.expire == 0 || now >= parsed.expires_at(),
    });
    if let Some(cert) = cert {
        v["signatureValid"] = json!(parsed.signature_valid(cert));
    }
    serde_json::to_string(&v).context("encoding JSON")
}
