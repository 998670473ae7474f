//! Waiting for a state with a deadline instead of a fixed sleep.

use futures_util::{Stream, StreamExt};
use std::time::Duration;
use tokio::time::Instant;

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next item of `stream` within `timeout`; panics naming `what` otherwise. `None`
/// means the stream ended.
pub async fn next_within<S, T>(stream: &mut S, timeout: Duration, what: &str) -> Option<T>
where
    S: Stream<Item = T> + Unpin,
{
    tokio::time::timeout(timeout, stream.next())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Polls the async `cond` every 20 ms until it holds or `timeout` passes; returns
/// whether it held.
pub async fn eventually_async<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
