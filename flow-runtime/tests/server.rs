//! The HTTP accept loop: the time limit on request heads and the graceful stop.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::CapturedLog;
use flow_runtime::http::{ServerLimits, serve};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const HEAD_LIMIT: Duration = Duration::from_millis(300);

const DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// Maximum wait for the server to close a connection in these tests.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// Serves `/health`, and `/slow`, which responds after 500 ms, with a 300 ms head limit and a
/// 1 s drain limit.
async fn start() -> Server {
    let app = Router::new().route("/health", get(|| async { "ok" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            "done"
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("has an address");
    let (stop, stopped) = oneshot::channel::<()>();
    let limits = ServerLimits {
        header_read_timeout: HEAD_LIMIT,
        drain_timeout: DRAIN_LIMIT,
    };
    let task = tokio::spawn(serve(listener, app, limits, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        stop: Some(stop),
        task,
    }
}

/// Reads until the server closes the connection, and returns what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(CLOSE_WAIT, stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the server kept the connection open for {CLOSE_WAIT:?}");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn silent_connection_is_closed_after_the_head_limit() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connects");
    let opened = Instant::now();

    let received = read_until_closed(&mut stream).await;

    assert!(opened.elapsed() >= HEAD_LIMIT, "closed after {:?}", opened.elapsed());
    assert!(!received.contains("200 OK"), "{received}");
}

#[tokio::test]
async fn unfinished_head_is_closed_after_the_head_limit() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connects");

    stream.write_all(b"GET /health HTTP/1.1\r\nHost: local\r\n").await.expect("writes");
    let received = read_until_closed(&mut stream).await;

    assert!(!received.contains("200 OK"), "{received}");
}

#[tokio::test]
async fn head_in_parts_is_served() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connects");

    stream.write_all(b"GET /health HTTP/1.1\r\n").await.expect("writes");
    tokio::time::sleep(HEAD_LIMIT / 3).await;
    stream.write_all(b"Host: local\r\nConnection: close\r\n\r\n").await.expect("writes");
    let received = read_until_closed(&mut stream).await;

    assert!(received.starts_with("HTTP/1.1 200 OK"), "{received}");
}

#[tokio::test]
async fn stop_lets_the_request_in_flight_finish() {
    let mut server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connects");
    stream.write_all(b"GET /slow HTTP/1.1\r\nHost: local\r\n\r\n").await.expect("writes");
    tokio::time::sleep(Duration::from_millis(100)).await;

    server.stop.take().expect("running").send(()).expect("the server waits for the stop");
    let received = read_until_closed(&mut stream).await;

    assert!(received.starts_with("HTTP/1.1 200 OK"), "{received}");
    assert!(received.ends_with("done"), "{received}");
}

#[tokio::test]
async fn stopped_server_returns_and_refuses_connections() {
    let mut server = start().await;

    server.stop.take().expect("running").send(()).expect("the server waits for the stop");
    let returned = tokio::time::timeout(CLOSE_WAIT, &mut server.task).await;

    assert!(returned.is_ok(), "the server did not return within {CLOSE_WAIT:?}");
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn idle_connection_is_closed() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connects");
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: local\r\n\r\n").await.expect("writes");
    let mut first = [0_u8; 17];
    stream.read_exact(&mut first).await.expect("reads the status line");
    let answered = Instant::now();

    read_until_closed(&mut stream).await;

    assert_eq!(&first, b"HTTP/1.1 200 OK\r\n");
    assert!(answered.elapsed() >= HEAD_LIMIT, "closed after {:?}", answered.elapsed());
}

#[tokio::test]
async fn stop_closes_silent_connection_at_once() {
    let mut server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connects");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stopped = Instant::now();

    server.stop.take().expect("running").send(()).expect("the server waits for the stop");
    read_until_closed(&mut stream).await;

    assert!(stopped.elapsed() < HEAD_LIMIT, "closed after {:?}", stopped.elapsed());
}

#[tokio::test]
async fn stop_ends_unfinished_head_within_limit() {
    let mut server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connects");
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: local\r\n").await.expect("writes");
    tokio::time::sleep(Duration::from_millis(50)).await;

    server.stop.take().expect("running").send(()).expect("the server waits for the stop");
    let returned = tokio::time::timeout(CLOSE_WAIT, &mut server.task).await;

    assert!(returned.is_ok(), "the server did not return within {CLOSE_WAIT:?}");
}

/// A client that sends requests and reads no responses stalls the server's writes, so its
/// connection stays open until the drain limit.
#[tokio::test]
async fn unread_responses_do_not_hold_stop() {
    let mut server = start().await;
    let socket = tokio::net::TcpSocket::new_v4().expect("creates a socket");
    socket.set_recv_buffer_size(4096).expect("sets the receive buffer");
    let mut stream = socket.connect(server.addr).await.expect("connects");
    let requests = b"GET /health HTTP/1.1\r\nHost: local\r\n\r\n".repeat(1000);
    // Send until the server stops reading, because it cannot write its responses.
    while tokio::time::timeout(Duration::from_secs(1), stream.write_all(&requests)).await.is_ok() {}

    server.stop.take().expect("running").send(()).expect("the server waits for the stop");
    let returned = tokio::time::timeout(CLOSE_WAIT, &mut server.task).await;

    assert!(returned.is_ok(), "the server did not return within {CLOSE_WAIT:?} of the stop");
}

#[tokio::test]
async fn http2_prior_knowledge_is_logged_and_closed() {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let server = start().await;

    let mut stream = TcpStream::connect(server.addr).await.expect("connects");
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.expect("sends the HTTP/2 preface");
    let received = read_until_closed(&mut stream).await;

    assert_eq!(received, "");
    assert!(log.text().contains("HTTP/1.1 only"), "log:\n{}", log.text());
}
