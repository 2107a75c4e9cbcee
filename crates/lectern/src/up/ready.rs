//! Waiting until children answer `GET /health/ready` with 200.
//!
//! A child counts as ready the first time it answers 200; a child that
//! dies afterwards is the restart loop's business, not this wait's.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::child::stopping;

/// Time between two rounds of checks.
const POLL: Duration = Duration::from_millis(250);

/// Longest wait for one answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the human hears what is still awaited.
const NOTE_EVERY: Duration = Duration::from_secs(20);

/// A child to wait for: its name and address.
pub(crate) type Target = (String, SocketAddr);

/// A client for readiness checks: short time limit, never a proxy
/// (every target is on loopback).
pub(crate) fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(CHECK_TIMEOUT)
        .no_proxy()
        .build()
}

/// Whether `address` answers `/health/ready` with 200 right now.
pub(crate) async fn is_ready(client: &reqwest::Client, address: SocketAddr) -> bool {
    let url = format!("http://{address}/health/ready");

    match client.get(url).send().await {
        Ok(response) => response.status() == reqwest::StatusCode::OK,
        Err(_) => false,
    }
}

/// Waits until every target has answered 200 once. Answers `false` when
/// the supervisor started stopping first.
pub(crate) async fn wait_ready(
    client: &reqwest::Client,
    targets: &[Target],
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut waiting: Vec<&Target> = targets.iter().collect();
    let mut noted = Instant::now();

    loop {
        tokio::select! {
            () = check_round(client, &mut waiting) => {}
            () = stopping(shutdown) => return false,
        }
        if waiting.is_empty() {
            return true;
        }

        if noted.elapsed() >= NOTE_EVERY {
            let names: Vec<&str> = waiting.iter().map(|(n, _)| n.as_str()).collect();
            eprintln!(
                "lectern: still waiting for {} to answer /health/ready",
                names.join(", ")
            );
            noted = Instant::now();
        }

        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = stopping(shutdown) => return false,
        }
    }
}

/// Checks every waiting target once and keeps those not ready.
async fn check_round(client: &reqwest::Client, waiting: &mut Vec<&Target>) {
    let mut still = Vec::with_capacity(waiting.len());
    for target in waiting.drain(..) {
        if !is_ready(client, target.1).await {
            still.push(target);
        }
    }

    *waiting = still;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use axum::http::StatusCode;
    use axum::routing::get;

    use super::*;

    /// A mock service (not Lectern) whose readiness turns 200 after
    /// `not_ready` checks answered 503.
    async fn mock_service(not_ready: u32) -> SocketAddr {
        let calls = Arc::new(AtomicU32::new(0));
        let ready = move || {
            let calls = calls.clone();
            async move {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < not_ready {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        };
        let app = axum::Router::new().route("/health/ready", get(ready));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        address
    }

    #[tokio::test]
    async fn waits_until_every_target_has_answered_200() {
        let targets = vec![
            ("a".to_owned(), mock_service(0).await),
            ("b".to_owned(), mock_service(3).await),
        ];
        let (_stop, mut shutdown) = watch::channel(false);
        let client = client().unwrap();

        assert!(!is_ready(&client, targets[1].1).await);
        let ready = tokio::time::timeout(
            Duration::from_secs(10),
            wait_ready(&client, &targets, &mut shutdown),
        )
        .await;
        assert_eq!(ready.ok(), Some(true));
        assert!(is_ready(&client, targets[1].1).await);
    }

    #[tokio::test]
    async fn gives_up_when_the_supervisor_stops() {
        // Nothing listens on a port just released.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = free.local_addr().unwrap();
        drop(free);
        let targets = vec![("gone".to_owned(), address)];
        let (stop, mut shutdown) = watch::channel(false);
        let client = client().unwrap();

        let waiter = wait_ready(&client, &targets, &mut shutdown);
        let stopper = async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            stop.send(true).unwrap();
        };
        let (ready, ()) = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(waiter, stopper)
        })
        .await
        .unwrap();
        assert!(!ready);
    }
}
