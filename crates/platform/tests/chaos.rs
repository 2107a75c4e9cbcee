//! The chaos layer of `server::Service`: injected errors and delays on
//! the service's own routes, never on health or metrics, counted in the
//! metrics. Requests go straight into the router (no sockets), so the
//! delay test runs on tokio's paused clock.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use lectern_platform::chaos::ChaosConfig;
use lectern_platform::metrics::Metrics;
use lectern_platform::server::{Service, DEADLINE_HEADER};
use tower::ServiceExt;

fn service(chaos: ChaosConfig, metrics: &Metrics) -> Router {
    let api = Router::new().route("/api/things", get(|| async { "things" }));

    Service::new("chaos-test", api)
        .metrics(metrics.clone())
        .chaos(chaos)
        .into_router()
}

async fn status(router: &Router, path: &str) -> StatusCode {
    let request = Request::get(path).body(Body::empty()).unwrap();

    router.clone().oneshot(request).await.unwrap().status()
}

async fn body(router: &Router, path: &str) -> String {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();

    String::from_utf8(bytes.to_vec()).unwrap()
}

fn errors_only() -> ChaosConfig {
    ChaosConfig {
        enabled: true,
        error_rate: 1.0,
        delay_rate: 0.0,
        delay: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn at_rate_one_every_request_but_health_and_metrics_fails() {
    let metrics = Metrics::new();
    let router = service(errors_only(), &metrics);

    for _ in 0..5 {
        let status = status(&router, "/api/things").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    let problem = body(&router, "/api/things").await;
    assert!(problem.contains("chaos-fault"), "{problem}");
    // Unknown routes are the service's too.
    let unknown = status(&router, "/api/nothing").await;
    assert_eq!(unknown, StatusCode::INTERNAL_SERVER_ERROR);

    for path in ["/health", "/health/ready", "/health/live", "/metrics"] {
        assert_eq!(status(&router, path).await, StatusCode::OK, "{path}");
    }
    let text = body(&router, "/metrics").await;
    assert!(
        text.contains(r#"lectern_chaos_faults_total{kind="error"} 7"#),
        "{text}"
    );
}

#[tokio::test]
async fn switched_off_nothing_is_injected_or_registered() {
    let metrics = Metrics::new();
    let chaos = ChaosConfig {
        enabled: false,
        ..errors_only()
    };
    let router = service(chaos, &metrics);

    for _ in 0..20 {
        assert_eq!(status(&router, "/api/things").await, StatusCode::OK);
    }
    assert!(!metrics.render().contains("lectern_chaos"));
}

#[tokio::test(start_paused = true)]
async fn at_rate_one_every_request_waits_the_delay() {
    let metrics = Metrics::new();
    let chaos = ChaosConfig {
        enabled: true,
        error_rate: 0.0,
        delay_rate: 1.0,
        delay: Duration::from_secs(5),
    };
    let router = service(chaos, &metrics);

    let start = tokio::time::Instant::now();
    let answer = body(&router, "/api/things").await;
    assert_eq!(answer, "things");
    assert_eq!(start.elapsed(), Duration::from_secs(5));

    let start = tokio::time::Instant::now();
    assert_eq!(status(&router, "/health/live").await, StatusCode::OK);
    assert_eq!(start.elapsed(), Duration::ZERO, "health is not delayed");

    let text = metrics.render();
    assert!(
        text.contains(r#"lectern_chaos_faults_total{kind="delay"} 1"#),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_callers_deadline_cuts_an_injected_delay() {
    let metrics = Metrics::new();
    let chaos = ChaosConfig {
        enabled: true,
        error_rate: 0.0,
        delay_rate: 1.0,
        delay: Duration::from_secs(5),
    };
    let router = service(chaos, &metrics);
    let request = Request::get("/api/things")
        .header(DEADLINE_HEADER, "1000")
        .body(Body::empty())
        .unwrap();

    let start = tokio::time::Instant::now();
    let response = router.oneshot(request).await.unwrap();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}
