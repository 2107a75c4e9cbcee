//! Health routes: `/health/live`, `/health/ready` and `/health`.
//!
//! Liveness checks nothing but that the process answers. Readiness and
//! `/health` run every registered check (with a time limit each) and answer
//! 200 when all are `UP`, else 503, so the gateway and Kubernetes stop
//! routing to a replica whose database is gone.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// How long one check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The named checks `/health` and `/health/ready` run.
#[derive(Clone, Default)]
pub struct Health {
    checks: Vec<(String, CheckFn)>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.checks.iter().map(|(n, _)| n).collect();
        f.debug_struct("Health").field("checks", &names).finish()
    }
}

/// One check's result in `/health`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct CheckReport {
    /// `UP` or `DOWN`.
    pub status: &'static str,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The `/health` document.
#[derive(Debug, Serialize)]
pub struct HealthReport {
    /// `UP` when every check is.
    pub status: &'static str,
    /// When the checks ran, RFC 3339.
    pub timestamp: String,
    /// Each check by name.
    pub checks: BTreeMap<String, CheckReport>,
}

impl Health {
    /// No checks: always up.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a named check.
    #[must_use]
    pub fn with_check<F, Fut>(mut self, name: &str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: CheckFn = Arc::new(move || Box::pin(check()));
        self.checks.push((name.to_owned(), check));
        self
    }

    /// Runs every check concurrently.
    pub async fn report(&self) -> HealthReport {
        let runs = self.checks.iter().map(|(name, check)| async move {
            let outcome = tokio::time::timeout(CHECK_TIMEOUT, check()).await;
            let report = match outcome {
                Ok(Ok(())) => CheckReport {
                    status: "UP",
                    detail: None,
                },
                Ok(Err(why)) => CheckReport {
                    status: "DOWN",
                    detail: Some(why),
                },
                Err(_) => CheckReport {
                    status: "DOWN",
                    detail: Some("check timed out".into()),
                },
            };
            (name.clone(), report)
        });
        let checks: BTreeMap<_, _> = futures::future::join_all(runs).await.into_iter().collect();
        let up = checks.values().all(|c| c.status == "UP");
        HealthReport {
            status: if up { "UP" } else { "DOWN" },
            timestamp: chrono::Utc::now().to_rfc3339(),
            checks,
        }
    }
}

fn status_of(report: &HealthReport) -> StatusCode {
    if report.status == "UP" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// `GET /health`.
pub async fn full(State(health): State<Health>) -> Response {
    let report = health.report().await;
    (status_of(&report), Json(report)).into_response()
}

/// `GET /health/ready`.
pub async fn ready(State(health): State<Health>) -> Response {
    let report = health.report().await;
    let status = status_of(&report);
    (status, Json(serde_json::json!({ "status": report.status }))).into_response()
}

/// `GET /health/live`.
pub async fn live() -> Response {
    Json(serde_json::json!({ "status": "UP" })).into_response()
}
