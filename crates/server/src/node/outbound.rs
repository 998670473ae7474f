//! The per-connection outbound queue, bounded in bytes and in items, in front of the
//! socket's write half: a push is written at once by the task that makes it when the
//! socket takes it, and a drain task runs only while the socket is behind. A push that
//! would overflow the queue closes the connection as a slow consumer: publishers never
//! wait on a subscriber. It also carries the connection's wake-up signal (close, and
//! the node's deadline wheel, `wheel.rs`).
//!
//! The queue is a small inline queue under an uncontended mutex rather than a channel:
//! an idle connection then holds no queue storage at all (a bounded tokio channel
//! allocates a block of slots up front), and the writer takes everything queued in one
//! step.

use super::ws;
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use switchboard_protocol::DisconnectCode;
use switchboard_protocol::frame;
use switchboard_protocol::pb::{Closing, ServerMessage, server_message::Body};
use tokio::io::AsyncWrite;

/// The socket's write half, whatever the transport (TCP now, TLS later).
pub(crate) type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// Why and how a connection ends.
#[derive(Debug, Clone)]
pub(crate) struct Close {
    /// The disconnect code; `None` when the peer went away and nothing is sent.
    pub code: Option<DisconnectCode>,
    /// Detail for the `Closing` push.
    pub reason: String,
}

/// One queued item.
enum Chunk {
    /// Encoded server messages, joined with their neighbours into binary frames.
    Data(Bytes),
    /// A whole control frame (a pong), written as it is.
    Control(Bytes),
}

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Chunk::Data(b) | Chunk::Control(b) => b.len(),
        }
    }
}

/// The queued items: the first inline, the rest in a `VecDeque` that is allocated only
/// when two items wait at once, so that a connection that was sent something and is
/// idle now holds no queue storage (the four slots a `VecDeque` keeps after its first
/// item were 160 B of every idle connection). Empty `head` means empty `rest`.
#[derive(Default)]
struct Queue {
    head: Option<Chunk>,
    rest: VecDeque<Chunk>,
}

impl Queue {
    fn len(&self) -> usize {
        usize::from(self.head.is_some()) + self.rest.len()
    }

    fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    fn push_back(&mut self, chunk: Chunk) {
        if self.head.is_none() {
            self.head = Some(chunk);
        } else {
            self.rest.push_back(chunk);
        }
    }

    fn pop_front(&mut self) -> Option<Chunk> {
        let first = self.head.take()?;
        self.head = self.rest.pop_front();
        Some(first)
    }

    fn iter(&self) -> impl Iterator<Item = &Chunk> {
        self.head.iter().chain(self.rest.iter())
    }
}

/// Everything behind the queue's lock: the queue, the socket, and the bytes the socket
/// has not taken yet.
struct State {
    queue: Queue,
    socket: WriteHalf,
    /// Framed bytes the socket did not take at once, from `pending_at` on; only the
    /// writer task writes them, and nothing is written directly while there are any.
    pending: Vec<u8>,
    pending_at: usize,
    /// Written but not yet flushed (a transport that buffers, such as TLS).
    unflushed: bool,
    /// In the deferred list of the task running now: that task writes the queue before
    /// it parks.
    scheduled: bool,
    /// A drain task is running (it owns the writing until it stops).
    draining: bool,
}

impl State {
    /// Whether nobody is writing: bytes queued now may go straight to the socket.
    fn idle(&self) -> bool {
        self.pending_at >= self.pending.len() && !self.unflushed
    }
}

/// Handle to one connection's outbound queue and its socket's write half. Shared by the
/// session and the hub.
///
/// A push to a connection nobody is writing to is written at once by the task that
/// pushes (or, inside [`DeferWrites`], when that task is about to park, so that the
/// pushes of one read batch go out as one write per connection); the writer task only
/// drains what the socket could not take at once, and sends the close.
pub(crate) struct Outbound {
    state: Mutex<State>,
    /// The limits, shared by the node's connections.
    limits: Arc<Limits>,
    queued_bytes: AtomicUsize,
    /// The first close decided (a watch channel cost ~400 bytes per connection).
    close: Mutex<Option<Close>>,
    /// Wakes the connection's own task, keeping the wake-up if it is busy: on the
    /// close, and when the node's deadline wheel rings it ([`Outbound::ring`]).
    signal: tokio::sync::Notify,
    /// Wakes whoever waits for the close (a drain task, `finish`).
    closing: tokio::sync::Notify,
    /// Signalled each time chunks are taken off the queue, and on close.
    drained: tokio::sync::Notify,
    /// Set by the first close: nothing more is queued after it, so a message that
    /// overflowed can never be overtaken by a later one that still fitted.
    closed: std::sync::atomic::AtomicBool,
}

/// An outbound queue's limits and where its drain tasks run: one per node, shared by
/// its connections (inline they were 56 B of every connection).
pub(crate) struct Limits {
    max_items: usize,
    max_bytes: usize,
    /// Frames join queued chunks up to this many bytes (a larger chunk goes alone).
    batch_bytes: usize,
    /// How long a write may wait for the socket before the connection is closed.
    write_timeout: Duration,
    /// Where drain tasks run (pushes also come from threads outside the runtime).
    runtime: tokio::runtime::Handle,
}

impl Limits {
    /// Queues of at most `max_items` items and `max_bytes` bytes, framing up to
    /// `batch_bytes` per WebSocket frame, a write waiting at most `write_timeout`.
    /// Call from inside the runtime.
    pub fn new(
        max_items: usize,
        max_bytes: usize,
        batch_bytes: usize,
        write_timeout: Duration,
    ) -> Arc<Limits> {
        Arc::new(Limits {
            max_items: max_items.max(1),
            max_bytes,
            batch_bytes: batch_bytes.max(1),
            write_timeout,
            runtime: tokio::runtime::Handle::current(),
        })
    }
}

/// Queue storage kept by an idle connection is at most this many slots.
const IDLE_SLOTS: usize = 16;

thread_local! {
    /// The queues pushed to by the task being polled inside [`DeferWrites`] (`None`
    /// outside one): written when that poll returns.
    static DEFERRED: RefCell<Option<Vec<Arc<Outbound>>>> = const { RefCell::new(None) };
    /// Where direct writes are framed.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// An empty deferred list with room, between the polls of [`DeferWrites`].
    static SPARE: RefCell<Vec<Arc<Outbound>>> = const { RefCell::new(Vec::new()) };
}

impl Outbound {
    /// A queue within `limits` in front of `socket`.
    pub fn new(socket: WriteHalf, limits: Arc<Limits>) -> Arc<Outbound> {
        Arc::new(Outbound {
            state: Mutex::new(State {
                queue: Queue::default(),
                socket,
                pending: Vec::new(),
                pending_at: 0,
                unflushed: false,
                scheduled: false,
                draining: false,
            }),
            limits,
            queued_bytes: AtomicUsize::new(0),
            close: Mutex::new(None),
            signal: tokio::sync::Notify::new(),
            closing: tokio::sync::Notify::new(),
            drained: tokio::sync::Notify::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Queues one encoded chunk. Returns false (and closes the connection as a slow
    /// consumer) when the queue is full; false also once the connection is closing.
    pub fn push(self: &Arc<Self>, chunk: Bytes) -> bool {
        self.enqueue(Chunk::Data(chunk))
    }

    /// Queues a pong answering a ping with `payload`.
    pub fn pong(self: &Arc<Self>, payload: &[u8]) -> bool {
        let mut frame = Vec::with_capacity(2 + payload.len());
        ws::put_control(&mut frame, ws::OP_PONG, payload);
        self.enqueue(Chunk::Control(frame.into()))
    }

    fn enqueue(self: &Arc<Self>, chunk: Chunk) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let len = chunk.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        // One chunk larger than the whole limit (a presence SNAPSHOT of a channel full
        // of large states, within the spec's limits) passes alone through an empty
        // queue; see `push_wait`.
        if before + len > self.limits.max_bytes && before > 0 {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.overflow();
            return false;
        }
        let mut st = self.lock();
        // Checked under the queue's lock: the writer sets it (under the lock) when it
        // stops, so nothing is queued after that.
        if self.closed.load(Ordering::Acquire) {
            drop(st);
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        if st.queue.len() >= self.limits.max_items {
            drop(st);
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.overflow();
            return false;
        }
        st.queue.push_back(chunk);
        if st.scheduled {
            return true;
        }
        if st.idle() {
            if defer(self) {
                st.scheduled = true;
            } else {
                self.write_now(&mut st);
            }
            return true;
        }
        self.start_drain(&mut st);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the queue into framed bytes in `buf` (binary frames of up to
    /// `batch_bytes`, control frames as they are). Returns the bytes taken.
    fn frame_queue(&self, queue: &mut Queue, buf: &mut Vec<u8>) -> usize {
        let mut taken = 0;
        while let Some(first) = queue.pop_front() {
            taken += first.len();
            let first = match first {
                Chunk::Control(frame) => {
                    buf.extend_from_slice(&frame);
                    continue;
                }
                Chunk::Data(first) => first,
            };
            let mut len = first.len();
            let mut count = 0;
            for chunk in queue.iter() {
                match chunk {
                    Chunk::Data(b) if len + b.len() <= self.limits.batch_bytes => {
                        len += b.len();
                        count += 1;
                    }
                    _ => break,
                }
            }
            ws::put_frame(buf, ws::OP_BINARY, len);
            buf.extend_from_slice(&first);
            for _ in 0..count {
                if let Some(Chunk::Data(b)) = queue.pop_front() {
                    taken += b.len();
                    buf.extend_from_slice(&b);
                }
            }
        }
        if queue.rest.capacity() > IDLE_SLOTS {
            queue.rest.shrink_to(IDLE_SLOTS);
        }
        taken
    }

    /// Accounts for `bytes` taken off the queue.
    fn taken(&self, bytes: usize) {
        if bytes > 0 {
            self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.drained.notify_waiters();
        }
    }

    /// Writes the queue straight onto the socket, as far as it takes the bytes without
    /// waiting; the rest is left to the writer task. Only while nobody else writes.
    fn write_now(self: &Arc<Self>, st: &mut State) {
        if self.closed.load(Ordering::Acquire) || !st.idle() {
            return;
        }
        SCRATCH.with(|scratch| {
            let mut buf = scratch.borrow_mut();
            buf.clear();
            let taken = self.frame_queue(&mut st.queue, &mut buf);
            self.taken(taken);
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            let mut at = 0;
            while at < buf.len() {
                match Pin::new(&mut st.socket).poll_write(&mut cx, &buf[at..]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        self.close_quietly();
                        return;
                    }
                    Poll::Ready(Ok(n)) => at += n,
                    Poll::Pending => break,
                }
            }
            if at < buf.len() {
                st.pending.clear();
                st.pending.extend_from_slice(&buf[at..]);
                st.pending_at = 0;
            } else {
                match Pin::new(&mut st.socket).poll_flush(&mut cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => {
                        self.close_quietly();
                        return;
                    }
                    Poll::Pending => st.unflushed = true,
                }
            }
            if buf.capacity() > 64 * 1024 {
                *buf = Vec::new();
            }
        });
        if !st.idle() {
            self.start_drain(st);
        }
    }

    /// Starts a drain task for what the socket did not take, unless one runs.
    fn start_drain(self: &Arc<Self>, st: &mut State) {
        if st.draining || self.closed.load(Ordering::Acquire) {
            return;
        }
        st.draining = true;
        self.limits.runtime.spawn(drain(self.clone()));
    }

    /// Writes a queue that was deferred to the end of its task's poll.
    fn flush_deferred(self: &Arc<Self>) {
        let mut st = self.lock();
        st.scheduled = false;
        if st.queue.is_empty() {
            return;
        }
        if st.idle() {
            self.write_now(&mut st);
        } else {
            self.start_drain(&mut st);
        }
    }

    /// The drain side: writes the pending bytes and whatever is queued behind them
    /// until the socket has them all (Pending while it is full). Once the connection
    /// is closing only the close sequence (`closing`) writes.
    fn poll_drain(&self, cx: &mut Context<'_>, closing: bool) -> Poll<std::io::Result<()>> {
        let mut st = self.lock();
        let st = &mut *st;
        loop {
            if !closing && self.closed.load(Ordering::Acquire) {
                return Poll::Ready(Ok(()));
            }
            while st.pending_at < st.pending.len() {
                match Pin::new(&mut st.socket).poll_write(cx, &st.pending[st.pending_at..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                    }
                    Poll::Ready(Ok(n)) => st.pending_at += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
                st.unflushed = true;
            }
            st.pending = Vec::new();
            st.pending_at = 0;
            if st.unflushed {
                match Pin::new(&mut st.socket).poll_flush(cx) {
                    Poll::Ready(Ok(())) => st.unflushed = false,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if st.queue.is_empty() || self.closed.load(Ordering::Acquire) {
                return Poll::Ready(Ok(()));
            }
            let mut pending = std::mem::take(&mut st.pending);
            let taken = self.frame_queue(&mut st.queue, &mut pending);
            st.pending = pending;
            self.taken(taken);
        }
    }

    /// Queues one chunk, waiting (up to `patience`) for room instead of overflowing:
    /// for bulk sends the session controls, such as a replay. Returns false if the
    /// connection closed or stayed full for `patience` (then it is closed as slow).
    pub async fn push_wait(self: &Arc<Self>, chunk: Bytes, patience: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            // Register for the writer's signal before looking, so none is missed.
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.close_reason().is_some() {
                return false;
            }
            let queued = self.queued_bytes.load(Ordering::Relaxed);
            let fits = queued + chunk.len() <= self.limits.max_bytes || queued == 0;
            if fits && self.lock().queue.len() < self.limits.max_items {
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
                self.limits.max_bytes
            ),
        );
    }

    /// Decides the close (the first one wins) and wakes whoever waits for it.
    fn decide(&self, close: Close) {
        {
            let mut c = self.close.lock().unwrap_or_else(|e| e.into_inner());
            if c.is_none() {
                *c = Some(close);
            }
        }
        self.closed.store(true, Ordering::Release);
        self.drained.notify_waiters();
        self.closing.notify_waiters();
        self.signal.notify_one();
    }

    /// Wakes the connection's task to look at its deadlines (the node's deadline
    /// wheel calls it); kept until the task next waits if it is busy.
    pub fn ring(&self) {
        self.signal.notify_one();
    }

    /// Completes on the next [`Outbound::ring`] or close since the last one was taken.
    /// Only the connection's own task waits here.
    pub async fn signaled(&self) {
        self.signal.notified().await;
    }

    /// Asks for a `Closing` push and a close frame. The first close wins.
    pub fn close(&self, code: DisconnectCode, reason: impl Into<String>) {
        self.decide(Close {
            code: Some(code),
            reason: reason.into(),
        });
    }

    /// Ends the connection without telling the peer (it is already gone).
    pub fn close_quietly(&self) {
        self.decide(Close {
            code: None,
            reason: String::new(),
        });
    }

    /// Completes once the connection is closing.
    pub async fn wait_closed(&self) {
        loop {
            let closing = self.closing.notified();
            tokio::pin!(closing);
            closing.as_mut().enable();
            if self.close_reason().is_some() {
                return;
            }
            closing.await;
        }
    }

    /// Whether the connection is closing (closed, kicked, replaced by a resume).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The close decided so far, if any.
    pub fn close_reason(&self) -> Option<Close> {
        self.close.lock().unwrap_or_else(|e| e.into_inner()).clone()
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

/// Adds `out` to the running task's deferred list, if it has one.
fn defer(out: &Arc<Outbound>) -> bool {
    DEFERRED.with(|d| match &mut *d.borrow_mut() {
        Some(list) => {
            list.push(out.clone());
            true
        }
        None => false,
    })
}

/// Runs `F` with its pushes deferred: a push to a connection nobody is writing to is
/// written when the poll that made it returns — when the task is about to park, or
/// yields — so that everything one read batch produced for a connection goes out in
/// one write, from this task, with no writer task woken.
pub(crate) struct DeferWrites<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> DeferWrites<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> Self {
        DeferWrites {
            inner: Box::pin(inner),
        }
    }
}

/// Puts the thread's previous deferred list back and writes the queues deferred during
/// the poll, even if it panicked (a queue left scheduled would never be written).
struct Restore {
    prev: Option<Vec<Arc<Outbound>>>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let Ok(list) = DEFERRED.try_with(|d| std::mem::replace(&mut *d.borrow_mut(), prev)) else {
            return;
        };
        let mut list = list.unwrap_or_default();
        for q in list.drain(..) {
            q.flush_deferred();
        }
        if list.capacity() <= 64 {
            let _ = SPARE.try_with(|s| *s.borrow_mut() = list);
        }
    }
}

impl<F: Future> Future for DeferWrites<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _scope = defer_scope();
        self.inner.as_mut().poll(cx)
    }
}

/// Defers the pushes made on this thread until the returned guard drops (then writes
/// them, as [`DeferWrites`] does at the end of a poll); for one poll of a task that is
/// not wrapped in [`DeferWrites`], such as a broker's delivery worker. Scopes nest.
pub(crate) fn defer_scope() -> impl Sized {
    // The thread's spare list, so that a poll allocates nothing and an idle
    // connection keeps no list of its own.
    let list = SPARE.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let prev = DEFERRED.with(|d| d.borrow_mut().replace(list));
    Restore { prev }
}

/// Writes what the socket could not take at once, then stops (a later push that finds
/// the socket idle writes for itself). Stops without writing once the connection is
/// closing: the close sequence ([`finish`]) owns the socket then.
async fn drain(out: Arc<Outbound>) {
    loop {
        let result = tokio::select! {
            r = within(out.limits.write_timeout, std::future::poll_fn(|cx| out.poll_drain(cx, false))) => r,
            _ = out.wait_closed() => Ok(Ok(())),
        };
        match result {
            Ok(Ok(())) => {
                let mut st = out.lock();
                if out.closed.load(Ordering::Acquire) || (st.idle() && st.queue.is_empty()) {
                    st.draining = false;
                    return;
                }
            }
            Ok(Err(_)) => {
                out.lock().draining = false;
                out.close_quietly();
                return;
            }
            Err(_) => {
                out.lock().draining = false;
                out.close(DisconnectCode::WriteTimeout, "socket write timed out");
                return;
            }
        }
    }
}

/// The close sequence: once the connection is closing (waits for it), writes what was
/// already framed, then — for a close with a code — what was queued before it (unless
/// the queue itself was the problem), the `Closing` push and a close frame (bounded by
/// `write_timeout`), and shuts the socket's write side.
pub(crate) async fn finish(out: Arc<Outbound>, write_timeout: Duration) {
    out.wait_closed().await;
    // Nothing is queued or written directly from here on.
    {
        let mut st = out.lock();
        out.closed.store(true, Ordering::Release);
        let rest = std::mem::take(&mut st.queue);
        let close = out.close_reason();
        let st = &mut *st;
        // Bytes already framed go out whole (a frame cut short would garble the close).
        let mut buf = std::mem::take(&mut st.pending);
        buf.drain(..st.pending_at.min(buf.len()));
        st.pending_at = 0;
        match &close {
            Some(Close {
                code: Some(code),
                reason,
            }) => {
                // What was queued before the close (an error reply to a refused login,
                // a logout reply) still goes out, unless the queue itself is the
                // problem.
                if !matches!(
                    code,
                    DisconnectCode::SlowConsumer | DisconnectCode::WriteTimeout
                ) {
                    let mut rest = rest;
                    out.frame_queue(&mut rest, &mut buf);
                }
                let push = frame::encode(&ServerMessage {
                    id: 0,
                    body: Some(Body::Closing(Closing {
                        code: *code as u32,
                        reason: reason.clone(),
                        reconnect: code.reconnect(),
                    })),
                });
                ws::put_frame(&mut buf, ws::OP_BINARY, push.len());
                buf.extend_from_slice(&push);
                let mut payload = code.as_u16().to_be_bytes().to_vec();
                payload.extend_from_slice(code.info().name.as_bytes());
                ws::put_control(&mut buf, ws::OP_CLOSE, &payload);
            }
            // The peer went away or sent its close: answer with a close frame, if the
            // socket still takes one.
            _ => ws::put_control(&mut buf, ws::OP_CLOSE, &[]),
        }
        st.pending = buf;
        st.unflushed = true;
    }
    let _ = tokio::time::timeout(
        write_timeout,
        std::future::poll_fn(|cx| out.poll_drain(cx, true)),
    )
    .await;
    let _ = tokio::time::timeout(
        write_timeout,
        std::future::poll_fn(|cx| Pin::new(&mut out.lock().socket).poll_shutdown(cx)),
    )
    .await;
}
