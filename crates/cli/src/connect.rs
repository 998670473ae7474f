//! Logging in and joining: a client for the connection flags, logged in, the stream
//! channel of `--stream` joined with its RTC token, and a watch on the link that says
//! why a command's connection ended (kicked by another login of the same user, a token
//! expired, …) instead of a bare "connection closed".

use crate::args::{ConnectArgs, StreamArgs};
use crate::output::{Explained, explain};
use futures_util::StreamExt;
use std::time::Duration;
use switchboard_client::{
    Client, ClientConfig, ErrorCode, LinkReason, LinkState, LinkStateEvent, SubscribeOptions,
};
use tokio::sync::watch;

/// Whether the connection flags carry a token (an empty one counts as none).
pub(crate) fn token_given(c: &ConnectArgs) -> bool {
    c.token.as_deref().is_some_and(|t| !t.is_empty())
}

/// A client for `c`, not logged in; a bad id or CA file is reported by its flag.
pub(crate) fn new_client(c: &ConnectArgs) -> anyhow::Result<Client> {
    let mut config = ClientConfig::new(&c.url);
    if let Some(path) = &c.ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("--ca-cert {}: cannot read it: {e}", path.display()))?;
        config = config.with_ca_certificate(pem);
    }
    Client::new(&c.app_id, &c.user_id, config).map_err(|e| {
        let flag = if e.code == ErrorCode::InvalidAppId.as_i32() {
            format!("--app-id {:?}", c.app_id)
        } else if e.code == ErrorCode::InvalidUserId.as_i32() {
            format!("--user-id {:?}", c.user_id)
        } else if let (true, Some(path)) =
            (e.code == ErrorCode::InvalidParameter.as_i32(), &c.ca_cert)
        {
            format!("--ca-cert {}", path.display())
        } else {
            "the connection flags".to_string()
        };
        anyhow::anyhow!("invalid {flag}: {} (code {})", e.reason, e.code)
    })
}

/// Logs `client` in with the token of `c`.
pub(crate) async fn login(client: &Client, c: &ConnectArgs) -> anyhow::Result<()> {
    client
        .login(c.token.as_deref().unwrap_or(""))
        .await
        .map_err(|e| explain(&e, token_given(c)))?;
    Ok(())
}

/// Creates a client for `c` and logs in.
pub(crate) async fn connect(c: &ConnectArgs) -> anyhow::Result<Client> {
    let client = new_client(c)?;
    login(&client, c).await?;
    Ok(client)
}

/// Follows a client's link state, keeping the event that failed it (api.md §9.7).
pub(crate) struct LinkWatch {
    failed: watch::Receiver<Option<LinkStateEvent>>,
}

impl LinkWatch {
    /// Starts watching `client`'s link.
    pub(crate) fn new(client: &Client) -> LinkWatch {
        let (tx, failed) = watch::channel(None);
        let mut events = client.link_state_events();
        tokio::spawn(async move {
            while let Some(item) = events.next().await {
                if let Ok(e) = item
                    && e.current_state == LinkState::Failed
                {
                    let _ = tx.send(Some(e));
                    return;
                }
            }
        });
        LinkWatch { failed }
    }

    /// Completes when the link fails, with why.
    pub(crate) async fn failed(&mut self) -> anyhow::Error {
        match self.failed.wait_for(Option::is_some).await {
            Ok(e) => match e.as_ref() {
                Some(e) => ended(e),
                None => anyhow::anyhow!("the connection ended"),
            },
            Err(_) => anyhow::anyhow!("the connection ended"),
        }
    }

    /// `result`, with a "not connected" failure replaced by why the link failed when it
    /// did (the SDK fails pending requests as the connection closes, just before it
    /// reports the link state, so this waits up to two seconds for that report).
    pub(crate) async fn annotate<T>(&mut self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        let Err(err) = result else {
            return result;
        };
        let lost = err
            .downcast_ref::<Explained>()
            .is_some_and(|e| e.code == ErrorCode::NotConnected.as_i32());
        if !lost {
            return Err(err);
        }
        match tokio::time::timeout(Duration::from_secs(2), self.failed()).await {
            Ok(why) => Err(why.context(err.to_string())),
            Err(_) => Err(err),
        }
    }
}

/// Why a link failed, for the terminal.
pub(crate) fn ended(e: &LinkStateEvent) -> anyhow::Error {
    let why = match e.reason_code {
        LinkReason::SameUidLogin => {
            "kicked: another login with the same user id replaced this one (each user id \
             has one session at a time; use another --user-id)"
        }
        LinkReason::TokenExpired => {
            "the token expired (a long-running `sub` renews it with --token-command or \
             --app-cert)"
        }
        _ => "the connection ended",
    };
    anyhow::anyhow!("{why}: {} ({})", e.reason_code.as_str(), e.reason)
}

/// Joins `args.stream` (when given) with its RTC token and presence options.
pub(crate) async fn join_stream(
    client: &Client,
    args: &StreamArgs,
    presence: SubscribeOptions,
) -> anyhow::Result<Option<switchboard_client::StreamChannel>> {
    let Some(name) = &args.stream else {
        return Ok(None);
    };
    let channel = client.stream_channel(name).map_err(|e| explain(&e, true))?;
    let options = switchboard_client::JoinOptions {
        token: args.rtc_token.clone(),
        with_presence: presence.with_presence,
        be_quiet: presence.be_quiet,
        with_metadata: presence.with_metadata,
        with_lock: presence.with_lock,
    };
    channel
        .join(options)
        .await
        .map_err(|e| explain(&e, args.rtc_token.is_some()))?;
    Ok(Some(channel))
}
