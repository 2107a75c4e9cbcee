//! One gateway configuration made live: its routes, upstreams, metrics
//! and background checks, and the handling of one request from start to
//! answer. A reload makes a new one; requests that began on the old one
//! finish on it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use parking_lot::Mutex;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::admin;
use crate::body::GatewayBody;
use crate::config::{ConfigError, GatewayConfig};
use crate::headers::{self, X_REQUEST_ID};
use crate::health::Clock;
use crate::metrics::{Families, Metrics};
use crate::problem::{self, Refusal};
use crate::proxy::{self, BodyLimits, Outgoing};
use crate::retry::is_replayable;
use crate::route::{has_dot_segment, RouteId, Router, Target};
use crate::upstream::Upstream;
use crate::{active, region};

/// The client at the other end of a connection.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    /// Its address as an `X-Forwarded-For` value, made once.
    pub(crate) forwarded: HeaderValue,
}

impl Peer {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        let text = addr.ip().to_string();
        let forwarded = HeaderValue::try_from(text)
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));

        Self { addr, forwarded }
    }

    fn ip(&self) -> IpAddr {
        self.addr.ip()
    }
}

/// Everything a request needs, shared by every connection.
#[derive(Debug)]
pub(crate) struct Gateway {
    router: Router,
    upstreams: Box<[Arc<Upstream>]>,
    metrics: Metrics,
    body: BodyLimits,
    admin_loopback_only: bool,
    header_timeout: Duration,
    shutdown_timeout: Duration,
    workers: usize,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Gateway {
    /// Checks the configuration and builds the live gateway, keeping the
    /// live state of the servers and regions `previous` shares with it.
    /// `workers` is the number of worker threads serving (0: the
    /// caller's runtime), fixed at start whatever a reloaded file says.
    pub(crate) fn new(
        config: &GatewayConfig,
        families: &Arc<Families>,
        clock: Clock,
        workers: usize,
        previous: Option<&Gateway>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let names: Vec<&str> =
            config.upstreams.keys().map(String::as_str).collect();
        let index =
            |name: &str| names.iter().position(|n| *n == name).unwrap_or(0);
        let router = Router::new(&config.routes, index);
        let metrics = Metrics::new(Arc::clone(families), router.templates());

        let upstreams = config
            .upstreams
            .iter()
            .map(|(name, up)| {
                let old = previous.and_then(|p| p.upstream(name));
                Upstream::new(name, up, &metrics, clock, workers, old)
                    .map(Arc::new)
            })
            .collect::<Result<Box<[_]>, _>>()?;

        Ok(Self {
            router,
            upstreams,
            metrics,
            body: BodyLimits {
                max: config.client_max_body_size,
                buffer: config.client_body_buffer_size,
                timeout: config.client_body_timeout,
            },
            admin_loopback_only: config.admin_loopback_only,
            header_timeout: config.client_header_timeout,
            shutdown_timeout: config.shutdown_timeout,
            workers,
            tasks: Mutex::new(Vec::new()),
        })
    }

    fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams
            .iter()
            .find(|u| u.name() == name)
            .map(|u| &**u)
    }

    /// How long a client may take to send a request head.
    pub(crate) fn header_timeout(&self) -> Duration {
        self.header_timeout
    }

    /// Worker threads to serve with; 0: the caller's runtime.
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// How long a graceful stop waits for requests in flight.
    pub(crate) fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    /// Starts the active health checks and region looks on `runtime`.
    pub(crate) fn start_tasks(&self, runtime: &tokio::runtime::Handle) {
        let mut tasks = self.tasks.lock();
        for upstream in self.upstreams.iter() {
            if upstream.health_check().is_some() {
                for index in 0..upstream.len() {
                    let check = active::run(Arc::clone(upstream), index);
                    tasks.push(runtime.spawn(check).abort_handle());
                }
            }
            if upstream.region_failover().is_some() {
                let look = region::run(Arc::clone(upstream));
                tasks.push(runtime.spawn(look).abort_handle());
            }
        }
    }

    /// Stops them.
    pub(crate) fn stop_tasks(&self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }

    /// Drops the metric series of servers and upstreams that `next`
    /// no longer has.
    pub(crate) fn forget_removed(&self, next: &Gateway) {
        let families = self.metrics.families();
        for old in self.upstreams.iter() {
            let Some(new) = next.upstream(old.name()) else {
                families.forget_upstream(old.name());
                for address in old.addresses() {
                    families.forget_server(old.name(), address);
                }
                continue;
            };
            for address in old.addresses() {
                if !new.addresses().any(|a| a == address) {
                    families.forget_server(old.name(), address);
                }
            }
        }
    }

    /// Every upstream, in name order.
    pub(crate) fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// The metrics registry.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Answers one request from the client at `peer`.
    pub(crate) async fn handle(
        &self,
        request: Request<Incoming>,
        peer: &Peer,
    ) -> Response<GatewayBody> {
        let started = Instant::now();
        let method = request.method().clone();
        let (route, target) = self.router.resolve(request.uri().path());

        let local = !matches!(
            target,
            Target::Proxy(_) | Target::Internal | Target::NotFound
        );
        let readable = method == Method::GET || method == Method::HEAD;

        let response = match target {
            _ if local && !readable => {
                Refusal::MethodNotAllowed.into_response()
            }
            Target::Live => admin::live(),
            Target::Ready => admin::ready(self),
            Target::Health => admin::health(self),
            Target::Metrics => admin::metrics(self),
            Target::Admin if self.admin_allowed(peer) => admin::upstreams(self),
            Target::Admin => Refusal::AdminForbidden.into_response(),
            Target::Internal | Target::NotFound => {
                Refusal::NotFound.into_response()
            }
            Target::Proxy(upstream) => {
                self.proxy(upstream, route, request, peer).await
            }
        };

        let elapsed = started.elapsed();
        self.metrics
            .observe(route, &method, response.status(), elapsed);

        response
    }

    fn admin_allowed(&self, peer: &Peer) -> bool {
        !self.admin_loopback_only || peer.ip().is_loopback()
    }

    async fn proxy(
        &self,
        upstream: usize,
        route: RouteId,
        request: Request<Incoming>,
        peer: &Peer,
    ) -> Response<GatewayBody> {
        if has_dot_segment(request.uri().path()) {
            return Refusal::DotSegment.into_response();
        }

        let (mut parts, body) = request.into_parts();
        let body = match proxy::read_body(body, self.body).await {
            Ok(body) => body,
            Err(refusal) => return refusal.into_response(),
        };

        let request_id =
            headers::prepare_request(&mut parts.headers, &peer.forwarded);
        let replayable = is_replayable(
            &parts.method,
            headers::has_idempotency_key(&parts.headers),
        );
        let path = parts.uri.into_parts().path_and_query;
        let out = Outgoing {
            method: parts.method,
            path: path
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
            headers: parts.headers,
            body,
            replayable,
        };

        let upstream = &self.upstreams[upstream];
        let mut response = match proxy::forward(upstream, out).await {
            Ok(response) => response,
            Err(refusal) => {
                let prefix = self.router.prefix(route).unwrap_or_default();
                tracing::debug!(
                    http.request.id = ?request_id,
                    route = %prefix,
                    ?refusal,
                    "Proxied request refused"
                );
                refusal.into_response()
            }
        };

        let headers = response.headers_mut();
        if !headers.contains_key(&X_REQUEST_ID) {
            headers.insert(X_REQUEST_ID.clone(), request_id);
        }

        response
    }
}

/// A 200 answer of the given JSON value, or 503 when `ok` is false.
pub(crate) fn up_or_down(
    ok: bool,
    value: &impl serde::Serialize,
) -> Response<GatewayBody> {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };

    problem::json(status, value)
}
