//! One WebSocket connection: the read loop (frames → messages → session) next to the
//! writer task, which only drains what the socket could not take at once (replies and
//! pushes are written by the task that makes them, see `node/outbound.rs`). The loop
//! also owns the connection's timers: login timeout, heartbeat timeout and the token's
//! will-expire and expiry.

use crate::dispatch;
use crate::node::Node;
use crate::node::outbound::{DeferWrites, Outbound, finish};
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
pub(crate) fn serve<S>(
    node: Arc<Node>,
    ws: WebSocketStream<S>,
    peer: SocketAddr,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    DeferWrites::new(serve_stream(node, ws.into_inner(), peer))
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
    reject_stream(ws.into_inner(), code, reason)
}

async fn reject_stream<S>(stream: S, code: DisconnectCode, reason: String)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (_read, write) = tokio::io::split(stream);
    let grace = std::time::Duration::from_secs(2);
    let out = Outbound::new(Box::new(write), 4, 4096, 4096, grace);
    out.close(code, reason);
    finish(out, grace).await;
}

async fn serve_stream<S>(node: Arc<Node>, stream: S, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cfg = &node.config;
    let (read, write) = tokio::io::split(stream);
    let mut stream = Reader::new(read, cfg.max_frame_bytes);
    // No writer task: pushes are written by the tasks that make them, and a drain task
    // runs only while the socket is behind (node/outbound.rs).
    let out = Outbound::new(
        Box::new(write),
        cfg.outbound_queue_messages,
        cfg.outbound_queue_bytes,
        cfg.write_batch_bytes,
        cfg.write_timeout,
    );
    let mut shutdown = node.shutdown.subscribe();
    let mut session = Client::new(node.clone(), out.clone());
    let max_messages = cfg.max_messages_per_frame;
    // The two timers live as long as the connection and are reset only when their
    // deadline moves earlier or when they fire: traffic moves the read deadline later
    // on every frame, and a timer created per frame cost a timer-wheel insert and
    // removal each (docs/benchmarks.md).
    let read_timer = tokio::time::sleep_until(session.read_deadline().0.into());
    tokio::pin!(read_timer);
    let mut token_at = session.token_deadline();
    let token_timer = tokio::time::sleep_until(token_at.unwrap_or_else(Instant::now).into());
    tokio::pin!(token_timer);
    loop {
        tokio::select! {
            _ = out.wait_closed() => break,
            _ = shutdown_requested(&mut shutdown) => {
                out.close(DisconnectCode::Shutdown, "server shutting down");
                break;
            }
            _ = &mut read_timer => {
                let (deadline, timeout_code) = session.read_deadline();
                if Instant::now() >= deadline {
                    out.close(timeout_code, "no traffic from the client in time");
                    break;
                }
                read_timer.as_mut().reset(deadline.into());
            }
            _ = &mut token_timer, if token_at.is_some() => {
                Box::pin(session.on_token_deadline()).await;
            }
            frame = stream.next() => {
                // Frames already read (or readable at once) are handled with this one,
                // so that a run of publishes among them is one pipeline to the engine
                // (`dispatch::handle_batch`). Boxed: the request futures (login,
                // subscribe, …) are large, and inline they would make every idle
                // connection's task as large as the largest.
                let mut frames = vec![frame];
                while frames.len() < 64 {
                    match futures_util::FutureExt::now_or_never(stream.next()) {
                        Some(f) => frames.push(f),
                        None => break,
                    }
                }
                let handled = Box::pin(handle_frames(&mut session, &out, frames, max_messages));
                if handled.await.is_break() {
                    break;
                }
            }
        }
        // A login replaces the login timeout with the heartbeat timeout, which may
        // come sooner; token deadlines change with logins, renewals and joins.
        let deadline = tokio::time::Instant::from_std(session.read_deadline().0);
        if deadline < read_timer.deadline() {
            read_timer.as_mut().reset(deadline);
        }
        let at = session.token_deadline();
        if at != token_at {
            token_at = at;
            if let Some(at) = at {
                token_timer.as_mut().reset(at.into());
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

/// Completes once the server shuts down (at once if it already has).
async fn shutdown_requested(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let down = rx.wait_for(|down| *down).await.is_ok();
    if !down {
        std::future::pending::<()>().await;
    }
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
            for msg in FrameDecoder::<ClientMessage>::new(data, max_messages) {
                match msg {
                    Ok(msg) => {
                        dispatch::handle(session, msg).await?;
                        // Time spent handling (a long replay) is not client silence.
                        session.touch();
                    }
                    Err(e) => {
                        out.close(DisconnectCode::ProtocolError, e.to_string());
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
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
