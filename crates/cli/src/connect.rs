//! Logging in and joining: a client for the connection flags, logged in, and the
//! stream channel of `--stream` joined with its RTC token.

use crate::args::{ConnectArgs, StreamArgs};
use crate::output::explain;
use switchboard_client::{Client, ClientConfig, SubscribeOptions};

/// Creates a client for `c` and logs in.
pub(crate) async fn connect(c: &ConnectArgs) -> anyhow::Result<Client> {
    let client = Client::new(&c.app_id, &c.user_id, ClientConfig::new(&c.url))
        .map_err(|e| explain(&e, true))?;
    client
        .login(c.token.as_deref().unwrap_or(""))
        .await
        .map_err(|e| explain(&e, c.token.is_some()))?;
    Ok(client)
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
