//! The bulkhead: bounded in flight, bounded queue, refusal beyond.

mod support;

use futures::future::join_all;
use lectern_resilience::{BoxError, Bulkhead, BulkheadFull, Retryable};
use support::{answer_after, ms, Counter};
use tokio::time::Instant;
use tower::{service_fn, Layer, Service, ServiceExt};

#[tokio::test(start_paused = true)]
async fn beyond_the_slots_and_the_queue_a_call_is_refused_at_once() {
    let bulkhead = Bulkhead::new("user-service", 2, 1);
    let started = Instant::now();

    let calls = (0..4).map(|i| {
        let bulkhead = bulkhead.clone();
        async move {
            let result = bulkhead
                .run(answer_after(ms(100), Ok::<_, support::Fault>(i)))
                .await;
            (result.map(Result::unwrap), started.elapsed())
        }
    });
    let results = join_all(calls).await;

    assert_eq!(results[0], (Ok(0), ms(100)));
    assert_eq!(results[1], (Ok(1), ms(100)));
    assert_eq!(results[2], (Ok(2), ms(200)), "queued, then ran");
    let (refused, at) = &results[3];
    let full = refused.as_ref().unwrap_err();
    assert_eq!(*at, ms(0), "refused without waiting");
    assert!(!full.is_retryable());
    assert_eq!(bulkhead.rejected(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_gauges_follow_the_calls() {
    let bulkhead = Bulkhead::new("user-service", 1, 5);
    let first = bulkhead.acquire().await.unwrap();

    let waiting = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move { bulkhead.acquire().await.map(drop) }
    });
    tokio::task::yield_now().await;
    assert_eq!((bulkhead.in_flight(), bulkhead.queued()), (1, 1));

    drop(first);
    waiting.await.unwrap().unwrap();

    assert_eq!((bulkhead.in_flight(), bulkhead.queued()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_wait_gives_its_queue_place_back() {
    let bulkhead = Bulkhead::new("user-service", 1, 1);
    let _slot = bulkhead.acquire().await.unwrap();

    let gave_up = tokio::time::timeout(ms(10), bulkhead.acquire()).await;
    assert!(gave_up.is_err());

    assert_eq!(bulkhead.queued(), 0);
    let queued_again = tokio::time::timeout(ms(10), bulkhead.acquire()).await;
    assert!(queued_again.is_err(), "queued (not refused) once more");
    assert_eq!(bulkhead.rejected(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_tower_layer_refuses_when_full() {
    let bulkhead = Bulkhead::new("user-service", 1, 0);
    let ran = Counter::default();
    let script = ran.clone();
    let inner = service_fn(move |_: ()| {
        script.hit();
        async {
            tokio::time::sleep(ms(100)).await;
            Ok::<_, BoxError>("done")
        }
    });
    let mut svc = bulkhead.layer().layer(inner);

    let first = svc.ready().await.unwrap().call(());
    let second = svc.ready().await.unwrap().call(());
    let (first, second) = tokio::join!(first, second);

    assert_eq!(first.unwrap(), "done");
    let err = second.unwrap_err();
    assert!(err.downcast_ref::<BulkheadFull>().is_some(), "{err}");
    assert_eq!(ran.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_tower_layer_queues_within_bounds() {
    let bulkhead = Bulkhead::new("user-service", 1, 2);
    let inner = service_fn(|i: u32| async move {
        tokio::time::sleep(ms(100)).await;
        Ok::<_, BoxError>(i)
    });
    let svc = bulkhead.layer().layer(inner);
    let started = Instant::now();

    let calls = (0..3).map(|i| svc.clone().oneshot(i));
    let answers: Vec<_> = join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    assert_eq!(answers, [0, 1, 2]);
    assert_eq!(started.elapsed(), ms(300));
}
