//! The whole plain-API stack, its combined error, and the cached fallback.

mod support;

use std::sync::Arc;
use std::time::Duration;

use lectern_resilience::{
    Answer, Backoff, Breaker, BreakerConfig, BreakerState, Bulkhead, Deadline, Dependency, Error,
    MemoryCache, Retry, RetryConfig,
};
use support::{answer_after, ms, secs, Counter, Fault};

#[derive(Debug)]
struct NoWait;

impl Backoff for NoWait {
    fn delay(&self, _: u32) -> Duration {
        Duration::ZERO
    }
}

fn books() -> Dependency {
    let retry = RetryConfig {
        backoff: Arc::new(NoWait),
        ..RetryConfig::default()
    };

    Dependency::new(
        Breaker::new("book-service", BreakerConfig::default()),
        Retry::new("book-service", retry),
    )
    .with_bulkhead(Bulkhead::new("book-service", 4, 0))
}

#[tokio::test(start_paused = true)]
async fn each_attempt_goes_through_the_breaker() {
    let books = books();
    let calls = Counter::default();

    let answer: Result<u32, Error<Fault>> = books
        .call(true, None, || {
            let n = calls.hit();
            async move {
                if n < 3 {
                    Err(Fault::Down)
                } else {
                    Ok(7)
                }
            }
        })
        .await;

    assert_eq!(answer.unwrap(), 7);
    let totals = books.breaker().snapshot().totals;
    assert_eq!((totals.failures, totals.successes), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_ends_the_retries() {
    let books = books();
    books.breaker().force_open();
    let calls = Counter::default();

    let answer: Result<(), Error<Fault>> = books
        .call(true, None, || {
            calls.hit();
            async { Ok(()) }
        })
        .await;

    assert!(matches!(answer, Err(Error::BreakerOpen(_))));
    assert_eq!(calls.get(), 0);
    assert_eq!(books.retry().stats().retries, 0);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_the_whole_call() {
    let books = books();
    let deadline = Deadline::after(ms(500));

    let answer = books
        .call(true, Some(deadline), || {
            answer_after(secs(2), Ok::<_, Fault>(()))
        })
        .await;

    assert!(matches!(answer, Err(Error::DeadlineExceeded(_))));
    assert_eq!(
        books.breaker().snapshot().totals.ignored,
        0,
        "dropped, not judged"
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_is_an_error_of_its_own() {
    let books = Dependency::new(
        Breaker::new("book-service", BreakerConfig::default()),
        Retry::new("book-service", RetryConfig::default()),
    )
    .with_bulkhead(Bulkhead::new("book-service", 1, 0));

    let slow = books.call(false, None, || answer_after(secs(1), Ok::<_, Fault>(1)));
    let refused = books.call(false, None, || answer_after(secs(1), Ok::<_, Fault>(2)));
    let (slow, refused) = tokio::join!(slow, refused);

    assert_eq!(slow.unwrap(), 1);
    assert!(matches!(refused, Err(Error::BulkheadFull(_))));
}

#[tokio::test(start_paused = true)]
async fn a_failed_call_serves_the_last_good_answer_marked_stale() {
    let books = books();
    let cache = MemoryCache::new(secs(600), 100);

    let fresh = books
        .call_cached(&cache, "book:7", true, None, || async {
            Ok::<_, Fault>("Dune")
        })
        .await
        .unwrap();
    assert!(!fresh.is_stale());

    tokio::time::advance(secs(90)).await;
    books.breaker().force_open();
    let stale = books
        .call_cached(&cache, "book:7", true, None, || async {
            Ok::<_, Fault>("unused")
        })
        .await
        .unwrap();

    let Answer::Stale { value, age, cause } = stale else {
        panic!("expected a stale answer");
    };
    assert_eq!((value, age), ("Dune", secs(90)));
    assert!(matches!(cause, Error::BreakerOpen(_)));
    assert_eq!(books.breaker().snapshot().totals.fallbacks, 1);
}

#[tokio::test(start_paused = true)]
async fn the_callers_mistake_is_never_covered_by_a_stale_answer() {
    let books = books();
    let cache = MemoryCache::new(secs(600), 100);
    books
        .call_cached(&cache, "book:7", true, None, || async {
            Ok::<_, Fault>("Dune")
        })
        .await
        .unwrap();

    let answer = books
        .call_cached(&cache, "book:7", true, None, || async {
            Err::<&str, _>(Fault::NotFound)
        })
        .await;

    assert!(matches!(answer, Err(Error::Inner(Fault::NotFound))));
}

#[tokio::test(start_paused = true)]
async fn without_a_cached_answer_the_error_comes_back() {
    let books = books();
    let cache = MemoryCache::<u32>::new(secs(600), 100);

    let answer = books
        .call_cached(&cache, "book:8", true, None, || async { Err(Fault::Down) })
        .await;

    assert!(matches!(answer, Err(Error::Inner(Fault::Down))));
    assert_eq!(
        books.breaker().state(),
        BreakerState::Closed,
        "3 attempts < 5"
    );
}

fn assert_send<T: Send>(_: &T) {}

#[tokio::test(start_paused = true)]
async fn the_call_futures_can_move_between_threads() {
    let books = books();
    let cache = MemoryCache::new(secs(600), 100);

    let call = books.call(true, None, || async { Ok::<_, Fault>(1) });
    let cached = books.call_cached(&cache, "k", true, None, || async { Ok::<_, Fault>(1) });
    let detached = books
        .breaker()
        .call_detached_or_else(async { Ok::<_, Fault>(1) }, |e| async { Err(e) });

    assert_send(&call);
    assert_send(&cached);
    assert_send(&detached);
    assert_eq!(call.await.unwrap(), 1);
}
