//! Retries: policy, backoff, deadline, Retry-After and budget, through the
//! plain API and the tower layer, on tokio's paused clock.

mod support;

use std::sync::Arc;
use std::time::Duration;

use lectern_resilience::{
    Backoff, BoxError, BudgetConfig, Deadline, Error, Retry, RetryBudget, RetryConfig, RetryHint,
    TimeoutLayer,
};
use support::{answer_after, ms, secs, Counter, Fault};
use tokio::time::Instant;
use tower::{service_fn, Layer, ServiceExt};

/// Always the same wait, so that tests can count time exactly.
#[derive(Debug)]
struct Fixed(Duration);

impl Backoff for Fixed {
    fn delay(&self, _: u32) -> Duration {
        self.0
    }
}

fn retry(config: RetryConfig) -> Retry {
    Retry::new("book-service", config)
}

fn fixed(wait: Duration, max_attempts: u32) -> RetryConfig {
    RetryConfig {
        max_attempts,
        backoff: Arc::new(Fixed(wait)),
        ..RetryConfig::default()
    }
}

/// An attempt that fails `failures` times with `fault`, then answers.
fn flaky(
    calls: &Counter,
    failures: usize,
    fault: Fault,
) -> impl FnMut() -> std::future::Ready<Result<usize, Error<Fault>>> + '_ {
    move || {
        let n = calls.hit();
        let result = if n <= failures {
            Err(Error::Inner(fault.clone()))
        } else {
            Ok(n)
        };
        std::future::ready(result)
    }
}

#[tokio::test(start_paused = true)]
async fn a_passing_failure_is_retried_until_success() {
    let retry = retry(RetryConfig::default());
    let calls = Counter::default();
    let started = Instant::now();

    let answer = retry.run(true, None, flaky(&calls, 2, Fault::Down)).await;

    assert_eq!(answer.unwrap(), 3);
    assert!(started.elapsed() <= secs(3), "waits within 1 s + 2 s");
    assert_eq!(retry.stats().retries, 2);
}

#[tokio::test(start_paused = true)]
async fn attempts_are_limited() {
    let retry = retry(fixed(ms(10), 3));
    let calls = Counter::default();

    let answer = retry.run(true, None, flaky(&calls, 10, Fault::Down)).await;

    assert!(matches!(answer, Err(Error::Inner(Fault::Down))));
    assert_eq!(calls.get(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_request_that_is_not_retry_safe_is_sent_once() {
    let retry = retry(fixed(ms(10), 5));
    let calls = Counter::default();

    let answer = retry.run(false, None, flaky(&calls, 1, Fault::Down)).await;

    assert!(answer.is_err());
    assert_eq!(calls.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_error_retrying_cannot_cure_is_not_retried() {
    let retry = retry(fixed(ms(10), 5));
    let calls = Counter::default();

    let answer = retry
        .run(true, None, flaky(&calls, 1, Fault::NotFound))
        .await;

    assert!(matches!(answer, Err(Error::Inner(Fault::NotFound))));
    assert_eq!(calls.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_that_cannot_finish_before_the_deadline() {
    let retry = retry(fixed(secs(1), 10));
    let calls = Counter::default();
    let deadline = Deadline::after(ms(1500));

    let answer = retry
        .run(true, Some(deadline), flaky(&calls, 10, Fault::Down))
        .await;

    assert!(matches!(answer, Err(Error::Inner(Fault::Down))));
    assert_eq!(calls.get(), 2, "at 0 s and 1 s; a third would start at 2 s");
    assert_eq!(retry.stats().deadline_refusals, 1);
    assert!(!deadline.is_expired(), "gave up early, not at the deadline");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_an_attempt_short() {
    let retry = retry(RetryConfig::default());
    let deadline = Deadline::after(secs(2));
    let started = Instant::now();

    let answer: Result<(), Error<Fault>> = retry
        .run(true, Some(deadline), || async {
            answer_after(secs(60), Ok(())).await.map_err(Error::Inner)
        })
        .await;

    assert!(matches!(answer, Err(Error::DeadlineExceeded(_))));
    assert_eq!(started.elapsed(), secs(2));
}

#[tokio::test(start_paused = true)]
async fn an_expired_deadline_sends_nothing() {
    let retry = retry(RetryConfig::default());
    let calls = Counter::default();
    let deadline = Deadline::after(ms(5));
    tokio::time::advance(ms(5)).await;

    let answer = retry
        .run(true, Some(deadline), flaky(&calls, 0, Fault::Down))
        .await;

    assert!(matches!(answer, Err(Error::DeadlineExceeded(_))));
    assert_eq!(calls.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn each_attempt_has_its_own_timeout() {
    let retry = retry(RetryConfig {
        attempt_timeout: Some(secs(1)),
        ..fixed(ms(100), 3)
    });
    let calls = Counter::default();
    let started = Instant::now();

    let answer: Result<&str, Error<Fault>> = retry
        .run(true, None, || {
            let first = calls.hit() == 1;
            async move {
                let wait = if first { secs(30) } else { ms(10) };
                answer_after(wait, Ok("second")).await.map_err(Error::Inner)
            }
        })
        .await;

    assert_eq!(answer.unwrap(), "second");
    assert_eq!(started.elapsed(), ms(1110));
}

#[tokio::test(start_paused = true)]
async fn a_servers_retry_after_is_honoured() {
    let retry = retry(fixed(secs(1), 3));
    let calls = Counter::default();
    let started = Instant::now();

    let answer = retry
        .run(true, None, flaky(&calls, 1, Fault::Busy(secs(5))))
        .await;

    assert_eq!(answer.unwrap(), 2);
    assert_eq!(started.elapsed(), secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_past_the_limit_is_not_waited_for() {
    let retry = retry(fixed(secs(1), 3));
    let calls = Counter::default();

    let answer = retry
        .run(true, None, flaky(&calls, 1, Fault::Busy(secs(31))))
        .await;

    assert!(matches!(answer, Err(Error::Inner(Fault::Busy(_)))));
    assert_eq!(calls.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_0_6_budget_over_10_requests_allows_exactly_6_retries() {
    let budget = RetryBudget::new(BudgetConfig {
        ratio: 0.6,
        min_per_sec: 0,
        ttl: secs(10),
    });
    let retry = retry(RetryConfig {
        budget: Some(budget.clone()),
        ..fixed(Duration::ZERO, 100)
    });
    let calls = Counter::default();

    for _ in 0..10 {
        let answer = retry
            .run(true, None, flaky(&calls, usize::MAX, Fault::Down))
            .await;
        assert!(answer.is_err());
    }

    let stats = retry.stats();
    assert_eq!(stats.requests, 10);
    assert_eq!(stats.retries, 6);
    assert_eq!(calls.get(), 16);
    assert_eq!(stats.budget_refusals, 10, "each request ends on a refusal");
    assert_eq!(budget.refusals(), 10);
}

#[tokio::test(start_paused = true)]
async fn the_tower_layer_retries_a_scripted_service() {
    let calls = Counter::default();
    let script = calls.clone();
    let svc = service_fn(move |req: &'static str| {
        let n = script.hit();
        async move {
            if n < 3 {
                Err::<String, BoxError>(Box::new(std::io::Error::from(
                    std::io::ErrorKind::ConnectionReset,
                )))
            } else {
                Ok(format!("{req} on attempt {n}"))
            }
        }
    });
    let retry = retry(fixed(ms(100), 3));

    let answer = retry
        .layer(|_: &&str| true)
        .layer(svc)
        .oneshot("GET /copies")
        .await;

    assert_eq!(answer.unwrap(), "GET /copies on attempt 3");
    assert_eq!(retry.stats().retries, 2);
}

#[tokio::test(start_paused = true)]
async fn the_tower_layer_sends_an_unsafe_request_once() {
    let calls = Counter::default();
    let script = calls.clone();
    let svc = service_fn(move |_: &'static str| {
        script.hit();
        async {
            Err::<(), BoxError>(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            )))
        }
    });
    let is_safe = |req: &&str| req.starts_with("GET") || req.contains("Idempotency-Key");
    let layer = retry(fixed(ms(100), 3)).layer(is_safe);

    let post = layer.layer(svc.clone()).oneshot("POST /loans").await;
    let keyed = layer
        .layer(svc)
        .oneshot("POST /loans Idempotency-Key: 1")
        .await;

    assert!(post.is_err() && keyed.is_err());
    assert_eq!(calls.get(), 1 + 3);
}

#[tokio::test(start_paused = true)]
async fn the_tower_layer_can_retry_an_answer() {
    let calls = Counter::default();
    let script = calls.clone();
    let svc = service_fn(move |_: ()| {
        let n = script.hit();
        async move { Ok::<u16, BoxError>(if n == 1 { 503 } else { 200 }) }
    });
    let unavailable = |r: &Result<u16, BoxError>| match r {
        Ok(503) => RetryHint {
            retryable: true,
            after: Some(secs(2)),
        },
        _ => RetryHint::FINAL,
    };
    let started = Instant::now();

    let status = retry(fixed(ms(1), 3))
        .layer(|_: &()| true)
        .classify(unavailable)
        .layer(svc)
        .oneshot(())
        .await;

    assert_eq!(status.unwrap(), 200);
    assert_eq!(started.elapsed(), secs(2));
}

#[tokio::test(start_paused = true)]
async fn the_tower_layer_honours_the_request_deadline() {
    let calls = Counter::default();
    let script = calls.clone();
    let svc = service_fn(move |_: Deadline| {
        script.hit();
        async { Err::<(), BoxError>(Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut))) }
    });
    let per_attempt = TimeoutLayer::new(secs(1));

    let answer = retry(fixed(secs(1), 10))
        .layer(|_: &Deadline| true)
        .deadline(|d: &Deadline| Some(*d))
        .layer(per_attempt.layer(svc))
        .oneshot(Deadline::after(ms(2500)))
        .await;

    assert!(answer.is_err());
    assert_eq!(calls.get(), 3, "at 0 s, 1 s and 2 s");
}
