//! Graceful stop: requests in flight finish, new connections are refused.

mod common;

use axum::http::StatusCode;
use common::{books_only, eventually, get, Gateway, Upstream};

#[tokio::test]
async fn a_request_in_flight_finishes_after_shutdown_begins() {
    let a = Upstream::start("a").await;
    let mut gateway = Gateway::start(books_only(&[a.addr]).await).await;
    let url = gateway.url("/api/books/slow");
    let slow = tokio::spawn(async move { get(&url).await });
    a.until_waiting(1).await;

    let stopped = gateway.stop();
    let addr = gateway.addr;
    eventually(|| async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(!stopped.is_finished(), "it waits for the request in flight");

    a.open(1);
    let reply = slow.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.server(), "a");
    stopped.await.unwrap().unwrap();
}
