//! Fault injection on inbound requests, for tests and chaos experiments.
//!
//! With `CHAOS_ENABLED=true` each request to a service's own routes may
//! first wait (`CHAOS_DELAY_RATE`, `CHAOS_DELAY_MS`) and may then fail
//! with a 500 problem document (`CHAOS_ERROR_RATE`). The two draws are
//! independent, so with the defaults 10 % of requests wait 5 s and 10 %
//! fail (1 % do both). The wait runs inside the service's time limit, so a
//! caller's deadline still cuts it short, as it would a real slow answer.
//!
//! Health and metrics routes are never touched: probes and scrapes must
//! see the process as it is. Every injected fault is counted in
//! `lectern_chaos_faults_total{kind="error"|"delay"}`, and the service
//! logs a warning when it starts with chaos on.
//!
//! [`crate::server::Service::chaos`] switches it on; `lectern serve` reads
//! the configuration with [`ChaosConfig::from_env`].

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::config::{self, ConfigError, Lookup};
use crate::metrics::Metrics;
use crate::problem::ApiError;

/// What to inject, and how often.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChaosConfig {
    /// `CHAOS_ENABLED`: nothing is injected unless true.
    pub enabled: bool,
    /// `CHAOS_ERROR_RATE`: the share of requests answered 500 (0 to 1).
    pub error_rate: f64,
    /// `CHAOS_DELAY_RATE`: the share of requests delayed (0 to 1).
    pub delay_rate: f64,
    /// `CHAOS_DELAY_MS`: how long a delayed request waits.
    pub delay: Duration,
}

impl Default for ChaosConfig {
    /// Off; when switched on, the source design's rates: 10 % errors,
    /// 10 % delayed by 5 s.
    fn default() -> Self {
        Self {
            enabled: false,
            error_rate: 0.1,
            delay_rate: 0.1,
            delay: Duration::from_secs(5),
        }
    }
}

impl ChaosConfig {
    /// Nothing injected.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Reads `CHAOS_ENABLED`, `CHAOS_ERROR_RATE`, `CHAOS_DELAY_RATE` and
    /// `CHAOS_DELAY_MS` from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&config::from_env)
    }

    /// The same variables from any source.
    pub fn from_vars(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let default = Self::default();
        let delay_ms = default.delay.as_millis() as u64;

        Ok(Self {
            enabled: config::var_or(lookup, "CHAOS_ENABLED", false)?,
            error_rate: config::rate_or(lookup, "CHAOS_ERROR_RATE", default.error_rate)?,
            delay_rate: config::rate_or(lookup, "CHAOS_DELAY_RATE", default.delay_rate)?,
            delay: Duration::from_millis(config::var_or(lookup, "CHAOS_DELAY_MS", delay_ms)?),
        })
    }
}

/// Labels of `lectern_chaos_faults_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    /// `error` or `delay`.
    kind: &'static str,
}

/// The fault injector of one service: its settings and its counter.
#[derive(Debug, Clone)]
pub struct Chaos {
    config: ChaosConfig,
    faults: Family<FaultLabels, Counter>,
}

impl Chaos {
    /// The injector for `service`, its counter registered in `metrics`, or
    /// `None` when chaos is off. Says so in the log at warn.
    pub fn start(service: &str, config: &ChaosConfig, metrics: &Metrics) -> Option<Self> {
        if !config.enabled {
            return None;
        }
        let faults = Family::<FaultLabels, Counter>::default();
        metrics.register(
            "lectern_chaos_faults",
            "Faults injected on purpose by chaos testing, by kind",
            faults.clone(),
        );
        tracing::warn!(
            event.action = "chaos-enabled",
            chaos.error_rate = config.error_rate,
            chaos.delay_rate = config.delay_rate,
            chaos.delay_ms = config.delay.as_millis() as u64,
            "Chaos is on: {service} fails or delays some requests on purpose"
        );

        Some(Self {
            config: *config,
            faults,
        })
    }

    fn count(&self, kind: &'static str) {
        self.faults.get_or_create(&FaultLabels { kind }).inc();
    }
}

/// Middleware: maybe waits, maybe answers 500, else passes the request on.
pub async fn inject(State(chaos): State<Chaos>, request: Request, next: Next) -> Response {
    if spared(request.uri().path()) {
        return next.run(request).await;
    }
    let delay = draw(chaos.config.delay_rate);
    let fail = draw(chaos.config.error_rate);

    if delay {
        chaos.count("delay");
        tokio::time::sleep(chaos.config.delay).await;
    }
    if fail {
        chaos.count("error");
        tracing::debug!(event.action = "chaos-error", "Injected a 500");
        return injected_error().into_response();
    }
    next.run(request).await
}

/// Health and metrics routes are never touched.
fn spared(path: &str) -> bool {
    path == "/metrics" || path == "/health" || path.starts_with("/health/")
}

/// True with probability `rate`; never for a rate of 0 or below (or NaN),
/// always for 1 or above.
fn draw(rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    rate > 0.0 && rand::random::<f64>() < rate
}

fn injected_error() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "chaos-fault",
        "a fault injected on purpose by chaos testing (CHAOS_ENABLED)",
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<ChaosConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ChaosConfig::from_vars(&|name| vars.get(name).cloned())
    }

    #[test]
    fn off_by_default_with_the_source_designs_rates() {
        let config = read(&[]).unwrap();

        assert!(!config.enabled);
        assert_eq!((config.error_rate, config.delay_rate), (0.1, 0.1));
        assert_eq!(config.delay, Duration::from_secs(5));
    }

    #[test]
    fn variables_are_read_and_bad_ones_named() {
        let config = read(&[
            ("CHAOS_ENABLED", "true"),
            ("CHAOS_ERROR_RATE", "0.25"),
            ("CHAOS_DELAY_RATE", "0"),
            ("CHAOS_DELAY_MS", "750"),
        ])
        .unwrap();
        assert!(config.enabled);
        assert_eq!((config.error_rate, config.delay_rate), (0.25, 0.0));
        assert_eq!(config.delay, Duration::from_millis(750));

        for (name, value) in [
            ("CHAOS_ENABLED", "yes"),
            ("CHAOS_ERROR_RATE", "1.5"),
            ("CHAOS_DELAY_RATE", "-0.1"),
            ("CHAOS_DELAY_MS", "soon"),
        ] {
            let error = read(&[(name, value)]).unwrap_err();
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn draws_respect_the_edges() {
        assert!((0..1000).all(|_| draw(1.0)));
        assert!((0..1000).all(|_| !draw(0.0)));
        assert!(!draw(f64::NAN));
    }

    #[test]
    fn health_and_metrics_are_spared() {
        for path in ["/health", "/health/ready", "/health/live", "/metrics"] {
            assert!(spared(path), "{path}");
        }
        for path in ["/api/books", "/healthy", "/internal/copies/x", "/metrics2"] {
            assert!(!spared(path), "{path}");
        }
    }
}
