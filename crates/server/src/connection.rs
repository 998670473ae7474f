//! One WebSocket connection: the read loop (frames → messages → session); replies and
//! pushes are written by the task that makes them (`node/outbound.rs`). The loop also
//! keeps the connection's deadlines — login timeout, heartbeat timeout, the tokens'
//! will-expire and expiry — on the node's deadline wheel (`node/wheel.rs`), and closes
//! the connection when the node shuts down.

use crate::dispatch;
use crate::node::Node;
use crate::node::outbound::{DeferWrites, Limits, Outbound, finish};
use crate::node::ws::{Incoming, ReadError, Reader};
use crate::session::client::Client;
use crate::session::lifecycle;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;
use switchboard_protocol::DisconnectCode;
use switchboard_protocol::frame::FrameDecoder;
use switchboard_protocol::pb::ClientMessage;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;

/// Serves one upgraded connection until it ends, then leaves everything it held.
///
/// After the handshake the socket is read and written with the node's own framing
/// (`node/ws.rs`); the handshake reads nothing past the request, since a client sends
/// no frame before the server's answer (RFC 6455 §4.1).
///
/// Not an `async fn`: the WebSocket stream is unwrapped before the future exists, so
/// that the caller's task is not sized for tungstenite's state.
/// `origin` is the handshake's `Origin` header (a browser's), which the login checks
/// against the app's allow-list.
pub(crate) fn serve<S>(
    node: Arc<Node>,
    ws: WebSocketStream<S>,
    peer: SocketAddr,
    origin: Option<String>,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    DeferWrites::new(serve_stream(node, ws.into_inner(), peer, origin))
}

/// Tells a connection over a connection limit why it is closed (`Overloaded`).
pub(crate) fn reject<S>(
    ws: WebSocketStream<S>,
    code: DisconnectCode,
    reason: String,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Boxed: inline, its close sequence (timers included) would size the accept
    // task of every connection, rejected or not.
    Box::pin(reject_stream(ws.into_inner(), code, reason))
}

async fn reject_stream<S>(stream: S, code: DisconnectCode, reason: String)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (_read, write) = tokio::io::split(stream);
    let grace = std::time::Duration::from_secs(2);
    let out = Outbound::new(Box::new(write), Limits::new(4, 4096, 4096, grace));
    out.close(code, reason);
    finish(out, grace).await;
}

async fn serve_stream<S>(node: Arc<Node>, stream: S, peer: SocketAddr, origin: Option<String>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cfg = &node.config;
    let (read, write) = tokio::io::split(stream);
    let mut stream = Reader::new(read, cfg.max_frame_bytes);
    // No writer task: pushes are written by the tasks that make them, and a drain task
    // runs only while the socket is behind (node/outbound.rs).
    let out = Outbound::new(Box::new(write), node.outbound_limits());
    let mut session = Client::new(node.clone(), out.clone());
    session.origin = origin;
    let max_messages = cfg.max_messages_per_frame;
    // No timer of its own: the node's deadline wheel rings `out` once the earliest
    // deadline registered (`armed`) has passed, and the loop looks at the clock then.
    // Traffic moves the read deadline later without touching the wheel; a deadline
    // that moves into an earlier slot (a login, a token's) is registered again, so a
    // deadline is noticed at most one slot late. (Token deadlines are wall-clock
    // seconds turned into an `Instant` on each call, so they jitter by microseconds:
    // within a slot that is not a move.)
    let mut armed: Option<Instant> = None;
    loop {
        let next = next_deadline(&session);
        if armed.is_none_or(|at| node.wheel.slot(next) < node.wheel.slot(at)) {
            node.wheel.arm(next, &out);
            armed = Some(next);
        }
        tokio::select! {
            _ = out.signaled() => {
                if out.is_closed() {
                    break;
                }
                if *node.shutdown.borrow() {
                    out.close(DisconnectCode::Shutdown, "server shutting down");
                    break;
                }
                let now = Instant::now();
                if armed.is_some_and(|at| now >= at) {
                    // That entry has left the wheel; the next round registers anew.
                    armed = None;
                }
                let (deadline, timeout_code) = session.read_deadline();
                if now >= deadline {
                    out.close(timeout_code, "no traffic from the client in time");
                    break;
                }
                // (`token_deadline` reads the clock itself: compare with a later read.)
                if session.token_deadline().is_some_and(|at| at <= Instant::now()) {
                    Box::pin(session.on_token_deadline()).await;
                }
            }
            frame = stream.next() => {
                // Frames already read (or readable at once) are handled with this one,
                // so that a run of publishes among them is one pipeline to the engine
                // (`dispatch::handle_batch`). Boxed: the request futures (login,
                // subscribe, …) are large, and inline they would make every idle
                // connection's task as large as the largest.
                // One frame alone (the common case) takes the direct path, without
                // the lists; nothing is read past a close or an error.
                let more = if matches!(frame, Ok(Incoming::Binary(_))) {
                    futures_util::FutureExt::now_or_never(stream.next())
                } else {
                    None
                };
                let handled = match more {
                    None => Box::pin(handle_frame(&mut session, &out, frame, max_messages)).await,
                    Some(next) => {
                        let mut frames = vec![frame, next];
                        while frames.len() < 64
                            && matches!(frames.last(), Some(Ok(Incoming::Binary(_))))
                        {
                            match futures_util::FutureExt::now_or_never(stream.next()) {
                                Some(f) => frames.push(f),
                                None => break,
                            }
                        }
                        Box::pin(handle_frames(&mut session, &out, frames, max_messages)).await
                    }
                };
                if handled.is_break() {
                    break;
                }
            }
        }
    }
    let user = session.attached.as_ref().map(|a| a.session.user.clone());
    let why = out.close_reason();
    node.metrics.disconnected(why.as_ref().and_then(|c| c.code));
    tracing::debug!(
        %peer,
        user = user.as_deref().unwrap_or(""),
        code = why.as_ref().and_then(|c| c.code).map(|c| c.as_u16()),
        reason = why.as_ref().map_or("", |c| c.reason.as_str()),
        "connection closed"
    );
    // The close goes out (Closing push, close frame) while the session is left.
    let grace = node.config.write_timeout;
    let leave = async {
        Box::pin(lifecycle::disconnected(&mut session)).await;
        out.close_quietly();
    };
    tokio::join!(leave, Box::pin(finish(out.clone(), grace)));
    drop(session);
}

/// The connection's next deadline: its read deadline (login or heartbeat timeout) or
/// its session's next token event, whichever comes first.
fn next_deadline(session: &Client) -> Instant {
    let read = session.read_deadline().0;
    session.token_deadline().map_or(read, |t| t.min(read))
}

/// Handles frames read together: the messages of consecutive binary frames go to
/// `dispatch::handle_batch` as one list; any other frame (and a binary frame before
/// login, with its own size limit) is handled in its place, in order.
async fn handle_frames(
    session: &mut Client,
    out: &Arc<Outbound>,
    frames: Vec<Result<Incoming, ReadError>>,
    max_messages: usize,
) -> ControlFlow<()> {
    let mut msgs: Vec<ClientMessage> = Vec::new();
    for frame in frames {
        match frame {
            Ok(Incoming::Binary(data)) if session.attached.is_some() && !data.is_empty() => {
                session.touch();
                for msg in FrameDecoder::<ClientMessage>::new(data, max_messages) {
                    match msg {
                        Ok(m) => msgs.push(m),
                        Err(e) => {
                            dispatch::handle_batch(session, std::mem::take(&mut msgs)).await?;
                            out.close(DisconnectCode::ProtocolError, e.to_string());
                            return ControlFlow::Break(());
                        }
                    }
                }
            }
            other => {
                dispatch::handle_batch(session, std::mem::take(&mut msgs)).await?;
                handle_frame(session, out, other, max_messages).await?;
            }
        }
    }
    dispatch::handle_batch(session, msgs).await
}

/// Handles one WebSocket message. `Break` ends the connection.
async fn handle_frame(
    session: &mut Client,
    out: &Arc<Outbound>,
    frame: Result<Incoming, ReadError>,
    max_messages: usize,
) -> ControlFlow<()> {
    match frame {
        Ok(Incoming::Binary(data)) => {
            session.touch();
            if data.is_empty() {
                out.close(DisconnectCode::ProtocolError, "empty frame");
                return ControlFlow::Break(());
            }
            let before_login = session.node.config.max_frame_bytes_before_login;
            if session.attached.is_none() && data.len() > before_login {
                out.close(
                    DisconnectCode::FrameTooLarge,
                    format!(
                        "frame of {} bytes before login is over the limit of {before_login}",
                        data.len()
                    ),
                );
                return ControlFlow::Break(());
            }
            let mut decoder = FrameDecoder::<ClientMessage>::new(data, max_messages);
            let first = decoder.next();
            let second = decoder.next();
            if second.is_none() {
                // One message (the common case): handled directly.
                match first {
                    Some(Ok(msg)) => {
                        dispatch::handle(session, msg).await?;
                        // Time spent handling (a long replay) is not client silence.
                        session.touch();
                    }
                    Some(Err(e)) => {
                        out.close(DisconnectCode::ProtocolError, e.to_string());
                        return ControlFlow::Break(());
                    }
                    None => {}
                }
                return ControlFlow::Continue(());
            }
            // Several: one list, so that a run of publishes among them is one pipeline
            // (`dispatch::handle_batch`); the messages before a malformed one are
            // handled, then the connection closes.
            let mut msgs = Vec::new();
            for msg in first.into_iter().chain(second).chain(decoder) {
                match msg {
                    Ok(m) => msgs.push(m),
                    Err(e) => {
                        dispatch::handle_batch(session, msgs).await?;
                        out.close(DisconnectCode::ProtocolError, e.to_string());
                        return ControlFlow::Break(());
                    }
                }
            }
            dispatch::handle_batch(session, msgs).await
        }
        Ok(Incoming::Text) => {
            out.close(
                DisconnectCode::ProtocolError,
                "text frames are not part of the protocol; send binary frames",
            );
            ControlFlow::Break(())
        }
        Ok(Incoming::Ping(payload)) => {
            session.touch();
            out.pong(&payload);
            ControlFlow::Continue(())
        }
        Ok(Incoming::Pong) => {
            session.touch();
            ControlFlow::Continue(())
        }
        Ok(Incoming::Close) => {
            out.close_quietly();
            ControlFlow::Break(())
        }
        Err(ReadError::TooLarge { size, max }) => {
            out.close(
                DisconnectCode::FrameTooLarge,
                format!("frame of {size} bytes is over the limit of {max}"),
            );
            ControlFlow::Break(())
        }
        Err(ReadError::Protocol(e)) => {
            out.close(DisconnectCode::ProtocolError, e);
            ControlFlow::Break(())
        }
        Err(ReadError::Gone) => {
            // The TCP connection ended without a close frame (killed app, middlebox):
            // a lost link, not a protocol error; the session waits for a resume.
            out.close_quietly();
            ControlFlow::Break(())
        }
    }
}
