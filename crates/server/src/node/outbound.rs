//! The per-connection outbound queue, bounded in bytes and in items, and the writer
//! task that drains whatever is queued into one WebSocket frame and one write. A push
//! that would overflow the queue closes the connection as a slow consumer: publishers
//! never wait on a subscriber.
//!
//! The queue is a `VecDeque` under an uncontended mutex, swapped out whole by the
//! writer, rather than a channel: an idle connection then holds no queue storage at all
//! (a bounded tokio channel allocates a block of slots up front), and the writer takes
//! everything queued in one step.

use bytes::{Bytes, BytesMut};
use futures_util::{Sink, SinkExt};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use switchboard_protocol::DisconnectCode;
use switchboard_protocol::frame;
use switchboard_protocol::pb::{Closing, ServerMessage, server_message::Body};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Why and how a connection ends.
#[derive(Debug, Clone)]
pub(crate) struct Close {
    /// The disconnect code; `None` when the peer went away and nothing is sent.
    pub code: Option<DisconnectCode>,
    /// Detail for the `Closing` push.
    pub reason: String,
}

/// Handle to one connection's outbound queue. Shared by the session and the hub.
pub(crate) struct Outbound {
    queue: Mutex<VecDeque<Bytes>>,
    max_items: usize,
    /// Wakes the writer when something is queued.
    ready: tokio::sync::Notify,
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    close: watch::Sender<Option<Close>>,
    /// Signalled by the writer each time it takes chunks off the queue, and on close.
    drained: tokio::sync::Notify,
    /// Set by the first close: nothing more is queued after it, so a message that
    /// overflowed can never be overtaken by a later one that still fitted.
    closed: std::sync::atomic::AtomicBool,
}

/// The receiving half, owned by the writer task.
pub(crate) struct OutboundRx {
    close: watch::Receiver<Option<Close>>,
}

/// Queue storage kept by an idle connection is at most this many slots.
const IDLE_SLOTS: usize = 16;

impl Outbound {
    /// A queue of at most `max_items` items and `max_bytes` bytes.
    pub fn new(max_items: usize, max_bytes: usize) -> (Arc<Outbound>, OutboundRx) {
        let (close, close_rx) = watch::channel(None);
        let out = Arc::new(Outbound {
            queue: Mutex::new(VecDeque::new()),
            max_items: max_items.max(1),
            ready: tokio::sync::Notify::new(),
            queued_bytes: AtomicUsize::new(0),
            max_bytes,
            close,
            drained: tokio::sync::Notify::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        (out, OutboundRx { close: close_rx })
    }

    /// Queues one encoded chunk. Returns false (and closes the connection as a slow
    /// consumer) when the queue is full; false also once the connection is closing.
    pub fn push(&self, chunk: Bytes) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let len = chunk.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        // One chunk larger than the whole limit (a presence SNAPSHOT of a channel full
        // of large states, within the spec's limits) passes alone through an empty
        // queue; see `push_wait`.
        if before + len > self.max_bytes && before > 0 {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.overflow();
            return false;
        }
        {
            let mut q = self.lock();
            // Checked under the queue's lock: the writer sets it (under the lock) when
            // it stops, so nothing is queued after that.
            if self.closed.load(Ordering::Acquire) {
                drop(q);
                self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                return false;
            }
            if q.len() >= self.max_items {
                drop(q);
                self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                self.overflow();
                return false;
            }
            q.push_back(chunk);
        }
        self.ready.notify_one();
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Bytes>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one chunk, waiting (up to `patience`) for room instead of overflowing:
    /// for bulk sends the session controls, such as a replay. Returns false if the
    /// connection closed or stayed full for `patience` (then it is closed as slow).
    pub async fn push_wait(&self, chunk: Bytes, patience: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            // Register for the writer's signal before looking, so none is missed.
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.close.borrow().is_some() {
                return false;
            }
            let queued = self.queued_bytes.load(Ordering::Relaxed);
            let fits = queued + chunk.len() <= self.max_bytes || queued == 0;
            if fits && self.lock().len() < self.max_items {
                return self.push(chunk);
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                self.overflow();
                return false;
            }
        }
    }

    fn overflow(&self) {
        self.close(
            DisconnectCode::SlowConsumer,
            format!(
                "outbound queue over its limit ({} bytes or items)",
                self.max_bytes
            ),
        );
    }

    /// Asks the writer to send a `Closing` push and close. The first close wins.
    pub fn close(&self, code: DisconnectCode, reason: impl Into<String>) {
        self.closed.store(true, Ordering::Release);
        self.drained.notify_waiters();
        let close = Close {
            code: Some(code),
            reason: reason.into(),
        };
        self.close.send_if_modified(|c| {
            if c.is_none() {
                *c = Some(close);
                true
            } else {
                false
            }
        });
    }

    /// Ends the connection without telling the peer (it is already gone).
    pub fn close_quietly(&self) {
        self.closed.store(true, Ordering::Release);
        self.drained.notify_waiters();
        self.close.send_if_modified(|c| {
            if c.is_none() {
                *c = Some(Close {
                    code: None,
                    reason: String::new(),
                });
                true
            } else {
                false
            }
        });
    }

    /// A receiver that changes once the connection is closing.
    pub fn closed(&self) -> watch::Receiver<Option<Close>> {
        self.close.subscribe()
    }

    /// Whether the connection is closing (closed, kicked, replaced by a resume).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The close decided so far, if any.
    pub fn close_reason(&self) -> Option<Close> {
        self.close.borrow().clone()
    }
}

/// `fut`, failing with `Elapsed` after `limit`; the timer is only armed once `fut` has
/// to wait. Most writes complete at once, and a timer per write (a clock read and a
/// timer-wheel entry) was a measurable share of the writer's CPU.
async fn within<F: std::future::Future>(
    limit: Duration,
    fut: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut fut = std::pin::pin!(fut);
    if let Some(out) = futures_util::FutureExt::now_or_never(fut.as_mut()) {
        return Ok(out);
    }
    tokio::time::timeout(limit, fut).await
}

/// Drains the queue into the socket until the connection closes, then sends the
/// `Closing` push and a close frame (bounded by `write_timeout`).
pub(crate) async fn run_writer<S>(
    mut sink: S,
    out: Arc<Outbound>,
    mut rx: OutboundRx,
    batch_bytes: usize,
    write_timeout: Duration,
) where
    S: Sink<Message> + Unpin,
{
    let mut taken: VecDeque<Bytes> = VecDeque::new();
    'write: loop {
        let ready = out.ready.notified();
        tokio::pin!(ready);
        ready.as_mut().enable();
        if rx.close.borrow().is_some() {
            break;
        }
        std::mem::swap(&mut *out.lock(), &mut taken);
        if taken.is_empty() {
            tokio::select! {
                biased;
                _ = rx.close.changed() => break,
                _ = ready => continue,
            }
        }
        let bytes: usize = taken.iter().map(Bytes::len).sum();
        out.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        out.drained.notify_waiters();
        // Everything taken goes out as frames of up to `batch_bytes` (a chunk larger
        // than that alone), flushed once: one write for the lot when it fits the
        // socket.
        let result = within(write_timeout, async {
            while let Some(first) = taken.pop_front() {
                let payload = match taken.front() {
                    Some(next) if first.len() + next.len() <= batch_bytes => {
                        // Sized exactly: a 64 KiB buffer per write made the allocator
                        // fault in fresh pages all the time (docs/benchmarks.md).
                        let mut len = first.len();
                        let mut count = 0;
                        for chunk in taken.iter() {
                            if len + chunk.len() > batch_bytes {
                                break;
                            }
                            len += chunk.len();
                            count += 1;
                        }
                        let mut buf = BytesMut::with_capacity(len);
                        buf.extend_from_slice(&first);
                        for chunk in taken.drain(..count) {
                            buf.extend_from_slice(&chunk);
                        }
                        buf.freeze()
                    }
                    _ => first,
                };
                sink.feed(Message::Binary(payload)).await?;
            }
            sink.flush().await
        })
        .await;
        taken.clear();
        if taken.capacity() > IDLE_SLOTS {
            taken.shrink_to(IDLE_SLOTS);
        }
        match result {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                out.close_quietly();
                break 'write;
            }
            Err(_) => {
                out.close(DisconnectCode::WriteTimeout, "socket write timed out");
                break 'write;
            }
        }
    }
    // Nothing is queued from here on.
    let rest = {
        let mut q = out.lock();
        out.closed.store(true, Ordering::Release);
        std::mem::take(&mut *q)
    };
    let close = out.close_reason();
    if let Some(Close {
        code: Some(code),
        reason,
    }) = close
    {
        // What was queued before the close (an error reply to a refused login, a
        // logout reply) still goes out, unless the queue itself is the problem.
        if !matches!(
            code,
            DisconnectCode::SlowConsumer | DisconnectCode::WriteTimeout
        ) {
            let mut buf = BytesMut::new();
            for chunk in &rest {
                buf.extend_from_slice(chunk);
            }
            if !buf.is_empty() {
                let _ =
                    tokio::time::timeout(write_timeout, sink.send(Message::Binary(buf.freeze())))
                        .await;
            }
        }
        let push = ServerMessage {
            id: 0,
            body: Some(Body::Closing(Closing {
                code: code as u32,
                reason: reason.clone(),
                reconnect: code.reconnect(),
            })),
        };
        let frame_close = CloseFrame {
            code: CloseCode::from(code.as_u16()),
            reason: code.info().name.into(),
        };
        let _ = tokio::time::timeout(write_timeout, async {
            sink.send(Message::Binary(frame::encode(&push))).await?;
            sink.send(Message::Close(Some(frame_close))).await
        })
        .await;
    }
    let _ = tokio::time::timeout(write_timeout, sink.close()).await;
}
