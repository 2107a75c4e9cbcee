//! Configuration reloads: through the handle and on SIGHUP, without
//! dropping a request.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use common::{books_only, eventually, get, Gateway, Upstream};
use lectern_gateway::{reload_on_sighup, GatewayConfig, LoadError};

#[tokio::test]
async fn a_reload_moves_new_requests_and_lets_old_ones_finish() {
    let old = Upstream::start("old").await;
    let new = Upstream::start("new").await;
    let gateway = Gateway::start(books_only(&[old.addr]).await).await;
    let url = gateway.url("/api/books/slow");
    let slow = tokio::spawn(async move { get(&url).await });
    old.until_waiting(1).await;

    gateway
        .reload
        .reload(&books_only(&[new.addr]).await)
        .unwrap();

    let reply = get(&gateway.url("/api/books")).await;
    assert_eq!(reply.server(), "new");
    old.open(1);
    let slow = slow.await.unwrap();
    assert_eq!(slow.status, StatusCode::OK);
    assert_eq!(slow.server(), "old");
    let servers = gateway.servers("book-service").await;
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["address"], new.addr.to_string());
}

#[tokio::test]
async fn no_request_fails_while_reloads_happen_under_load() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gateway = Gateway::start(books_only(&[a.addr]).await).await;
    let configs = [
        books_only(&[a.addr]).await,
        books_only(&[a.addr, b.addr]).await,
        books_only(&[b.addr]).await,
    ];
    let stop = Arc::new(AtomicBool::new(false));

    let mut clients = Vec::new();
    for _ in 0..4 {
        let url = gateway.url("/api/books");
        let stop = Arc::clone(&stop);
        clients.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            // Bounded: at most 500 requests per client.
            while !stop.load(Ordering::SeqCst) && statuses.len() < 500 {
                statuses.push(get(&url).await.status);
            }
            statuses
        }));
    }
    for round in 0..30 {
        gateway.reload.reload(&configs[round % 3]).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);

    let mut total = 0;
    for client in clients {
        let statuses = client.await.unwrap();
        total += statuses.len();
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{statuses:?}"
        );
    }
    assert!(total > 0);
    assert!(a.count() > 0 && b.count() > 0);
    assert_eq!(gateway.in_flight("book-service").await, 0);
}

#[tokio::test]
async fn an_invalid_configuration_changes_nothing() {
    let a = Upstream::start("a").await;
    let gateway = Gateway::start(books_only(&[a.addr]).await).await;
    let mut bad = books_only(&[a.addr]).await;
    bad.routes[0].upstream = "nowhere".into();

    assert!(gateway.reload.reload(&bad).is_err());
    let missing = gateway.reload.reload_file("/nonexistent/gateway.toml");
    assert!(matches!(missing, Err(LoadError::Read { .. })));

    assert_eq!(get(&gateway.url("/api/books")).await.server(), "a");
}

#[tokio::test]
async fn sighup_reloads_the_file() {
    let old = Upstream::start("old").await;
    let new = Upstream::start("new").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, file_for(&old)).unwrap();
    let config = GatewayConfig::load(&path).unwrap();
    let gateway = Gateway::start(config).await;
    let hangups = reload_on_sighup(gateway.reload.clone(), &path).unwrap();
    assert_eq!(get(&gateway.url("/api/books")).await.server(), "old");

    std::fs::write(&path, file_for(&new)).unwrap();
    let me = nix::unistd::Pid::this();
    nix::sys::signal::kill(me, nix::sys::signal::Signal::SIGHUP).unwrap();

    let url = gateway.url("/api/books");
    eventually(|| async { get(&url).await.server() == "new" }).await;

    // A broken file on the next SIGHUP leaves the last good one.
    std::fs::write(&path, "this is not TOML [").unwrap();
    nix::sys::signal::kill(me, nix::sys::signal::Signal::SIGHUP).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(get(&url).await.server(), "new");
    hangups.abort();
}

fn file_for(upstream: &Upstream) -> String {
    format!(
        r#"
        [[routes]]
        prefix = "/api/books"
        upstream = "book-service"

        [upstreams.book-service]
        servers = [{{ address = "{}" }}]
        "#,
        upstream.addr
    )
}
