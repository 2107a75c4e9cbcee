//! Least connections, in-flight accounting, failover and backups.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{
    books, books_only, dead_addr, eventually, get, send, series, Gateway,
    Upstream,
};
use http_body_util::BodyExt;
use lectern_gateway::NextUpstream;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const SLOW: &str = "/api/books/slow";

#[tokio::test]
async fn a_busy_server_gets_no_new_request_while_another_is_idle() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gateway = Gateway::start(books_only(&[a.addr, b.addr]).await).await;

    let url = gateway.url(SLOW);
    let slow = tokio::spawn(async move { get(&url).await });
    eventually(|| async { a.waiting() + b.waiting() == 1 }).await;
    let (busy, idle, name) = if a.waiting() == 1 {
        (&a, &b, "b")
    } else {
        (&b, &a, "a")
    };

    for _ in 0..4 {
        let reply = get(&gateway.url("/api/books/fast")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.server(), name);
    }
    assert_eq!(idle.count(), 4);
    assert_eq!(busy.count(), 1);

    busy.open(1);
    let slow = slow.await.unwrap();
    assert_eq!(slow.status, StatusCode::OK);
    assert_eq!(gateway.in_flight("book-service").await, 0);
}

#[tokio::test]
async fn equally_idle_servers_take_turns() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let c = Upstream::start("c").await;
    let config = books_only(&[a.addr, b.addr, c.addr]).await;
    let gateway = Gateway::start(config).await;

    for _ in 0..9 {
        assert_eq!(
            get(&gateway.url("/api/books")).await.status,
            StatusCode::OK
        );
    }

    assert_eq!((a.count(), b.count(), c.count()), (3, 3, 3));
}

#[tokio::test]
async fn a_heavier_server_holds_more_requests() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let mut config = books_only(&[a.addr, b.addr]).await;
    books(&mut config).servers[0].weight = 3;
    let gateway = Gateway::start(config).await;

    let mut held = Vec::new();
    for n in 1..=4 {
        let url = gateway.url(SLOW);
        held.push(tokio::spawn(async move { get(&url).await }));
        eventually(|| async { a.waiting() + b.waiting() == n }).await;
    }

    assert_eq!((a.waiting(), b.waiting()), (3, 1));
    a.open(3);
    b.open(1);
    for reply in held {
        assert_eq!(reply.await.unwrap().status, StatusCode::OK);
    }
}

#[tokio::test]
async fn in_flight_counts_return_to_zero_after_cancelled_requests() {
    let a = Upstream::start("a").await;
    let gateway = Gateway::start(books_only(&[a.addr]).await).await;

    let mut client =
        tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let request = format!("GET {SLOW} HTTP/1.1\r\nhost: gateway\r\n\r\n");
    client.write_all(request.as_bytes()).await.unwrap();
    a.until_waiting(1).await;
    assert_eq!(gateway.in_flight("book-service").await, 1);

    drop(client);

    eventually(|| async { gateway.in_flight("book-service").await == 0 }).await;
    a.open(1);
}

#[tokio::test]
async fn in_flight_counts_return_to_zero_after_refused_connections() {
    let a = Upstream::start("a").await;
    let dead = dead_addr().await;
    let mut config = books_only(&[dead, a.addr]).await;
    books(&mut config).servers[0].max_fails = 0;
    let gateway = Gateway::start(config).await;

    for _ in 0..4 {
        assert_eq!(
            get(&gateway.url("/api/books")).await.status,
            StatusCode::OK
        );
    }

    assert_eq!(gateway.in_flight("book-service").await, 0);
}

#[tokio::test]
async fn in_flight_counts_return_to_zero_after_timeouts() {
    let a = Upstream::start("a").await;
    let mut config = books_only(&[a.addr]).await;
    books(&mut config).read_timeout = Duration::from_millis(300);
    let gateway = Gateway::start(config).await;

    // No response head within the read timeout.
    let reply = get(&gateway.url(SLOW)).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        reply.json()["type"],
        "https://lectern.dev/problems/upstream-timeout"
    );
    assert!(reply.json()["detail"]
        .as_str()
        .unwrap()
        .contains("book-service"));
    assert_eq!(gateway.in_flight("book-service").await, 0);

    // A head, then a body that stops: the read timeout ends it.
    let client = hyper_util::client::legacy::Client::builder(
        hyper_util::rt::TokioExecutor::new(),
    )
    .build_http::<http_body_util::Empty<axum::body::Bytes>>();
    let url = gateway.url("/api/books/hang").parse().unwrap();
    let response = client.get(url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(gateway.in_flight("book-service").await, 1);
    assert!(response.into_body().collect().await.is_err());
    assert_eq!(gateway.in_flight("book-service").await, 0);

    a.open(1);
}

#[tokio::test]
async fn a_dead_replica_is_skipped_for_get_and_post() {
    let alive = Upstream::start("alive").await;
    let dead = dead_addr().await;
    let mut config = books_only(&[dead, alive.addr]).await;
    // Never marked down, so every other request meets the dead one first.
    books(&mut config).servers[0].max_fails = 0;
    let gateway = Gateway::start(config).await;

    for i in 0..6 {
        let get = get(&gateway.url("/api/books")).await;
        let body = format!(r#"{{"n":{i}}}"#);
        let post =
            send(Method::POST, &gateway.url("/api/books"), &[], &body).await;

        assert_eq!(get.status, StatusCode::OK);
        assert_eq!(post.status, StatusCode::OK);
        assert_eq!(post.json()["body"], body);
    }

    let metrics = gateway.metrics().await;
    let dead = dead.to_string();
    let refused = series(
        &metrics,
        "gateway_upstream_requests_total",
        &[("server", &dead), ("outcome", "connect_error")],
    );
    assert!(refused >= 6.0, "the dead replica was tried: {refused}");
    assert_eq!(
        alive.seen().iter().filter(|s| s.method == "POST").count(),
        6
    );
}

#[tokio::test]
async fn a_dead_replica_is_marked_unavailable_after_max_fails() {
    let alive = Upstream::start("alive").await;
    let dead = dead_addr().await;
    let gateway = Gateway::start(books_only(&[dead, alive.addr]).await).await;

    for _ in 0..10 {
        assert_eq!(
            get(&gateway.url("/api/books")).await.status,
            StatusCode::OK
        );
    }

    let servers = gateway.servers("book-service").await;
    assert_eq!(servers[0]["available"], false);
    assert_eq!(servers[1]["available"], true);
    let metrics = gateway.metrics().await;
    let dead = dead.to_string();
    let labels = [("server", dead.as_str()), ("outcome", "connect_error")];
    assert_eq!(
        series(&metrics, "gateway_upstream_requests_total", &labels),
        1.0
    );
    let gauge = series(
        &metrics,
        "gateway_upstream_server_available",
        &[("server", &dead)],
    );
    assert_eq!(gauge, 0.0);
    assert_eq!(
        get(&gateway.url("/health/ready")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_backup_gets_nothing_while_a_primary_is_available() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let backup = Upstream::start("backup").await;
    let dead = dead_addr().await;
    let mut config = books_only(&[a.addr, dead, b.addr, backup.addr]).await;
    books(&mut config).servers[3].backup = true;
    let gateway = Gateway::start(config).await;

    for _ in 0..10 {
        let post =
            send(Method::POST, &gateway.url("/api/books"), &[], "{}").await;
        assert_eq!(post.status, StatusCode::OK);
    }

    assert_eq!(backup.count(), 0);
    assert_eq!(a.count() + b.count(), 10);
}

#[tokio::test]
async fn a_backup_serves_once_every_primary_is_unavailable() {
    let backup = Upstream::start("backup").await;
    let (one, two) = (dead_addr().await, dead_addr().await);
    let mut config = books_only(&[one, backup.addr, two]).await;
    books(&mut config).servers[1].backup = true;
    let gateway = Gateway::start(config).await;

    let get = get(&gateway.url("/api/books")).await;
    let post = send(Method::POST, &gateway.url("/api/books"), &[], "{}").await;

    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(post.status, StatusCode::OK);
    assert_eq!(backup.count(), 2);
    let servers = gateway.servers("book-service").await;
    assert_eq!(servers[0]["available"], false);
    assert_eq!(servers[2]["available"], false);
    assert_eq!(servers[1]["backup"], true);
}

#[tokio::test]
async fn no_available_server_is_a_503_problem_with_retry_after() {
    let (one, two) = (dead_addr().await, dead_addr().await);
    let gateway = Gateway::start(books_only(&[one, two]).await).await;

    let first = get(&gateway.url("/api/books")).await;
    let second = get(&gateway.url("/api/books")).await;

    assert_eq!(first.status, StatusCode::BAD_GATEWAY);
    assert_eq!(first.header("content-type"), "application/problem+json");
    assert_eq!(second.status, StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = second.header("retry-after").parse().unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    let problem = second.json();
    assert_eq!(problem["status"], 503);
    assert!(problem["detail"].as_str().unwrap().contains("book-service"));
    assert_eq!(
        get(&gateway.url("/health/ready")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn listed_statuses_move_idempotent_requests_on() {
    let bad = Upstream::failing("bad", 502).await;
    let good = Upstream::start("good").await;
    let mut config = books_only(&[bad.addr, good.addr]).await;
    let upstream = books(&mut config);
    upstream.next_upstream.push(NextUpstream::Http502);
    upstream.servers[0].max_fails = 0;
    let gateway = Gateway::start(config).await;

    for _ in 0..4 {
        let reply = get(&gateway.url("/api/books")).await;
        assert_eq!(reply.status, StatusCode::OK);
        let keyed = send(
            Method::POST,
            &gateway.url("/api/books"),
            &[("idempotency-key", "k-1")],
            "{}",
        )
        .await;
        assert_eq!(keyed.status, StatusCode::OK);
    }
    assert!(bad.count() >= 2, "the failing server was tried");

    // A POST without a key that reached a server is never sent again.
    let mut passed = 0;
    for _ in 0..4 {
        let reply =
            send(Method::POST, &gateway.url("/api/books"), &[], "{}").await;
        if reply.status == StatusCode::BAD_GATEWAY {
            assert_eq!(reply.body, "bad says 502 Bad Gateway");
            passed += 1;
        }
    }
    let posts = |u: &Upstream| {
        let seen = u.seen();
        seen.iter()
            .filter(|s| {
                s.method == "POST" && !s.headers.contains_key("idempotency-key")
            })
            .count()
    };
    assert!(passed >= 1);
    assert_eq!(posts(&bad), passed);
    assert_eq!(posts(&bad) + posts(&good), 4);
}

#[tokio::test]
async fn the_last_listed_answer_is_passed_on_when_no_server_is_left() {
    let bad = Upstream::failing("bad", 503).await;
    let mut config = books_only(&[bad.addr]).await;
    books(&mut config).next_upstream.push(NextUpstream::Http503);
    let gateway = Gateway::start(config).await;

    let reply = get(&gateway.url("/api/books")).await;

    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body, "bad says 503 Service Unavailable");
}

#[tokio::test]
async fn next_upstream_tries_bounds_the_attempts() {
    let alive = Upstream::start("alive").await;
    let (one, two) = (dead_addr().await, dead_addr().await);
    let mut config = books_only(&[one, two, alive.addr]).await;
    let upstream = books(&mut config);
    upstream.next_upstream_tries = 1;
    upstream.servers.iter_mut().for_each(|s| s.max_fails = 0);
    let gateway = Gateway::start(config).await;

    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(get(&gateway.url("/api/books")).await.status.as_u16());
    }
    statuses.sort_unstable();

    assert_eq!(statuses, [200, 502, 502]);
}

#[tokio::test]
async fn off_never_tries_another_server() {
    let alive = Upstream::start("alive").await;
    let dead = dead_addr().await;
    let mut config = books_only(&[dead, alive.addr]).await;
    let upstream = books(&mut config);
    upstream.next_upstream = vec![NextUpstream::Off];
    upstream.servers[0].max_fails = 0;
    let gateway = Gateway::start(config).await;

    let first = get(&gateway.url("/api/books")).await;
    let second = get(&gateway.url("/api/books")).await;

    let mut statuses = [first.status.as_u16(), second.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 502]);
}

/// A loopback listener that never accepts, with its queue filled, so new
/// connections hang until the connect timeout (Linux drops their SYNs).
async fn stuck_listener() -> (tokio::net::TcpListener, Vec<TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut filler = Vec::new();
    for _ in 0..8 {
        let attempt = TcpStream::connect(addr);
        let timed = tokio::time::timeout(Duration::from_millis(200), attempt);
        match timed.await {
            Ok(Ok(stream)) => filler.push(stream),
            _ => break,
        }
    }

    (listener, filler)
}

#[tokio::test]
async fn a_connect_timeout_moves_even_a_post_on() {
    let alive = Upstream::start("alive").await;
    let (stuck, _filler) = stuck_listener().await;
    let stuck_addr = stuck.local_addr().unwrap();
    let mut config = books_only(&[stuck_addr, alive.addr]).await;
    let upstream = books(&mut config);
    upstream.connect_timeout = Duration::from_millis(200);
    upstream.servers[0].max_fails = 0;
    let gateway = Gateway::start(config).await;

    for _ in 0..2 {
        let url = gateway.url("/api/books");
        let post = send(Method::POST, &url, &[], "{}").await;
        assert_eq!(post.status, StatusCode::OK);
    }

    let metrics = gateway.metrics().await;
    let stuck = stuck_addr.to_string();
    let labels = [("server", stuck.as_str()), ("outcome", "connect_timeout")];
    let timeouts = series(&metrics, "gateway_upstream_requests_total", &labels);
    assert!(timeouts >= 1.0, "the stuck server was tried: {timeouts}");
    assert_eq!(gateway.in_flight("book-service").await, 0);
}

#[tokio::test]
async fn five_slow_requests_on_a_send_the_next_ten_fast_ones_to_b() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gateway = Gateway::start(books_only(&[a.addr, b.addr]).await).await;

    // Ten slow requests spread five and five; B's then finish, A's stay.
    let mut held = Vec::new();
    let mut on_b = Vec::new();
    for n in 1..=10 {
        let url = gateway.url(SLOW);
        let request = tokio::spawn(async move { get(&url).await });
        eventually(|| async { a.waiting() + b.waiting() == n }).await;
        if b.waiting() > on_b.len() {
            on_b.push(request);
        } else {
            held.push(request);
        }
    }
    assert_eq!((a.waiting(), b.waiting()), (5, 5));
    b.open(5);
    for reply in on_b {
        assert_eq!(reply.await.unwrap().server(), "b");
    }
    assert_eq!(gateway.in_flight("book-service").await, 5);
    let b_before = b.count();

    for _ in 0..10 {
        let reply = get(&gateway.url("/api/books/fast")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.server(), "b");
    }

    assert_eq!(b.count() - b_before, 10);
    assert_eq!(a.count(), 5, "A got nothing but its five slow ones");
    a.open(5);
    for reply in held {
        assert_eq!(reply.await.unwrap().status, StatusCode::OK);
    }
    assert_eq!(gateway.in_flight("book-service").await, 0);
}

#[tokio::test]
async fn a_post_without_a_key_is_sent_once_and_with_a_key_moves_on() {
    let breaking = common::Breaking::start().await;
    let good = Upstream::start("good").await;
    let mut config = books_only(&[breaking.addr, good.addr]).await;
    books(&mut config).servers[0].max_fails = 0;
    let gateway = Gateway::start(config).await;
    let url = gateway.url("/api/books");

    // Ties rotate, so within two requests one meets the breaking server.
    let mut refused = 0;
    for i in 0..2 {
        let body = format!(r#"{{"plain":{i}}}"#);
        let reply = send(Method::POST, &url, &[], &body).await;
        if reply.status == StatusCode::BAD_GATEWAY {
            assert!(reply.json()["detail"]
                .as_str()
                .unwrap()
                .contains("book-service"));
            refused += 1;
        }
    }
    assert_eq!(refused, 1, "the broken attempt is not sent again");
    assert_eq!(breaking.received().len(), 1);
    let plain = |s: &common::Seen| s.body.contains("plain");
    assert_eq!(good.seen().iter().filter(|s| plain(s)).count(), 1);

    // Keyed POSTs until one meets the breaking server: each succeeds.
    for i in 0..10 {
        let body = format!(r#"{{"keyed":{i}}}"#);
        let key = format!("key-{i}");
        let headers = [("idempotency-key", key.as_str())];
        let reply = send(Method::POST, &url, &headers, &body).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["body"], body, "the same bytes");
        if breaking.received().len() > 1 {
            break;
        }
    }
    let received = breaking.received();
    assert!(received.len() > 1, "a keyed POST met it, then moved on");
    assert!(received[1].contains(r#"{"keyed":"#), "{}", received[1]);
    assert_eq!(gateway.in_flight("book-service").await, 0);
}

#[tokio::test]
async fn a_keyed_chunked_post_reaches_the_healthy_server_with_its_bytes() {
    let breaking = common::Breaking::start().await;
    let good = Upstream::start("good").await;
    let mut config = books_only(&[breaking.addr, good.addr]).await;
    books(&mut config).servers[0].max_fails = 0;
    let gateway = Gateway::start(config).await;
    let chunks = [r#"{"title":"#, r#""Dune","#, r#""year":1965}"#];
    let whole = chunks.concat();

    // Keyed chunked POSTs until one meets the breaking server.
    let mut sent = 0;
    while breaking.received().is_empty() && sent < 10 {
        sent += 1;
        let key = format!("chunked-{sent}");
        let reply = common::send_chunked(
            Method::POST,
            &gateway.url("/api/books"),
            &[("idempotency-key", &key)],
            &chunks,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["body"], whole);
    }

    let seen = good.seen();
    assert_eq!(seen.len(), sent, "every keyed POST reached good");
    assert!(seen.iter().all(|s| s.body == whole));
    let broken = breaking.received();
    assert_eq!(broken.len(), 1);
    assert!(broken[0].ends_with(&whole), "{}", broken[0]);

    // Without a key, a chunked POST that met it is not sent again.
    let mut failed = 0;
    let mut passed = 0;
    while failed == 0 && passed < 10 {
        let reply = common::send_chunked(
            Method::POST,
            &gateway.url("/api/books"),
            &[],
            &chunks,
        )
        .await;
        match reply.status {
            StatusCode::OK => passed += 1,
            StatusCode::BAD_GATEWAY => failed += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(failed, 1);
    assert_eq!(good.seen().len(), sent + passed, "not sent a second time");
    assert_eq!(breaking.received().len(), 2);
}
