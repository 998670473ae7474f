//! Minimal socketioxide server for bench/compare, the same as `socketio/server.js`:
//! WebSocket transport only, the default namespace, two events.
//!
//! - `join(room, ack)`: joins `room`, then acknowledges.
//! - `to(room, data)`: relays `data` as event `m` to every socket in `room` (fanout:
//!   the subscribers' common room; p2p: the peer's own room).
//!
//! Usage: `compare-socketioxide [ADDR]` (default 127.0.0.1:3000).
//!
//! One worker, as the server is pinned to one core: a current-thread runtime.
//! socketioxide 0.18 runs every event handler as a spawned task; the current-thread
//! scheduler runs them in spawn order, so a socket's events are relayed in the order
//! they came. (A multi-thread runtime, even with one worker, runs the latest spawned
//! task first (its LIFO slot) and reorders them: measured 843,200 of 870,400
//! fanout deliveries out of order.)

use hyper_util::rt::TokioIo;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::{SocketIo, TransportType};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_string());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(addr))
}

async fn serve(addr: String) -> Result<(), Box<dyn std::error::Error>> {
    // Packets queued per connection: the default (128) would drop messages (emit fails
    // when the queue is full) at a fanout window of 128 by construction; 8192 packets of
    // ~150 B is ~1.2 MB (Switchboard's outbound queue: 4 MiB per connection).
    let (svc, io) = SocketIo::builder()
        .transports([TransportType::Websocket])
        .max_buffer_size(8192)
        .build_svc();
    io.ns("/", async |s: SocketRef| {
        s.on(
            "join",
            async |s: SocketRef, Data::<String>(room), ack: AckSender| {
                s.join(room);
                let _ = ack.send(&());
            },
        );
        s.on(
            "to",
            async |io: SocketIo, Data::<(String, String)>((room, data))| {
                let _ = io.to(room).emit("m", &data).await;
            },
        );
    });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("socketioxide 0.18 on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let svc = svc.clone();
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}
