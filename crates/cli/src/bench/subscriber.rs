//! What the scenarios share to receive and measure: bench payloads (publisher, sequence
//! number, send time), subscribers (SDK or raw) that record latency, order and gaps,
//! and the drain that adds up what they saw.

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchboard_client::{Client, EventStream, MessageEvent, Payload, SubscribeOptions};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::setup::{login, login_all};
use super::{raw, report};

/// What every subscriber saw, added up.
pub(super) struct Totals {
    pub(super) hist: Histogram<u64>,
    pub(super) received: u64,
    pub(super) out_of_order: u64,
    pub(super) gaps: u64,
}

/// Lets in-flight messages arrive (up to 5 s, until `delivered` reaches `expected`),
/// then stops the subscribers and adds up what they saw.
pub(super) async fn drain_and_collect(
    delivered: &AtomicU64,
    expected: u64,
    stop_tx: &watch::Sender<bool>,
    sub_tasks: Vec<tokio::task::JoinHandle<SubResult>>,
) -> anyhow::Result<Totals> {
    let drain_until = Instant::now() + Duration::from_secs(5);
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let mut t = Totals {
        hist: report::histogram(),
        received: 0,
        out_of_order: 0,
        gaps: 0,
    };
    for task in sub_tasks {
        let r = task.await?;
        t.hist.add(&r.hist).ok();
        t.received += r.received;
        t.out_of_order += r.out_of_order;
        t.gaps += r.gaps;
    }
    Ok(t)
}

/// What one subscriber saw: latency, counts and order per publisher (or channel).
pub(super) struct SubResult {
    pub(super) hist: Histogram<u64>,
    pub(super) received: u64,
    pub(super) out_of_order: u64,
    pub(super) gaps: u64,
    pub(super) next: Vec<u64>,
}

impl SubResult {
    pub(super) fn new(sources: usize) -> SubResult {
        SubResult {
            hist: report::histogram(),
            received: 0,
            out_of_order: 0,
            gaps: 0,
            next: vec![0; sources],
        }
    }

    /// Records message `seq` of `source`, sent at `sent` (µs on [`report::clock_us`]).
    pub(super) fn observe(&mut self, source: usize, seq: u64, sent: u64) {
        let now = report::clock_us();
        let _ = self.hist.record(now.saturating_sub(sent).max(1));
        self.received += 1;
        if seq < self.next[source] {
            self.out_of_order += 1;
        } else {
            self.next[source] = seq + 1;
        }
    }
}

/// A bench payload of `size` bytes (at least 20): publisher, seq, send time µs.
pub(super) fn encode_payload(size: usize, publisher: u32, seq: u64, micros: u64) -> Vec<u8> {
    let mut p = vec![0u8; size.max(20)];
    p[0..4].copy_from_slice(&publisher.to_le_bytes());
    p[4..12].copy_from_slice(&seq.to_le_bytes());
    p[12..20].copy_from_slice(&micros.to_le_bytes());
    p
}

/// (publisher, seq, send time µs) of a bench payload.
pub(super) fn decode_payload(b: &[u8]) -> Option<(u32, u64, u64)> {
    if b.len() < 20 {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let u64_at = |i: usize| u64::from(u32_at(i)) | (u64::from(u32_at(i + 4)) << 32);
    Some((u32_at(0), u64_at(4), u64_at(12)))
}

fn decode_event(m: &MessageEvent) -> Option<(u32, u64, u64)> {
    match &m.message {
        Payload::Binary(b) => decode_payload(b),
        Payload::Text(_) => None,
    }
}

/// A logged-in, subscribed subscriber whose loop has not started yet.
pub(super) enum Subscriber {
    Raw(Box<raw::RawClient>),
    Sdk(Client, EventStream<MessageEvent>),
}

/// Logs in and subscribes `count` subscribers; `who(i)` = (user id, channel).
pub(super) async fn subscribe_all(
    url: &str,
    app: &str,
    cert: Option<&str>,
    raw: bool,
    count: u32,
    who: impl Fn(u32) -> (String, String),
) -> anyhow::Result<Vec<Subscriber>> {
    login_all(count, 64, |i| {
        let (user, channel) = who(i);
        async move {
            anyhow::Ok(if raw {
                let mut c = raw::RawClient::login(url, app, cert, &user).await?;
                c.subscribe(&channel).await?;
                Subscriber::Raw(Box::new(c))
            } else {
                let c = login(url, app, cert, &user).await?;
                let mut s = c.subscribe(&channel, SubscribeOptions::default()).await?;
                let m = s.messages();
                Subscriber::Sdk(c, m)
            })
        }
    })
    .await
}

impl Subscriber {
    /// Runs the subscriber until `stop` flips (or its connection ends), handing each
    /// bench payload (publisher, seq, send time) to `on_message`; logs out at the end.
    /// A `Lagged` item, a `Closing`, an error push or an undecodable frame counts in
    /// `gaps`.
    pub(super) fn spawn(
        self,
        r: SubResult,
        stop: watch::Receiver<bool>,
        on_message: impl FnMut(&mut SubResult, u32, u64, u64) + Send + 'static,
    ) -> tokio::task::JoinHandle<SubResult> {
        match self {
            Subscriber::Raw(c) => tokio::spawn(raw_subscriber(*c, r, stop, on_message)),
            Subscriber::Sdk(c, m) => tokio::spawn(sdk_subscriber(c, m, r, stop, on_message)),
        }
    }
}

async fn raw_subscriber(
    mut c: raw::RawClient,
    mut r: SubResult,
    mut stop: watch::Receiver<bool>,
    mut on_message: impl FnMut(&mut SubResult, u32, u64, u64),
) -> SubResult {
    let hb = raw::heartbeat();
    let mut tick = tokio::time::interval(raw::HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            m = c.ws.next() => match m {
                Some(Ok(Message::Binary(b))) => {
                    for m in raw::decode(b) {
                        let Ok(m) = m else {
                            r.gaps += 1;
                            break;
                        };
                        if let Some(push) = m.message {
                            if let Some((p, seq, sent)) = decode_payload(&push.payload) {
                                on_message(&mut r, p, seq, sent);
                            }
                        } else if m.closing.is_some() || m.error.is_some() {
                            r.gaps += 1;
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => return r,
            },
            _ = tick.tick() => {
                if c.ws.send(hb.clone()).await.is_err() {
                    return r;
                }
            }
            _ = stop.changed() => break,
        }
    }
    c.logout().await;
    r
}

async fn sdk_subscriber(
    client: Client,
    mut messages: EventStream<MessageEvent>,
    mut r: SubResult,
    mut stop: watch::Receiver<bool>,
    mut on_message: impl FnMut(&mut SubResult, u32, u64, u64),
) -> SubResult {
    loop {
        tokio::select! {
            item = messages.next() => match item {
                Some(Ok(m)) => {
                    if let Some((p, seq, sent)) = decode_event(&m) {
                        on_message(&mut r, p, seq, sent);
                    }
                }
                Some(Err(_)) => r.gaps += 1,
                None => return r,
            },
            _ = stop.changed() => break,
        }
    }
    let _ = client.logout().await;
    r
}
