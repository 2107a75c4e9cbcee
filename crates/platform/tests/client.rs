//! `client::ServiceClient` against MOCK neighbours: small axum servers on
//! 127.0.0.1 port 0 that answer `GET /thing` as each test scripts them
//! (an answer, an error status, a slow answer) and count their calls.
//!
//! What is checked: retries of passing failures, the breaker opening on
//! failures and not on 4xx, one trial call closing it after the reset
//! timeout, failover to the next replica, the bulkhead refusing past its
//! limit, the deadline header, stale answers from the fallback cache, and
//! the metrics of all of it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing;
use axum::{Json, Router};
use lectern_platform::auth::TokenKeys;
use lectern_platform::client::{CallError, CallPolicy, ServiceClient};
use lectern_platform::metrics::Metrics;
use lectern_platform::server::{Deadline, DEADLINE_HEADER};
use lectern_resilience::{Answer, BreakerState, MemoryCache};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::Notify;

/// What the mock answers next.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Ok,
    Status(u16),
    Slow(Duration),
}

#[derive(Default)]
struct Script {
    /// Replies to give first, in order; then `then`.
    queue: VecDeque<Reply>,
    then: Option<Reply>,
    calls: usize,
    deadlines: Vec<String>,
}

/// What the mock and the test share.
#[derive(Default)]
struct Shared {
    script: Mutex<Script>,
    /// Signalled when a request arrives.
    arrived: Notify,
}

/// A MOCK neighbour.
#[derive(Clone)]
struct Mock {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Mock {
    async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/thing", routing::get(reply))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        Self { addr, shared }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn always(&self, reply: Reply) {
        self.shared.script.lock().then = Some(reply);
    }

    fn first(&self, replies: &[Reply]) {
        self.shared.script.lock().queue.extend(replies);
    }

    fn calls(&self) -> usize {
        self.shared.script.lock().calls
    }

    fn deadlines(&self) -> Vec<String> {
        self.shared.script.lock().deadlines.clone()
    }
}

async fn reply(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.arrived.notify_one();
    let next = {
        let mut script = shared.script.lock();
        script.calls += 1;
        if let Some(value) = headers.get(DEADLINE_HEADER) {
            let value = value.to_str().unwrap_or_default().to_owned();
            script.deadlines.push(value);
        }
        let then = script.then.unwrap_or(Reply::Ok);
        script.queue.pop_front().unwrap_or(then)
    };

    match next {
        Reply::Ok => Json(json!({"n": 1})).into_response(),
        Reply::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Reply::Slow(delay) => {
            tokio::time::sleep(delay).await;
            Json(json!({"n": 1})).into_response()
        }
    }
}

/// An address with nothing listening: bound, then released.
async fn closed_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

fn fast_policy() -> CallPolicy {
    CallPolicy {
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        breaker_min_calls: 4,
        breaker_reset: Duration::from_secs(5),
        ..CallPolicy::default()
    }
}

fn client(urls: &str, policy: &CallPolicy, metrics: &Metrics) -> ServiceClient {
    let keys = Arc::new(TokenKeys::from_secret(b"client-test-secret-0123"));

    ServiceClient::with_policy(
        "neighbour",
        "tester",
        urls,
        keys,
        Duration::from_secs(3),
        policy,
    )
    .observed_by(metrics)
}

async fn get(client: &ServiceClient) -> Result<Value, CallError> {
    client.get_json::<Value>("/thing", None).await
}

fn has(metrics: &Metrics, line: &str) -> bool {
    metrics.render().lines().any(|l| l == line)
}

#[tokio::test]
async fn passing_failures_are_retried() {
    let mock = Mock::start().await;
    let metrics = Metrics::new();
    let client = client(&mock.url(), &fast_policy(), &metrics);
    mock.first(&[Reply::Status(503), Reply::Status(502)]);

    assert_eq!(get(&client).await.unwrap(), json!({"n": 1}));

    assert_eq!(mock.calls(), 3);
    assert!(has(
        &metrics,
        r#"lectern_retries_total{dependency="neighbour"} 2"#
    ));
}

#[tokio::test]
async fn errors_a_retry_cannot_cure_are_not_retried() {
    let mock = Mock::start().await;
    let metrics = Metrics::new();
    let client = client(&mock.url(), &fast_policy(), &metrics);
    mock.first(&[Reply::Status(500), Reply::Status(404)]);

    assert_eq!(get(&client).await.unwrap_err().status(), Some(500));
    assert_eq!(get(&client).await.unwrap_err().status(), Some(404));

    assert_eq!(mock.calls(), 2);
}

#[tokio::test]
async fn answers_of_4xx_never_open_the_breaker() {
    let mock = Mock::start().await;
    let metrics = Metrics::new();
    let client = client(&mock.url(), &fast_policy(), &metrics);
    mock.always(Reply::Status(404));

    for _ in 0..10 {
        assert!(get(&client).await.unwrap_err().is_rejection());
    }

    assert_eq!(client.stack().breaker().state(), BreakerState::Closed);
    assert_eq!(mock.calls(), 10);
}

#[tokio::test]
async fn the_breaker_opens_then_one_trial_closes_it() {
    let mock = Mock::start().await;
    let metrics = Metrics::new();
    let policy = fast_policy();
    let client = client(&mock.url(), &policy, &metrics);
    mock.always(Reply::Status(500));

    for _ in 0..4 {
        assert_eq!(get(&client).await.unwrap_err().status(), Some(500));
    }
    let refused = get(&client).await.unwrap_err();

    assert!(
        matches!(refused, CallError::CircuitOpen { .. }),
        "{refused}"
    );
    let wait = refused.retry_after().unwrap();
    assert!(wait > Duration::ZERO && wait <= policy.breaker_reset);
    assert_eq!(mock.calls(), 4, "an open breaker sends nothing");
    let open = r#"lectern_breaker_state{dependency="neighbour",state="open"} 1"#;
    assert!(has(&metrics, open), "{}", metrics.render());

    // The reset timeout passes on tokio's clock; the neighbour recovers.
    mock.always(Reply::Ok);
    tokio::time::pause();
    tokio::time::advance(policy.breaker_reset).await;
    tokio::time::resume();

    assert_eq!(get(&client).await.unwrap(), json!({"n": 1}));
    assert_eq!(mock.calls(), 5, "one trial call");
    let closed = r#"lectern_breaker_state{dependency="neighbour",state="closed"} 1"#;
    assert!(has(&metrics, closed), "{}", metrics.render());
    let rejected = r#"lectern_breaker_calls_total{dependency="neighbour",outcome="rejected"} 1"#;
    assert!(has(&metrics, rejected), "{}", metrics.render());
}

#[tokio::test]
async fn a_replica_that_refuses_connections_fails_over_to_the_next() {
    let mock = Mock::start().await;
    let metrics = Metrics::new();
    let urls = format!("{}, {}", closed_url().await, mock.url());
    let client = client(&urls, &fast_policy(), &metrics);

    for _ in 0..10 {
        assert_eq!(get(&client).await.unwrap(), json!({"n": 1}));
    }

    assert_eq!(client.replicas().len(), 2);
    assert_eq!(mock.calls(), 10);
    assert!(has(
        &metrics,
        r#"lectern_retries_total{dependency="neighbour"} 0"#
    ));
    assert_eq!(client.stack().breaker().state(), BreakerState::Closed);
}

#[tokio::test]
async fn when_no_replica_answers_the_call_fails_as_a_connect_error() {
    let metrics = Metrics::new();
    let urls = format!("{},{}", closed_url().await, closed_url().await);
    let client = client(&urls, &fast_policy(), &metrics);

    let error = get(&client).await.unwrap_err();

    assert!(matches!(error, CallError::Connect { .. }), "{error}");
    assert!(has(
        &metrics,
        r#"lectern_retries_total{dependency="neighbour"} 2"#
    ));
}

#[tokio::test]
async fn a_full_bulkhead_refuses_at_once() {
    let mock = Mock::start().await;
    let metrics = Metrics::new();
    let policy = CallPolicy {
        max_in_flight: 1,
        max_queued: 0,
        ..fast_policy()
    };
    let client = client(&mock.url(), &policy, &metrics);
    mock.first(&[Reply::Slow(Duration::from_millis(500))]);

    let slow = tokio::spawn({
        let client = client.clone();
        async move { get(&client).await }
    });
    mock.shared.arrived.notified().await;
    let refused = get(&client).await.unwrap_err();

    assert!(matches!(refused, CallError::Overloaded { .. }), "{refused}");
    assert!(has(
        &metrics,
        r#"lectern_bulkhead_in_flight{dependency="neighbour"} 1"#
    ));
    assert!(slow.await.unwrap().is_ok());
    let rejected = r#"lectern_bulkhead_rejected_total{dependency="neighbour"} 1"#;
    assert!(has(&metrics, rejected), "{}", metrics.render());
}

#[tokio::test]
async fn each_attempt_carries_the_time_it_has_left() {
    let mock = Mock::start().await;
    let metrics = Metrics::new();
    let client = client(&mock.url(), &fast_policy(), &metrics);

    let deadline = Deadline::after(Duration::from_millis(1500));
    client
        .get_json::<Value>("/thing", Some(deadline))
        .await
        .unwrap();
    client.get_json::<Value>("/thing", None).await.unwrap();

    let sent: Vec<u64> = mock
        .deadlines()
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(sent[0] > 0 && sent[0] <= 1500, "{sent:?}");
    assert_eq!(sent[1], 3000, "without a deadline, the call timeout");
}

#[tokio::test]
async fn a_slow_neighbour_is_given_up_at_the_call_timeout() {
    let mock = Mock::start().await;
    let metrics = Metrics::new();
    let keys = Arc::new(TokenKeys::from_secret(b"client-test-secret-0123"));
    let policy = CallPolicy {
        max_attempts: 1,
        ..fast_policy()
    };
    let timeout = Duration::from_millis(200);
    let client =
        ServiceClient::with_policy("neighbour", "tester", &mock.url(), keys, timeout, &policy)
            .observed_by(&metrics);
    mock.always(Reply::Slow(Duration::from_secs(30)));

    let error = get(&client).await.unwrap_err();

    assert!(
        matches!(error, CallError::Timeout { millis: 200, .. }),
        "{error}"
    );
    let timeouts = r#"lectern_breaker_calls_total{dependency="neighbour",outcome="timeout"} 1"#;
    assert!(has(&metrics, timeouts), "{}", metrics.render());
}

#[tokio::test]
async fn the_last_good_answer_is_served_stale_when_the_neighbour_fails() {
    let mock = Mock::start().await;
    let metrics = Metrics::new();
    let client = client(&mock.url(), &fast_policy(), &metrics);
    let cache = MemoryCache::<Value>::new(Duration::from_secs(60), 10);

    let fresh = client
        .get_json_cached("/thing", None, &cache, "k")
        .await
        .unwrap();
    assert!(!fresh.is_stale());

    mock.always(Reply::Status(500));
    let stale = client
        .get_json_cached("/thing", None, &cache, "k")
        .await
        .unwrap();
    let Answer::Stale { value, cause, .. } = stale else {
        panic!("expected a stale answer");
    };
    assert_eq!(value, json!({"n": 1}));
    assert_eq!(cause.status(), Some(500));

    let never_seen = client
        .get_json_cached("/thing", None, &cache, "other")
        .await;
    assert_eq!(never_seen.unwrap_err().status(), Some(500));

    mock.always(Reply::Status(404));
    let refused = client.get_json_cached("/thing", None, &cache, "k").await;
    assert!(
        refused.unwrap_err().is_rejection(),
        "a 404 is not papered over"
    );
    let fallbacks = r#"lectern_breaker_calls_total{dependency="neighbour",outcome="fallback"} 1"#;
    assert!(has(&metrics, fallbacks), "{}", metrics.render());
}
