//! Upstreams that answer before reading the whole request body (a
//! service refusing an oversized body with 413) and then close or stop
//! reading: the gateway passes that answer on and does not count it
//! against the server, so large bodies cannot mark servers down.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{books_only, get, send, send_chunked, Gateway};
use lectern_gateway::GatewayConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const MIB: usize = 1 << 20;

const REFUSAL: &str = "{\"type\":\"about:blank\",\"title\":\"Payload Too \
                       Large\",\"status\":413}";

/// What the mock does once it has answered 413.
#[derive(Clone, Copy)]
enum After {
    /// Closes at once, with the rest of the body unread (a reset).
    Close,
    /// Keeps the connection open without reading, then closes.
    Stall,
    /// Does not answer at all: closes with the rest unread.
    Silent,
}

/// A mock of a Lectern service with a body limit: a request with a body
/// gets at most `limit` body bytes read, then `413` with a small problem
/// document and `Connection: close`; a request without one gets 200
/// `ok`. One request per connection.
struct Refusing {
    addr: SocketAddr,
    refused: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Refusing {
    async fn start(limit: usize, after: After) -> Refusing {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refused = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&refused);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let count = Arc::clone(&count);
                tokio::spawn(serve_one(stream, limit, after, count));
            }
        });

        Refusing {
            addr,
            refused,
            task,
        }
    }

    fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Refusing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one(
    mut stream: TcpStream,
    limit: usize,
    after: After,
    refused: Arc<AtomicUsize>,
) {
    let mut read = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let end = loop {
        if let Some(i) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => read.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&read[..end]).to_ascii_lowercase();
    let has_body = head.contains("transfer-encoding: chunked")
        || head
            .lines()
            .filter_map(|l| l.strip_prefix("content-length: "))
            .any(|n| n.trim() != "0");

    if !has_body {
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\
                  connection: close\r\n\r\nok";
        let _ = stream.write_all(ok.as_bytes()).await;
        return;
    }

    // Read at most `limit` body bytes, then refuse.
    let mut body = read.len() - end;
    while body < limit {
        let room = (limit - body).min(buf.len());
        match stream.read(&mut buf[..room]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body += n,
        }
    }
    refused.fetch_add(1, Ordering::SeqCst);
    if let After::Silent = after {
        return;
    }
    let answer = format!(
        "HTTP/1.1 413 Payload Too Large\r\n\
         content-type: application/problem+json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{REFUSAL}",
        REFUSAL.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    if let After::Stall = after {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    drop(stream);
}

/// `book-service` with this one server, as `lectern up` sets it up
/// (`max_fails = 1`, `fail_timeout = 10s`, 1 MiB body buffer).
async fn start_gateway(server: SocketAddr) -> Gateway {
    let config: GatewayConfig = books_only(&[server]).await;
    let books = &config.upstreams["book-service"];
    assert_eq!(books.servers[0].max_fails, 1);
    assert_eq!(config.client_body_buffer_size, MIB as u64);

    Gateway::start(config).await
}

fn body(n: usize) -> String {
    "x".repeat(n)
}

/// The server is available, with no failure counted, and the gateway
/// ready; a normal request still reaches it.
async fn still_available(gateway: &Gateway) {
    let servers = gateway.servers("book-service").await;
    assert_eq!(servers[0]["available"], true, "{servers:?}");
    assert_eq!(servers[0]["fails"], 0, "{servers:?}");
    assert_eq!(servers[0]["down_for_ms"], serde_json::Value::Null);
    let ready = get(&gateway.url("/health/ready")).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    let normal = get(&gateway.url("/api/books")).await;
    assert_eq!(normal.status, StatusCode::OK);
    assert_eq!(normal.body, "ok");
}

fn assert_refused(reply: &common::Reply) {
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.body
    );
    assert_eq!(reply.body, REFUSAL, "the upstream's own answer");
    assert_eq!(reply.header("content-type"), "application/problem+json");
}

#[tokio::test]
async fn a_streamed_body_refused_early_gets_the_upstreams_413() {
    let upstream = Refusing::start(MIB, After::Close).await;
    let gateway = start_gateway(upstream.addr).await;
    let url = gateway.url("/api/books");

    let reply = send(Method::POST, &url, &[], &body(3 * MIB)).await;

    assert_refused(&reply);
    assert_eq!(upstream.refused(), 1);
}

#[tokio::test]
async fn early_refusals_do_not_mark_the_server_down() {
    let upstream = Refusing::start(MIB, After::Close).await;
    let gateway = start_gateway(upstream.addr).await;
    let url = gateway.url("/api/books");
    let big = body(3 * MIB);

    for method in [Method::GET, Method::POST, Method::PUT, Method::POST] {
        let reply = send(method, &url, &[], &big).await;
        assert_refused(&reply);
    }

    still_available(&gateway).await;
    let metrics = gateway.metrics().await;
    let errors = common::series(
        &metrics,
        "gateway_upstream_requests_total",
        &[("upstream", "book-service"), ("outcome", "error")],
    );
    assert_eq!(errors, 0.0, "answered attempts are no errors");
}

#[tokio::test]
async fn a_chunked_body_refused_early_gets_the_413_and_counts_nothing() {
    let upstream = Refusing::start(MIB, After::Close).await;
    let gateway = start_gateway(upstream.addr).await;
    let url = gateway.url("/api/books");
    let piece = body(64 * 1024);
    let pieces = vec![piece.as_str(); 48];

    for _ in 0..3 {
        let reply = send_chunked(Method::POST, &url, &[], &pieces).await;
        assert_refused(&reply);
    }

    assert_eq!(upstream.refused(), 3);
    still_available(&gateway).await;
}

#[tokio::test]
async fn a_buffered_body_answered_early_gets_the_answer() {
    // Closes with most of the body unread.
    let closing = Refusing::start(16 * 1024, After::Close).await;
    let gateway = start_gateway(closing.addr).await;
    let url = gateway.url("/api/books");
    let under_buffer = body(MIB - 1024);

    for _ in 0..3 {
        let reply = send(Method::POST, &url, &[], &under_buffer).await;
        assert_refused(&reply);
    }
    still_available(&gateway).await;

    // Answers, then neither reads nor closes for a while: the answer is
    // passed on at once, not after the upstream gives up.
    let stalling = Refusing::start(16 * 1024, After::Stall).await;
    let gateway = start_gateway(stalling.addr).await;
    let url = gateway.url("/api/books");
    let reply = tokio::time::timeout(
        Duration::from_secs(3),
        send(Method::POST, &url, &[], &under_buffer),
    )
    .await
    .expect("answered while the upstream still holds the connection");
    assert_refused(&reply);
    still_available(&gateway).await;
}

#[tokio::test]
async fn a_streamed_body_answered_early_without_a_close_gets_the_answer() {
    let stalling = Refusing::start(MIB, After::Stall).await;
    let gateway = start_gateway(stalling.addr).await;
    let url = gateway.url("/api/books");

    let reply = tokio::time::timeout(
        Duration::from_secs(3),
        send(Method::POST, &url, &[], &body(8 * MIB)),
    )
    .await
    .expect("answered while the upstream still holds the connection");

    assert_refused(&reply);
    still_available(&gateway).await;
}

#[tokio::test]
async fn a_close_while_the_body_is_sent_is_502_but_not_counted() {
    // The body is larger than the socket buffers on both sides can
    // hold, so writing it really fails before it is all sent.
    let silent = Refusing::start(MIB, After::Silent).await;
    let gateway = start_gateway(silent.addr).await;
    let url = gateway.url("/api/books");

    for _ in 0..3 {
        let reply = send(Method::POST, &url, &[], &body(14 * MIB)).await;
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.body);
        assert_eq!(reply.json()["status"], 502);
    }

    assert_eq!(silent.refused(), 3);
    still_available(&gateway).await;
}
