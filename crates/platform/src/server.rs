//! Serving a service: standard layers, standard routes, graceful stop.
//!
//! [`Service`] wraps a service's API router with what every Lectern
//! process shares: a request span carrying `trace.id`, one log line per
//! request, metrics by matched route, a body limit, an inbound time limit
//! (shortened by the caller's deadline), problem documents for unknown
//! routes, the health and metrics routes, and fault injection when chaos
//! is switched on ([`crate::chaos`]).

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::chaos::{Chaos, ChaosConfig};
use crate::health::{self, Health};
use crate::metrics::{self, Metrics};
use crate::problem::ApiError;

/// The time left to answer the current request, set by [`Service`] in the
/// request's extensions for handlers that call neighbours. It is the
/// resilience crate's deadline (on tokio's clock), so a handler passes it
/// to [`crate::client::ServiceClient`] as it is.
pub use lectern_resilience::Deadline;
/// The header a caller's remaining time budget travels in, in milliseconds.
pub use lectern_resilience::DEADLINE_HEADER;

/// The header that names a request across hops.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    /// The id of the request the current task is answering.
    static CURRENT_REQUEST_ID: String;
}

/// The id of the request this task is answering, so that calls to
/// neighbours carry it on and every service logs one `trace.id`.
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
}

/// The id of the current request, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A service's router with the standard layers, ready to serve.
#[derive(Debug)]
pub struct Service {
    name: &'static str,
    api: Router,
    health: Health,
    metrics: Metrics,
    body_limit: usize,
    request_timeout: Duration,
    chaos: ChaosConfig,
}

impl Service {
    /// `api` holds the service's own routes, with their state applied.
    pub fn new(name: &'static str, api: Router) -> Self {
        Self {
            name,
            api,
            health: Health::new(),
            metrics: Metrics::new(),
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            chaos: ChaosConfig::disabled(),
        }
    }

    /// The checks behind `/health` and `/health/ready`.
    #[must_use]
    pub fn health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// The registry behind `/metrics`.
    #[must_use]
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The largest request body accepted (413 beyond it).
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The longest any request may take (503 beyond it).
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Fault injection on the service's own routes (never on health or
    /// metrics); nothing is injected unless `chaos.enabled`.
    #[must_use]
    pub fn chaos(mut self, chaos: ChaosConfig) -> Self {
        self.chaos = chaos;
        self
    }

    /// The full router with every layer.
    pub fn into_router(self) -> Router {
        let ops = Router::new()
            .route("/health", get(health::full))
            .route("/health/ready", get(health::ready))
            .with_state(self.health)
            .route("/health/live", get(health::live))
            .route("/metrics", get(metrics::handler))
            .with_state(self.metrics.clone());
        let timeout = self.request_timeout;
        let mut app = self
            .api
            .merge(ops)
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(middleware::from_fn(problem_documents))
            .layer(DefaultBodyLimit::max(self.body_limit));
        // Inside the time limit and the metrics: an injected delay is cut
        // by the caller's deadline and an injected 500 is counted, as real
        // ones would be.
        if let Some(chaos) = Chaos::start(self.name, &self.chaos, &self.metrics) {
            app = app.layer(middleware::from_fn_with_state(chaos, crate::chaos::inject));
        }

        app.layer(middleware::from_fn(move |req, next| {
            time_limit(timeout, req, next)
        }))
        .layer(middleware::from_fn_with_state(self.metrics, metrics::track))
        .layer(middleware::from_fn(request_span))
    }

    /// Serves on `listener` until `shutdown` completes, then lets requests
    /// in flight finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let name = self.name;
        let addr = listener.local_addr()?;
        tracing::info!(
            event.action = "service-started",
            server.address = %addr,
            "{name} listening on {addr}"
        );
        let app = self
            .into_router()
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
        tracing::info!(event.action = "service-stopped", "{name} stopped");
        Ok(())
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => drop(interrupt.await),
        }
    }
    #[cfg(not(unix))]
    drop(interrupt.await);
}

/// The longest rejection text carried into a problem's detail.
const MAX_DETAIL: usize = 512;

/// Turns an error answer that is not already a problem document (axum's
/// own rejections are plain text: a path segment that is not UTF-8, a
/// query that does not parse) into one, keeping its status and text.
async fn problem_documents(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }

    let body = axum::body::to_bytes(response.into_body(), MAX_DETAIL * 4)
        .await
        .unwrap_or_default();
    let mut detail: String = String::from_utf8_lossy(&body).into_owned();
    if detail.len() > MAX_DETAIL {
        let cut = (0..=MAX_DETAIL).rev().find(|&i| detail.is_char_boundary(i));
        detail.truncate(cut.unwrap_or(0));
    }
    if detail.trim().is_empty() {
        detail = status.canonical_reason().unwrap_or("error").to_owned();
    }
    ApiError::new(status, slug_of(status), detail).into_response()
}

/// The problem `type` slug for a status answered without one.
fn slug_of(status: axum::http::StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad-request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not-found",
        405 => "method-not-allowed",
        408 => "request-timeout",
        413 => "body-too-large",
        415 => "unsupported-media-type",
        422 => "unprocessable",
        500..=599 => "internal",
        _ => "error",
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this route does not take that method",
    )
}

/// Runs the request inside the shorter of the service's limit and the
/// caller's deadline; past it the client gets a 503 problem document.
async fn time_limit(limit: Duration, mut req: Request, next: Next) -> Response {
    let from_caller = req
        .headers()
        .get(DEADLINE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis);
    let budget = from_caller.map_or(limit, |d| d.min(limit));
    req.extensions_mut().insert(Deadline::after(budget));

    match tokio::time::timeout(budget, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable(
            format!("the request took longer than {} ms", budget.as_millis()),
            1,
        )
        .into_response(),
    }
}

/// Opens the request's span and logs one line when it is answered.
async fn request_span(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!(
        "request",
        trace.id = %id,
        http.request.method = %method,
        url.path = %path,
    );
    let start = Instant::now();
    let run = next.run(req).instrument(span.clone());
    let mut response = CURRENT_REQUEST_ID.scope(id.clone(), run).await;
    let status = response.status().as_u16();
    // ECS's event.duration is in nanoseconds.
    let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    span.in_scope(|| {
        if path.starts_with("/health") || path == "/metrics" {
            tracing::debug!(http.response.status_code = status, "Answered");
        } else {
            tracing::info!(
                event.action = "http-request",
                http.response.status_code = status,
                event.duration = nanos,
                "{method} {path} {status}"
            );
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    response
}

/// Binds `addr`, saying which address failed when it does.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}
