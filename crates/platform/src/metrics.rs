//! Prometheus metrics: one registry per process, HTTP families built in.
//!
//! Every service counts its requests in `http_requests_total` and times
//! them in `http_request_duration_seconds`, labelled by method, the matched
//! route template (never the raw path) and status code. Components register
//! their own families through [`Metrics::register`] or
//! [`Metrics::register_with`], each with help text. Calls to neighbours
//! report their circuit breaker, retries and bulkhead through
//! [`Metrics::track_dependency`]: `lectern_breaker_state` (one series per
//! state), `lectern_breaker_calls_total` by outcome, `lectern_retries_total`,
//! `lectern_retry_budget_refusals_total`, `lectern_bulkhead_in_flight` and
//! `lectern_bulkhead_rejected_total`, labelled by dependency.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lectern_resilience::metrics::{BreakerMetrics, BulkheadMetrics, RetryMetrics};
use lectern_resilience::Dependency;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

/// The media type `/metrics` answers with.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of the HTTP families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The request method.
    pub method: String,
    /// The matched route template, or `unmatched`.
    pub route: String,
    /// The response status code.
    pub status_code: u16,
}

type DurationFamily = Family<HttpLabels, Histogram, fn() -> Histogram>;

/// The process's metrics: a registry and the HTTP families.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    requests: Family<HttpLabels, Counter>,
    durations: DurationFamily,
    dependencies: Arc<OnceLock<DependencyCollectors>>,
}

/// The resilience crate's collectors, registered once per registry on
/// the first dependency tracked.
#[derive(Debug)]
struct DependencyCollectors {
    breakers: BreakerMetrics,
    retries: RetryMetrics,
    bulkheads: BulkheadMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn duration_histogram() -> Histogram {
    let buckets = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    Histogram::new(buckets)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry holding the HTTP families.
    pub fn new() -> Self {
        let requests = Family::<HttpLabels, Counter>::default();
        let durations: DurationFamily = Family::new_with_constructor(duration_histogram);
        let mut registry = Registry::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route and status",
            durations.clone(),
        );
        let registry = Arc::new(Mutex::new(registry));
        Self {
            registry,
            requests,
            durations,
            dependencies: Arc::new(OnceLock::new()),
        }
    }

    /// Registers a component's family with its help text.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry.lock().register(name, help, metric);
    }

    /// Runs `register` with the registry, under its lock, for components
    /// that register their own families or collectors.
    pub fn register_with<R>(&self, register: impl FnOnce(&mut Registry) -> R) -> R {
        register(&mut self.registry.lock())
    }

    /// Reports `dependency`'s breaker, retries and bulkhead from now on,
    /// for as long as it lives.
    pub fn track_dependency<C>(&self, dependency: &Dependency<C>) {
        let collectors = self.dependencies.get_or_init(|| {
            self.register_with(|registry| DependencyCollectors {
                breakers: BreakerMetrics::register(registry),
                retries: RetryMetrics::register(registry),
                bulkheads: BulkheadMetrics::register(registry),
            })
        });

        collectors.breakers.track(dependency.breaker());
        collectors.retries.track(dependency.retry());
        if let Some(bulkhead) = dependency.bulkhead() {
            collectors.bulkheads.track(bulkhead);
        }
    }

    /// Counts one answered request.
    pub fn observe(&self, labels: HttpLabels, seconds: f64) {
        self.durations.get_or_create(&labels).observe(seconds);
        self.requests.get_or_create(&labels).inc();
    }

    /// The registry in the text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock();
        if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
            text.clear();
        }
        text
    }
}

/// Middleware that counts and times every request by its matched route.
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    let labels = HttpLabels {
        method,
        route,
        status_code: response.status().as_u16(),
    };
    metrics.observe(labels, start.elapsed().as_secs_f64());
    response
}

/// The `/metrics` handler.
pub async fn handler(State(metrics): State<Metrics>) -> Response {
    let mut response = metrics.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
    response
}
