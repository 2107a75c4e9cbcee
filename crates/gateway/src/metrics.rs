//! The gateway's Prometheus metrics.
//!
//! - `http_requests_total` and `http_request_duration_seconds`, labelled
//!   `method`, `route` (the matched prefix template, never the raw path)
//!   and `status_code`, as every Lectern service has them;
//! - `gateway_upstream_requests_total{upstream,server,outcome}`: what each
//!   attempt on a server came to;
//! - `gateway_upstream_server_available{upstream,server}` (1 or 0),
//!   `gateway_upstream_server_in_flight{upstream,server}`,
//!   `gateway_upstream_server_healthy{upstream,server}` (active checks)
//!   and `gateway_upstream_server_ejected{upstream,server}`, read from
//!   the balancer when `/metrics` is scraped;
//! - `gateway_upstream_health_checks_total{upstream,server,result}`;
//! - `gateway_upstream_failed_over{upstream}`: 1 while the passive region
//!   serves.
//!
//! The registry ([`Families`]) is made once and outlives configuration
//! reloads, so counters continue; each configuration has its own route
//! table ([`Metrics`]).
//!
//! The hot path takes no lock of the registry: series of common statuses
//! are kept in a table of `OnceLock`s indexed by route, method and status,
//! so counting a request is an atomic load plus the metric's own update.
//! Rare statuses go through the family's map.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{Method, StatusCode};
use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, LabelValueEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::route::RouteId;

/// Methods with their own label value; any other is counted as `OTHER`.
static METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

/// Statuses whose series are cached; others take the family's lock.
const STATUSES: [u16; 22] = [
    200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404, 405, 408, 409, 413,
    415, 422, 429, 500, 502, 503, 504,
];

/// Labels of the HTTP families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status_code: u16,
}

/// Labels of the per-server families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    upstream: String,
    server: String,
}

/// Labels of the per-upstream families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

/// Labels of the health-check counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    upstream: String,
    server: String,
    result: &'static str,
}

/// Labels of the per-server outcome counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    upstream: String,
    server: String,
    outcome: Outcome,
}

/// What one attempt on one server came to.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A response the gateway passed on or may pass on.
    Success,
    /// A status listed in `next_upstream` (500, 502, ...).
    HttpError,
    /// The connection was refused, reset or unreachable.
    ConnectError,
    /// The connect timeout ran out.
    ConnectTimeout,
    /// The request or response broke after the connection was made.
    Error,
    /// The response head was not valid HTTP.
    InvalidHeader,
    /// The read timeout ran out.
    ReadTimeout,
}

impl Outcome {
    const ALL: [Outcome; 7] = [
        Outcome::Success,
        Outcome::HttpError,
        Outcome::ConnectError,
        Outcome::ConnectTimeout,
        Outcome::Error,
        Outcome::InvalidHeader,
        Outcome::ReadTimeout,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::HttpError => "http_error",
            Outcome::ConnectError => "connect_error",
            Outcome::ConnectTimeout => "connect_timeout",
            Outcome::Error => "error",
            Outcome::InvalidHeader => "invalid_header",
            Outcome::ReadTimeout => "read_timeout",
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, out: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        EncodeLabelValue::encode(&self.as_str(), out)
    }
}

/// The series of one server, made once so updating them takes no lock.
#[derive(Debug)]
pub(crate) struct ServerMetrics {
    outcomes: [Counter; Outcome::ALL.len()],
    available: Gauge,
    in_flight: Gauge,
    healthy: Gauge,
    ejected: Gauge,
    passed: Counter,
    failed: Counter,
}

impl ServerMetrics {
    /// Counts one attempt.
    pub(crate) fn count(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].inc();
    }

    /// Counts one active health check.
    pub(crate) fn checked(&self, passed: bool) {
        if passed {
            self.passed.inc();
        } else {
            self.failed.inc();
        }
    }

    /// Publishes the state read from the balancer.
    pub(crate) fn publish(
        &self,
        available: bool,
        in_flight: u32,
        healthy: bool,
        ejected: bool,
    ) {
        self.available.set(i64::from(available));
        self.in_flight.set(i64::from(in_flight));
        self.healthy.set(i64::from(healthy));
        self.ejected.set(i64::from(ejected));
    }
}

/// The series of one upstream.
#[derive(Debug)]
pub(crate) struct UpstreamMetrics {
    failed_over: Gauge,
}

impl UpstreamMetrics {
    /// Publishes whether the passive region serves.
    pub(crate) fn publish(&self, failed_over: bool) {
        self.failed_over.set(i64::from(failed_over));
    }
}

#[derive(Debug, Clone)]
struct Series {
    count: Counter,
    duration: Histogram,
}

impl Series {
    fn record(&self, seconds: f64) {
        self.count.inc();
        self.duration.observe(seconds);
    }
}

type DurationFamily = Family<HttpLabels, Histogram, fn() -> Histogram>;

/// Every metric family and their registry, made once per gateway and
/// kept across configuration reloads.
#[derive(Debug)]
pub(crate) struct Families {
    registry: Registry,
    requests: Family<HttpLabels, Counter>,
    durations: DurationFamily,
    outcomes: Family<OutcomeLabels, Counter>,
    available: Family<ServerLabels, Gauge>,
    in_flight: Family<ServerLabels, Gauge>,
    healthy: Family<ServerLabels, Gauge>,
    ejected: Family<ServerLabels, Gauge>,
    checks: Family<CheckLabels, Counter>,
    failed_over: Family<UpstreamLabels, Gauge>,
}

fn duration_histogram() -> Histogram {
    let buckets = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        10.0,
    ];

    Histogram::new(buckets)
}

impl Families {
    /// Registers every family.
    pub(crate) fn new() -> Self {
        let mut families = Self {
            registry: Registry::default(),
            requests: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
            outcomes: Family::default(),
            available: Family::default(),
            in_flight: Family::default(),
            healthy: Family::default(),
            ejected: Family::default(),
            checks: Family::default(),
            failed_over: Family::default(),
        };
        families.register();

        families
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            self.requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (to the response head)",
            self.durations.clone(),
        );
        r.register(
            "gateway_upstream_requests",
            "Attempts on each upstream server, by outcome",
            self.outcomes.clone(),
        );
        r.register(
            "gateway_upstream_server_available",
            "1 when the upstream server may be chosen now, else 0",
            self.available.clone(),
        );
        r.register(
            "gateway_upstream_server_in_flight",
            "Requests in flight on each upstream server",
            self.in_flight.clone(),
        );
        r.register(
            "gateway_upstream_server_healthy",
            "1 while the server passes its active health checks (or has none)",
            self.healthy.clone(),
        );
        r.register(
            "gateway_upstream_server_ejected",
            "1 while the server is ejected for consecutive failures",
            self.ejected.clone(),
        );
        r.register(
            "gateway_upstream_health_checks",
            "Active health checks of each server, by result",
            self.checks.clone(),
        );
        r.register(
            "gateway_upstream_failed_over",
            "1 while the upstream's passive region takes the traffic",
            self.failed_over.clone(),
        );
    }

    /// Drops the series of a server that a reload removed.
    pub(crate) fn forget_server(&self, upstream: &str, server: &str) {
        let labels = ServerLabels {
            upstream: upstream.to_owned(),
            server: server.to_owned(),
        };
        for family in [&self.available, &self.in_flight, &self.healthy] {
            family.remove(&labels);
        }
        self.ejected.remove(&labels);
        for outcome in Outcome::ALL {
            self.outcomes.remove(&OutcomeLabels {
                upstream: upstream.to_owned(),
                server: server.to_owned(),
                outcome,
            });
        }
        for result in ["passed", "failed"] {
            self.checks.remove(&CheckLabels {
                upstream: upstream.to_owned(),
                server: server.to_owned(),
                result,
            });
        }
    }

    /// Drops the series of an upstream that a reload removed.
    pub(crate) fn forget_upstream(&self, upstream: &str) {
        self.failed_over.remove(&UpstreamLabels {
            upstream: upstream.to_owned(),
        });
    }

    /// The registry in Prometheus' text format.
    pub(crate) fn render(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        let encoded = prometheus_client::encoding::text::encode(
            &mut text,
            &self.registry,
        );
        if encoded.is_err() {
            text.clear();
        }

        text
    }
}

/// The metrics of one configuration: the shared families and a table
/// of the request series of its routes.
#[derive(Debug)]
pub(crate) struct Metrics {
    families: Arc<Families>,
    routes: Box<[String]>,
    cache: Box<[OnceLock<Series>]>,
}

impl Metrics {
    /// The series table for `routes`, the label values by route id.
    pub(crate) fn new(families: Arc<Families>, routes: Vec<String>) -> Self {
        let slots = routes.len() * (METHODS.len() + 1) * STATUSES.len();

        Self {
            families,
            routes: routes.into_boxed_slice(),
            cache: (0..slots).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The shared families.
    pub(crate) fn families(&self) -> &Families {
        &self.families
    }

    /// The series of one server, made now so updates take no lock.
    pub(crate) fn server(&self, upstream: &str, server: &str) -> ServerMetrics {
        let f = &*self.families;
        let labels = ServerLabels {
            upstream: upstream.to_owned(),
            server: server.to_owned(),
        };
        let outcome = |outcome| {
            let ServerLabels { upstream, server } = labels.clone();
            let labels = OutcomeLabels {
                upstream,
                server,
                outcome,
            };
            f.outcomes.get_or_create(&labels).clone()
        };
        let check = |result| {
            let ServerLabels { upstream, server } = labels.clone();
            let labels = CheckLabels {
                upstream,
                server,
                result,
            };
            f.checks.get_or_create(&labels).clone()
        };

        ServerMetrics {
            outcomes: Outcome::ALL.map(outcome),
            available: f.available.get_or_create(&labels).clone(),
            in_flight: f.in_flight.get_or_create(&labels).clone(),
            healthy: f.healthy.get_or_create(&labels).clone(),
            ejected: f.ejected.get_or_create(&labels).clone(),
            passed: check("passed"),
            failed: check("failed"),
        }
    }

    /// The series of one upstream.
    pub(crate) fn upstream(&self, upstream: &str) -> UpstreamMetrics {
        let labels = UpstreamLabels {
            upstream: upstream.to_owned(),
        };

        UpstreamMetrics {
            failed_over: self
                .families
                .failed_over
                .get_or_create(&labels)
                .clone(),
        }
    }

    /// Counts and times one answered request.
    pub(crate) fn observe(
        &self,
        route: RouteId,
        method: &Method,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let seconds = elapsed.as_secs_f64();
        let status = status.as_u16();
        let m = METHODS.iter().position(|m| m == method);
        let m = m.unwrap_or(METHODS.len());

        let Some(s) = STATUSES.iter().position(|&s| s == status) else {
            return self.make(route, m, status).record(seconds);
        };

        let slot = (route.0 * (METHODS.len() + 1) + m) * STATUSES.len() + s;
        self.cache[slot]
            .get_or_init(|| self.make(route, m, status))
            .record(seconds);
    }

    fn make(&self, route: RouteId, method: usize, status: u16) -> Series {
        let labels = HttpLabels {
            method: METHODS.get(method).map_or("OTHER", Method::as_str),
            route: self.routes[route.0].clone(),
            status_code: status,
        };

        Series {
            count: self.families.requests.get_or_create(&labels).clone(),
            duration: self.families.durations.get_or_create(&labels).clone(),
        }
    }
}
