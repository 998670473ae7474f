//! Tests of the fault-injection proxy test helper against a tiny TCP echo server.

mod common;

use common::proxy::FaultProxy;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

/// Time allowed for something expected to happen.
const WAIT: Duration = Duration::from_secs(2);

/// Starts a TCP echo server on a loopback port.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Starts an echo server and a proxy in front of it.
async fn setup() -> FaultProxy {
    FaultProxy::start(echo_server().await).await
}

/// Writes `msg` and expects it echoed back within [`WAIT`].
async fn roundtrip(stream: &mut TcpStream, msg: &[u8]) {
    stream.write_all(msg).await.unwrap();
    let mut buf = vec![0u8; msg.len()];
    timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .expect("echo read");
    assert_eq!(buf, msg);
}

/// Expects the peer to close or reset `stream` within [`WAIT`].
async fn expect_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    match timeout(WAIT, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("expected a closed connection, read {n} bytes"),
        Err(_) => panic!("connection still open after {WAIT:?}"),
    }
}

/// Polls until the proxy counts `n` open connections.
async fn wait_connections(proxy: &FaultProxy, n: usize) {
    let deadline = Instant::now() + WAIT;
    while proxy.connections() != n {
        assert!(
            Instant::now() < deadline,
            "expected {n} connections, have {}",
            proxy.connections()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn pass_forwards_both_ways() {
    let proxy = setup().await;
    assert_eq!(proxy.url(), format!("ws://{}", proxy.addr()));
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut c, b"hello").await;
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    roundtrip(&mut c, &big).await;
    // A half-close is passed on: the echo server ends its side, and so does the proxy.
    c.shutdown().await.unwrap();
    expect_closed(&mut c).await;
}

#[tokio::test]
async fn freeze_holds_bytes_until_pass() {
    let proxy = setup().await;
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut c, b"before").await;
    proxy.freeze();
    c.write_all(b"during").await.unwrap();
    let mut buf = [0u8; 6];
    let stalled = timeout(Duration::from_millis(300), c.read_exact(&mut buf)).await;
    assert!(stalled.is_err(), "nothing may come through while frozen");
    // A connection made while frozen is frozen too.
    let mut late = TcpStream::connect(proxy.addr()).await.unwrap();
    late.write_all(b"late").await.unwrap();
    proxy.pass();
    timeout(WAIT, c.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"during");
    let mut buf = [0u8; 4];
    timeout(WAIT, late.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"late");
    roundtrip(&mut c, b"after").await;
}

#[tokio::test]
async fn cut_resets_current_connections_only() {
    let proxy = setup().await;
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut a, b"a").await;
    roundtrip(&mut b, b"b").await;
    wait_connections(&proxy, 2).await;
    proxy.cut();
    expect_closed(&mut a).await;
    expect_closed(&mut b).await;
    wait_connections(&proxy, 0).await;
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut c, b"again").await;
    wait_connections(&proxy, 1).await;
}

#[tokio::test]
async fn cut_wakes_a_frozen_connection() {
    let proxy = setup().await;
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut c, b"x").await;
    proxy.freeze();
    c.write_all(b"held").await.unwrap();
    proxy.cut();
    expect_closed(&mut c).await;
    // Still frozen: a new connection is accepted but stalls until pass().
    let mut d = TcpStream::connect(proxy.addr()).await.unwrap();
    d.write_all(b"y").await.unwrap();
    let mut buf = [0u8; 1];
    let stalled = timeout(Duration::from_millis(200), d.read_exact(&mut buf)).await;
    assert!(stalled.is_err());
    proxy.pass();
    timeout(WAIT, d.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"y");
}

#[tokio::test]
async fn refuse_closes_new_connections_and_keeps_existing() {
    let proxy = setup().await;
    let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut old, b"old").await;
    proxy.refuse();
    // The kernel completes the handshake; the proxy then resets the connection.
    if let Ok(mut refused) = TcpStream::connect(proxy.addr()).await {
        expect_closed(&mut refused).await;
    }
    roundtrip(&mut old, b"still here").await;
    assert_eq!(proxy.connections(), 1);
    proxy.pass();
    let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut new, b"back").await;
}

#[tokio::test]
async fn throttle_limits_the_rate() {
    let proxy = setup().await;
    let c = TcpStream::connect(proxy.addr()).await.unwrap();
    proxy.throttle(50_000);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = c.into_split();
    let start = Instant::now();
    let sent = data.clone();
    let writer = tokio::spawn(async move { w.write_all(&sent).await.map(|()| w) });
    let mut back = vec![0u8; data.len()];
    timeout(Duration::from_secs(5), r.read_exact(&mut back))
        .await
        .expect("throttled echo within 5 s")
        .unwrap();
    let elapsed = start.elapsed();
    assert_eq!(back, data);
    assert!(
        elapsed >= Duration::from_millis(1500),
        "100 KB at 50 KB/s took only {elapsed:?}"
    );
    let _w = writer.await.unwrap().unwrap();
    proxy.pass();
}

#[tokio::test]
async fn connections_are_counted_and_drop_closes_everything() {
    let proxy = setup().await;
    assert_eq!(proxy.connections(), 0);
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    let b = TcpStream::connect(proxy.addr()).await.unwrap();
    wait_connections(&proxy, 2).await;
    drop(b);
    wait_connections(&proxy, 1).await;
    roundtrip(&mut a, b"a").await;
    let addr = proxy.addr();
    drop(proxy);
    expect_closed(&mut a).await;
    // The listener is gone: connecting fails, or the connection is closed at once.
    if let Ok(mut late) = TcpStream::connect(addr).await {
        expect_closed(&mut late).await;
    }
}

#[tokio::test]
async fn freeze_resets_a_connection_over_the_hold_limit() {
    let proxy = setup().await;
    let c = TcpStream::connect(proxy.addr()).await.unwrap();
    wait_connections(&proxy, 1).await;
    proxy.freeze();
    let (mut r, mut w) = c.into_split();
    let flood = vec![7u8; common::proxy::HOLD_LIMIT + 1024 * 1024];
    // The write may fail once the proxy resets the connection.
    let writer = tokio::spawn(async move { w.write_all(&flood).await.is_ok() });
    let mut buf = [0u8; 64];
    match timeout(WAIT, r.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        other => panic!("expected the connection reset, got {other:?}"),
    }
    wait_connections(&proxy, 0).await;
    let _ = writer.await.unwrap();
}
