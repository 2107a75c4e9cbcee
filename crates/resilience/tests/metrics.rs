//! The Prometheus families each component registers.

use lectern_resilience::metrics::{BreakerMetrics, BulkheadMetrics, RetryMetrics};
use lectern_resilience::{Breaker, BreakerConfig, Bulkhead, Error, Retry, RetryConfig};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

#[tokio::test(start_paused = true)]
async fn breaker_state_has_one_series_per_state() {
    let mut registry = Registry::default();
    let metrics = BreakerMetrics::register(&mut registry);
    let breaker = Breaker::new("book-service", BreakerConfig::default());
    metrics.track(&breaker);

    for _ in 0..5 {
        let _: Result<(), Error<std::io::Error>> = breaker
            .call(async { Err(std::io::ErrorKind::Other.into()) })
            .await;
    }
    let _ = breaker.call(async { Ok::<_, std::io::Error>(()) }).await;
    let text = scrape(&registry);

    assert!(
        text.contains("# HELP lectern_breaker_state Circuit breaker state"),
        "{text}"
    );
    for (state, value) in [
        ("closed", 0),
        ("open", 1),
        ("half_open", 0),
        ("disabled", 0),
        ("forced_open", 0),
    ] {
        let line = format!(
            r#"lectern_breaker_state{{dependency="book-service",state="{state}"}} {value}"#
        );
        assert!(text.contains(&line), "missing {line} in\n{text}");
    }
    assert!(
        text.contains(
            r#"lectern_breaker_calls_total{dependency="book-service",outcome="failure"} 5"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"lectern_breaker_calls_total{dependency="book-service",outcome="rejected"} 1"#
        ),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_breaker_leaves_the_scrape() {
    let mut registry = Registry::default();
    let metrics = BreakerMetrics::register(&mut registry);
    let breaker = Breaker::new("gone", BreakerConfig::default());
    metrics.track(&breaker);
    assert!(scrape(&registry).contains(r#"dependency="gone""#));

    drop(breaker);

    assert!(!scrape(&registry).contains(r#"dependency="gone""#));
}

#[tokio::test(start_paused = true)]
async fn retry_and_bulkhead_families_are_reported() {
    let mut registry = Registry::default();
    let retries = RetryMetrics::register(&mut registry);
    let bulkheads = BulkheadMetrics::register(&mut registry);
    let retry = Retry::new("user-service", RetryConfig::default());
    let bulkhead = Bulkhead::new("user-service", 1, 0);
    retries.track(&retry);
    bulkheads.track(&bulkhead);

    let _held = bulkhead.acquire().await.unwrap();
    assert!(bulkhead.acquire().await.is_err());
    let _: Result<(), Error<std::io::Error>> = retry.run(true, None, || async { Ok(()) }).await;
    let text = scrape(&registry);

    for line in [
        r#"lectern_retry_requests_total{dependency="user-service"} 1"#,
        r#"lectern_retries_total{dependency="user-service"} 0"#,
        r#"lectern_retry_budget_refusals_total{dependency="user-service"} 0"#,
        r#"lectern_bulkhead_in_flight{dependency="user-service"} 1"#,
        r#"lectern_bulkhead_queued{dependency="user-service"} 0"#,
        r#"lectern_bulkhead_rejected_total{dependency="user-service"} 1"#,
        "# HELP lectern_bulkhead_rejected Calls the bulkhead refused because it was full.",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}
