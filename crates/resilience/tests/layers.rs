//! The breaker and fallback tower layers, against scripted services.

mod support;

use lectern_resilience::{
    BoxError, Breaker, BreakerConfig, BreakerOpen, BreakerState, Elapsed, FallbackLayer, Outcome,
};
use support::{ms, secs, Counter};
use tower::{service_fn, Layer, ServiceBuilder, ServiceExt};

#[derive(Debug, thiserror::Error)]
#[error("status {0}")]
struct Status(u16);

#[tokio::test(start_paused = true)]
async fn the_breaker_layer_opens_and_stops_calling() {
    let breaker = Breaker::new("user-service", BreakerConfig::default());
    let ran = Counter::default();
    let script = ran.clone();
    let svc = breaker.layer().layer(service_fn(move |_: ()| {
        script.hit();
        async { Err::<(), _>(Status(503)) }
    }));

    for _ in 0..5 {
        let err = svc.clone().oneshot(()).await.unwrap_err();
        assert!(err.downcast_ref::<Status>().is_some());
    }
    let refused = svc.clone().oneshot(()).await.unwrap_err();

    assert!(refused.downcast_ref::<BreakerOpen>().is_some());
    assert_eq!(ran.get(), 5);
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_4xx_is_the_callers_fault_with_a_classifier() {
    let client_errors_are_fine = |r: &Result<(), Status>| match r {
        Err(Status(code)) if *code >= 500 => Outcome::Failure,
        _ => Outcome::Success,
    };
    let breaker = Breaker::new("user-service", BreakerConfig::default())
        .classify_with(client_errors_are_fine);
    let svc = breaker.layer().layer(service_fn(
        |code: u16| async move { Err::<(), _>(Status(code)) },
    ));

    for _ in 0..20 {
        svc.clone().oneshot(404).await.unwrap_err();
    }
    assert_eq!(breaker.state(), BreakerState::Closed);

    for _ in 0..5 {
        svc.clone().oneshot(502).await.unwrap_err();
    }
    assert_eq!(breaker.state(), BreakerState::Closed, "5 of 25 failed");
}

#[tokio::test(start_paused = true)]
async fn the_breaker_layer_times_out_and_cancels() {
    let breaker = Breaker::new("user-service", BreakerConfig::default());
    let finished = Counter::default();
    let script = finished.clone();
    let svc = breaker.layer().layer(service_fn(move |_: ()| {
        let script = script.clone();
        async move {
            tokio::time::sleep(secs(10)).await;
            script.hit();
            Ok::<_, BoxError>(())
        }
    }));

    let err = svc.oneshot(()).await.unwrap_err();
    tokio::time::advance(secs(20)).await;

    assert_eq!(
        err.downcast_ref::<Elapsed>().map(Elapsed::limit),
        Some(secs(3))
    );
    assert_eq!(finished.get(), 0);
    assert_eq!(breaker.snapshot().totals.timeouts, 1);
}

#[tokio::test(start_paused = true)]
async fn the_fallback_layer_answers_once_for_a_refused_call() {
    let breaker = Breaker::new("user-service", BreakerConfig::default());
    breaker.force_open();
    let fallbacks = Counter::default();
    let counted = fallbacks.clone();
    let fallback = move |err: BoxError| {
        counted.hit();
        let refused = err.downcast_ref::<BreakerOpen>().is_some();
        async move { Ok::<_, BoxError>(if refused { "cached" } else { "other" }) }
    };

    let svc = ServiceBuilder::new()
        .layer(FallbackLayer::new(fallback).report_to(&breaker))
        .layer(breaker.layer())
        .service(service_fn(|_: ()| async {
            tokio::time::sleep(ms(1)).await;
            Ok::<_, BoxError>("live")
        }));

    assert_eq!(svc.oneshot(()).await.unwrap(), "cached");
    assert_eq!(fallbacks.get(), 1);
    assert_eq!(breaker.snapshot().totals.fallbacks, 1);
}

#[tokio::test(start_paused = true)]
async fn the_fallback_layer_leaves_good_answers_alone() {
    let fallbacks = Counter::default();
    let counted = fallbacks.clone();
    let fallback = move |_: BoxError| {
        counted.hit();
        async { Ok::<_, BoxError>("cached") }
    };
    let svc =
        FallbackLayer::new(fallback).layer(service_fn(|_: ()| async { Ok::<_, BoxError>("live") }));

    assert_eq!(svc.oneshot(()).await.unwrap(), "live");
    assert_eq!(fallbacks.get(), 0);
}
