//! The circuit breaker's behaviour, on tokio's paused clock.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use lectern_resilience::breaker::OpenCause;
use lectern_resilience::{
    Breaker, BreakerConfig, BreakerEvent, BreakerListener, BreakerState, Error, Outcome,
    RetryableErrorsAreFailures,
};
use parking_lot::Mutex;
use support::{answer_after, ms, secs, Counter, Fault};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

fn breaker(config: BreakerConfig) -> Breaker {
    Breaker::new("book-service", config)
}

async fn fail(breaker: &Breaker, times: usize) {
    for _ in 0..times {
        let result = breaker.call(async { Err::<(), _>(Fault::Down) }).await;
        assert!(matches!(result, Err(Error::Inner(Fault::Down))));
    }
}

async fn succeed(breaker: &Breaker) -> Result<u32, Error<Fault>> {
    breaker.call(async { Ok(1) }).await
}

/// Opens a default breaker with five failures.
async fn opened() -> Breaker {
    let breaker = breaker(BreakerConfig::default());
    fail(&breaker, 5).await;
    assert_eq!(breaker.state(), BreakerState::Open);
    breaker
}

#[tokio::test(start_paused = true)]
async fn opens_at_half_failures_once_five_calls_were_made() {
    let breaker = breaker(BreakerConfig::default());

    fail(&breaker, 2).await;
    for _ in 0..2 {
        succeed(&breaker).await.unwrap();
    }
    assert_eq!(breaker.state(), BreakerState::Closed, "4 calls is too few");

    fail(&breaker, 1).await;

    assert_eq!(breaker.state(), BreakerState::Open, "3 of 5 failed");
}

#[tokio::test(start_paused = true)]
async fn stays_closed_below_the_failure_rate() {
    let breaker = breaker(BreakerConfig::default());

    for _ in 0..10 {
        fail(&breaker, 1).await;
        succeed(&breaker).await.unwrap();
        succeed(&breaker).await.unwrap();
    }

    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.snapshot().window.failures, 10);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_refuses_without_calling() {
    let breaker = opened().await;
    let calls = Counter::default();

    let result = breaker
        .call(async {
            calls.hit();
            Ok::<_, Fault>(())
        })
        .await;

    let Err(Error::BreakerOpen(open)) = result else {
        panic!("expected a refusal, got {result:?}");
    };
    assert_eq!(calls.get(), 0);
    assert_eq!(open.state(), BreakerState::Open);
    assert_eq!(
        lectern_resilience::Retryable::retry_after(&open),
        Some(secs(30))
    );
    assert_eq!(breaker.snapshot().totals.rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn ten_concurrent_calls_in_half_open_let_exactly_one_through() {
    let breaker = opened().await;
    tokio::time::advance(secs(30)).await;
    let ran = Counter::default();

    let calls = (0..10).map(|_| {
        breaker.call(async {
            ran.hit();
            answer_after(ms(100), Ok(())).await
        })
    });
    let results = join_all(calls).await;

    let refused: Vec<_> = results
        .iter()
        .filter_map(|r| match r {
            Err(Error::BreakerOpen(open)) => Some(open.state()),
            _ => None,
        })
        .collect();
    assert_eq!(ran.get(), 1);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(refused, vec![BreakerState::HalfOpen; 9]);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_trial_reopens_and_a_successful_one_closes() {
    let breaker = opened().await;

    tokio::time::advance(secs(30)).await;
    fail(&breaker, 1).await;
    assert_eq!(breaker.state(), BreakerState::Open);

    tokio::time::advance(secs(30)).await;
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.snapshot().window.calls, 0, "a new window");
}

#[tokio::test(start_paused = true)]
async fn every_trial_must_succeed_to_close() {
    let breaker = breaker(BreakerConfig {
        trial_calls: 3,
        ..BreakerConfig::default()
    });
    fail(&breaker, 5).await;
    tokio::time::advance(secs(30)).await;

    let trials = (0..4).map(|_| breaker.call(answer_after(ms(10), Ok(()))));
    let results = join_all(trials).await;

    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
    assert_eq!(breaker.state(), BreakerState::Closed);

    fail(&breaker, 5).await;
    tokio::time::advance(secs(30)).await;
    let mixed = [
        breaker.call(answer_after(ms(10), Ok(()))),
        breaker.call(answer_after(ms(20), Err(Fault::Down))),
        breaker.call(answer_after(ms(30), Ok(()))),
    ];
    join_all(mixed).await;

    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_trial_gives_its_place_back() {
    let breaker = opened().await;
    tokio::time::advance(secs(30)).await;

    let cancelled = tokio::time::timeout(ms(50), breaker.call(answer_after(secs(1), Ok(())))).await;
    assert!(cancelled.is_err());

    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn four_failures_then_a_minute_of_successes_leave_none_in_the_window() {
    let breaker = breaker(BreakerConfig {
        min_calls: 10,
        ..BreakerConfig::default()
    });

    fail(&breaker, 4).await;
    for _ in 0..600 {
        tokio::time::advance(ms(100)).await;
        succeed(&breaker).await.unwrap();
    }

    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.state, BreakerState::Closed);
    assert_eq!(snapshot.window.failures, 0);
    assert!(
        (91..=100).contains(&snapshot.window.calls),
        "{:?}",
        snapshot.window
    );
    assert_eq!(snapshot.totals.failures, 4);
    assert_eq!(snapshot.totals.successes, 600);
}

#[tokio::test(start_paused = true)]
async fn failures_leave_the_window_even_without_calls() {
    let breaker = breaker(BreakerConfig::default());
    fail(&breaker, 4).await;

    tokio::time::advance(secs(10)).await;

    assert_eq!(breaker.snapshot().window.calls, 0);
    fail(&breaker, 1).await;
    assert_eq!(breaker.state(), BreakerState::Closed, "old failures gone");
}

#[tokio::test(start_paused = true)]
async fn rates_rise_as_old_successes_leave_the_window() {
    let breaker = breaker(BreakerConfig::default());
    for _ in 0..20 {
        succeed(&breaker).await.unwrap();
    }
    tokio::time::advance(secs(5)).await;
    fail(&breaker, 5).await;
    assert_eq!(breaker.state(), BreakerState::Closed, "5 of 25 failed");

    // The successes leave; a single new success now sees 5 of 6 failed.
    tokio::time::advance(secs(5)).await;
    succeed(&breaker).await.unwrap();

    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_counts_as_a_failure_and_cancels_the_call() {
    let breaker = breaker(BreakerConfig::default());
    let finished = Counter::default();

    let calls = (0..5).map(|_| {
        breaker.call(async {
            tokio::time::sleep(secs(10)).await;
            finished.hit();
            Ok::<_, Fault>(())
        })
    });
    for result in join_all(calls).await {
        assert!(matches!(result, Err(Error::Elapsed(e)) if e.limit() == secs(3)));
    }

    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(breaker.snapshot().totals.timeouts, 5);
    tokio::time::advance(secs(20)).await;
    assert_eq!(finished.get(), 0, "timed-out calls were cancelled");
}

#[tokio::test(start_paused = true)]
async fn a_timeout_then_the_late_failure_of_the_same_call_runs_the_fallback_once() {
    let breaker = breaker(BreakerConfig::default());
    let mut events = breaker.subscribe();
    let fallbacks = Counter::default();

    let answer = breaker
        .call_detached_or_else(answer_after(secs(5), Err::<&str, _>(Fault::Down)), |err| {
            fallbacks.hit();
            assert!(matches!(err, Error::Elapsed(_)));
            async { Ok("cached") }
        })
        .await;
    assert_eq!(answer.unwrap(), "cached");

    // The call fails late, two seconds after it timed out.
    let late = loop {
        match events.recv().await.unwrap() {
            BreakerEvent::LateResult { outcome } => break outcome,
            _ => continue,
        }
    };

    let totals = breaker.snapshot().totals;
    assert_eq!(late, Outcome::Failure);
    assert_eq!(fallbacks.get(), 1);
    assert_eq!(totals.fallbacks, 1);
    assert_eq!(totals.timeouts, 1);
    assert_eq!(totals.late_failures, 1);
    assert_eq!(totals.failures, 0, "the late failure is not counted twice");
}

#[tokio::test(start_paused = true)]
async fn the_fallback_answers_for_a_refused_call() {
    let breaker = opened().await;
    let fallbacks = Counter::default();

    let answer = breaker
        .call_or_else(async { Ok::<_, Fault>(1) }, |err| {
            fallbacks.hit();
            let refused = matches!(err, Error::BreakerOpen(_));
            async move { Ok(if refused { 0 } else { 99 }) }
        })
        .await;

    assert_eq!(answer.unwrap(), 0);
    assert_eq!(fallbacks.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_slow_call_rate_opens_the_breaker() {
    let breaker = breaker(BreakerConfig {
        slow_call_duration: secs(1),
        slow_call_rate: 0.5,
        min_calls: 4,
        ..BreakerConfig::default()
    });
    let mut events = breaker.subscribe();

    for latency in [ms(10), ms(1500), ms(10)] {
        breaker.call(answer_after(latency, Ok(()))).await.unwrap();
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    breaker.call(answer_after(ms(2000), Ok(()))).await.unwrap();

    assert_eq!(breaker.state(), BreakerState::Open);
    let opened = loop {
        if let BreakerEvent::Opened { cause, .. } = events.recv().await.unwrap() {
            break cause;
        }
    };
    let OpenCause::Window(window) = opened else {
        panic!("opened by {opened:?}");
    };
    assert_eq!((window.calls, window.failures, window.slow), (4, 0, 2));
}

#[tokio::test(start_paused = true)]
async fn the_reset_timeout_grows_with_each_failed_trial_up_to_its_cap() {
    let breaker = breaker(BreakerConfig {
        reset_backoff: 2,
        max_reset_timeout: secs(100),
        ..BreakerConfig::default()
    });
    fail(&breaker, 5).await;

    let mut waits = Vec::new();
    for _ in 0..3 {
        let opened_at = Instant::now();
        while breaker.state() == BreakerState::Open {
            tokio::time::advance(secs(1)).await;
        }
        waits.push(opened_at.elapsed().as_secs());
        fail(&breaker, 1).await;
    }
    tokio::time::advance(secs(100)).await;
    succeed(&breaker).await.unwrap();
    fail(&breaker, 5).await;

    assert_eq!(waits, [30, 60, 100]);
    assert_eq!(
        breaker.snapshot().open_for,
        Some(secs(30)),
        "reset after closing"
    );
}

#[tokio::test(start_paused = true)]
async fn forced_open_refuses_everything() {
    let breaker = breaker(BreakerConfig::default());
    breaker.force_open();
    let ran = Counter::default();

    tokio::time::advance(secs(3600)).await;
    let result = breaker
        .call(async {
            ran.hit();
            Ok::<_, Fault>(())
        })
        .await;

    assert!(matches!(result, Err(Error::BreakerOpen(e)) if e.state() == BreakerState::ForcedOpen));
    assert_eq!(ran.get(), 0);
    assert_eq!(breaker.state(), BreakerState::ForcedOpen);
}

#[tokio::test(start_paused = true)]
async fn disabled_lets_everything_through_and_never_trips() {
    let breaker = breaker(BreakerConfig::default());
    breaker.disable();

    fail(&breaker, 50).await;

    assert_eq!(breaker.state(), BreakerState::Disabled);
    assert_eq!(breaker.snapshot().totals.failures, 50);
    breaker.reset();
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.snapshot().window.calls, 0);
}

#[tokio::test(start_paused = true)]
async fn reset_closes_an_open_breaker() {
    let breaker = opened().await;

    breaker.reset();

    assert_eq!(breaker.state(), BreakerState::Closed);
    succeed(&breaker).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_caller_mistake_is_not_a_failure_with_a_replaced_classifier() {
    let breaker = breaker(BreakerConfig::default()).classify_with(RetryableErrorsAreFailures);

    for _ in 0..20 {
        let result = breaker.call(async { Err::<(), _>(Fault::NotFound) }).await;
        assert!(matches!(result, Err(Error::Inner(Fault::NotFound))));
    }

    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.snapshot().totals.successes, 20);
}

#[tokio::test(start_paused = true)]
async fn a_closure_can_classify() {
    let ignore_all = |_: &Result<(), Fault>| Outcome::Ignored;
    let breaker = breaker(BreakerConfig::default()).classify_with(ignore_all);

    for _ in 0..10 {
        let _ = breaker.call(async { Err::<(), _>(Fault::Down) }).await;
    }

    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.snapshot().totals.ignored, 10);
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, BreakerEvent)>>);

impl BreakerListener for Recorder {
    fn on_event(&self, breaker: &str, event: &BreakerEvent) {
        self.0.lock().push((breaker.to_owned(), event.clone()));
    }
}

#[tokio::test(start_paused = true)]
async fn listeners_hear_every_transition() {
    let breaker = breaker(BreakerConfig::default());
    let recorder = Arc::new(Recorder::default());
    breaker.listen(recorder.clone());

    fail(&breaker, 5).await;
    let _ = succeed(&breaker).await;
    tokio::time::advance(secs(30)).await;
    succeed(&breaker).await.unwrap();

    let events = recorder.0.lock();
    let kinds: Vec<_> = events
        .iter()
        .map(|(_, e)| match e {
            BreakerEvent::Opened { .. } => "opened",
            BreakerEvent::HalfOpened => "half-open",
            BreakerEvent::Closed => "closed",
            BreakerEvent::Success { .. } => "success",
            BreakerEvent::Failure { .. } => "failure",
            BreakerEvent::Rejected { .. } => "rejected",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "failure",
            "failure",
            "failure",
            "failure",
            "failure",
            "opened",
            "rejected",
            "half-open",
            "success",
            "closed",
        ]
    );
    assert!(events.iter().all(|(name, _)| name == "book-service"));
}

#[tokio::test(start_paused = true)]
async fn the_snapshot_gives_latency_percentiles() {
    let breaker = breaker(BreakerConfig::default());

    for i in 1..=100u64 {
        breaker.call(answer_after(ms(i), Ok(()))).await.unwrap();
    }

    let latency = breaker.snapshot().latency;
    assert_eq!(latency.count, 100);
    let p50 = latency.p50.unwrap();
    let p99 = latency.p99.unwrap();
    assert!(p50 >= ms(50) && p50 <= ms(63), "p50 {p50:?}");
    assert!(p99 >= ms(99) && p99 <= ms(124), "p99 {p99:?}");
}

#[tokio::test(start_paused = true)]
async fn an_idle_breaker_moves_on_its_next_call() {
    let breaker = opened().await;

    tokio::time::advance(Duration::from_secs(3600)).await;

    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_frees_the_breaker() {
    let breaker = breaker(BreakerConfig::default());
    let mut events = breaker.subscribe();
    fail(&breaker, 5).await;

    drop(breaker);

    // The channel closes once every event has been read: nothing else
    // holds the breaker. A breaker kept alive would hang here until the
    // timeout fails the test.
    let drained = tokio::time::timeout(secs(60), async {
        while let Ok(_) | Err(RecvError::Lagged(_)) = events.recv().await {}
    });
    drained.await.expect("the breaker was not freed");
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_idle_breakers_hold_no_task() {
    let breakers: Vec<_> = (0..10_000)
        .map(|i| Breaker::new(format!("dependency-{i}"), BreakerConfig::default()))
        .collect();

    for breaker in &breakers {
        fail(breaker, 5).await;
    }
    tokio::time::advance(secs(30)).await;

    let runtime = tokio::runtime::Handle::current().metrics();
    assert_eq!(runtime.num_alive_tasks(), 0);
    assert!(breakers.iter().all(|b| b.state() == BreakerState::HalfOpen));
    assert!(
        breakers[0].footprint() < 64 * 1024,
        "{}",
        breakers[0].footprint()
    );
}
