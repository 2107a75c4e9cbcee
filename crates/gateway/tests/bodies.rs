//! Request bodies: buffered up to `client_body_buffer_size` so a retry
//! sends the same bytes, streamed above it and then never sent twice.

mod common;

use axum::http::{Method, StatusCode};
use common::{
    books, books_only, dead_addr, send, send_chunked, Breaking, Gateway,
    Upstream,
};

const BUFFER: u64 = 1024;

fn big(n: usize) -> String {
    (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect()
}

#[tokio::test]
async fn a_body_above_the_buffer_is_streamed_whole() {
    let good = Upstream::start("good").await;
    let mut config = books_only(&[good.addr]).await;
    config.client_body_buffer_size = BUFFER;
    let gateway = Gateway::start(config).await;
    let body = big(8 * 1024);
    let url = gateway.url("/api/books");

    let sized = send(Method::POST, &url, &[], &body).await;
    let pieces: Vec<&str> = (0..8).map(|i| &body[i * 1024..][..1024]).collect();
    let chunked = send_chunked(Method::POST, &url, &[], &pieces).await;

    assert_eq!(sized.status, StatusCode::OK);
    assert_eq!(chunked.status, StatusCode::OK);
    let seen = good.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.body == body));
    assert_eq!(seen[0].headers["content-length"], "8192");
    assert_eq!(seen[1].headers["transfer-encoding"], "chunked");
}

#[tokio::test]
async fn a_streamed_body_is_not_sent_twice_even_with_a_key() {
    let breaking = Breaking::start().await;
    let good = Upstream::start("good").await;
    let mut config = books_only(&[breaking.addr, good.addr]).await;
    config.client_body_buffer_size = BUFFER;
    books(&mut config).servers[0].max_fails = 0;
    let gateway = Gateway::start(config).await;
    let body = big(4 * 1024);

    let mut statuses = Vec::new();
    while breaking.received().is_empty() && statuses.len() < 10 {
        let key = format!("stream-{}", statuses.len());
        let reply = send(
            Method::POST,
            &gateway.url("/api/books"),
            &[("idempotency-key", &key)],
            &body,
        )
        .await;
        statuses.push(reply.status.as_u16());
    }

    assert_eq!(statuses.last(), Some(&502), "{statuses:?}");
    assert_eq!(good.count(), statuses.len() - 1, "not sent to good too");
    assert!(breaking.received()[0].ends_with(&body));

    // The same body under the buffer limit does move on.
    let mut config = books_only(&[breaking.addr, good.addr]).await;
    books(&mut config).servers[0].max_fails = 0;
    let gateway = Gateway::start(config).await;
    for i in 0..4 {
        let key = format!("buffered-{i}");
        let reply = send(
            Method::POST,
            &gateway.url("/api/books"),
            &[("idempotency-key", &key)],
            &body,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["body"], body);
    }
}

#[tokio::test]
async fn a_streamed_body_moves_on_while_no_connection_was_made() {
    let good = Upstream::start("good").await;
    let dead = dead_addr().await;
    let mut config = books_only(&[dead, good.addr]).await;
    config.client_body_buffer_size = BUFFER;
    books(&mut config).servers[0].max_fails = 0;
    let gateway = Gateway::start(config).await;
    let body = big(4 * 1024);

    for _ in 0..4 {
        let url = gateway.url("/api/books");
        let reply = send(Method::POST, &url, &[], &body).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["body"], body);
    }
    assert_eq!(good.count(), 4);
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_is_413() {
    let good = Upstream::start("good").await;
    let mut config = books_only(&[good.addr]).await;
    config.client_body_buffer_size = BUFFER;
    config.client_max_body_size = 4 * 1024;
    let gateway = Gateway::start(config).await;
    let body = big(1024);
    let pieces = vec![body.as_str(); 8];

    let reply =
        send_chunked(Method::POST, &gateway.url("/api/books"), &[], &pieces)
            .await;

    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.json()["status"], 413);
    assert_eq!(good.count(), 0, "the upstream saw no complete request");
    assert_eq!(gateway.in_flight("book-service").await, 0);
}
