//! Lectern's gateway: the reverse proxy in front of the services.
//!
//! It routes public paths to upstreams (`/api/books` and `/api/copies` to
//! book-service, `/api/auth` and `/api/members` to user-service,
//! `/api/loans` to borrowing-service), refuses `/internal/...` with 404
//! without forwarding it, and balances each upstream's servers by least
//! connections with nginx's meanings: `weight`, `max_fails` within
//! `fail_timeout`, `backup` servers, and `next_upstream` retries bounded by
//! `next_upstream_tries` and `next_upstream_timeout`. On top of nginx it
//! checks servers actively (`health_check`), ejects servers that fail in a
//! row (`outlier_detection`), fails over between regions
//! (`region_failover`), retries POSTs that carry an `Idempotency-Key`,
//! and reloads its configuration without dropping a request. It serves
//! its own `/health`, `/health/live`, `/health/ready`, `/metrics` and
//! `/admin/upstreams`.
//!
//! It keeps nothing on disk and knows nothing of books or loans.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use lectern_gateway::{serve, GatewayConfig};
//!
//! let config = GatewayConfig::load("deploy/gateway.toml")?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let stop = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! serve(config, listener, stop).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Limitations: no TLS to clients or upstreams, no WebSocket or other
//! upgrades, HTTP/1.1 to upstreams; the crate's README lists the others.

mod active;
mod admin;
mod body;
mod client;
mod config;
mod gateway;
mod headers;
mod health;
mod metrics;
mod outlier;
mod problem;
mod proxy;
mod region;
mod reload;
mod retry;
mod route;
mod server;
mod upstream;

use std::future::Future;
use std::sync::Arc;

pub use config::{
    ConfigError, GatewayConfig, HealthCheckConfig, LoadError, NextUpstream,
    OutlierConfig, RegionFailoverConfig, RouteConfig, ServerConfig,
    UpstreamConfig,
};
#[cfg(unix)]
pub use reload::reload_on_sighup;
pub use reload::ReloadHandle;

/// The gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration describes an impossible gateway.
    #[error("invalid gateway configuration")]
    Config(#[from] ConfigError),
    /// The worker threads could not start.
    #[error("gateway workers could not start")]
    Workers(#[source] std::io::Error),
}

/// Serves the gateway on `listener` until `shutdown` completes, then stops
/// accepting, lets requests in flight finish (up to the configuration's
/// `shutdown_timeout`) and returns.
///
/// # Errors
/// [`GatewayError::Config`] when `config` is invalid; nothing is served.
pub async fn serve(
    config: GatewayConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    GatewayServer::new(&config)?.serve(listener, shutdown).await
}

/// A gateway ready to serve, whose configuration can be reloaded while
/// it serves (what [`serve`] runs without a handle).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use lectern_gateway::{reload_on_sighup, GatewayConfig, GatewayServer};
///
/// let path = "deploy/gateway.toml";
/// let server = GatewayServer::new(&GatewayConfig::load(path)?)?;
/// let _hangups = reload_on_sighup(server.reload_handle(), path)?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// server.serve(listener, std::future::pending()).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct GatewayServer {
    shared: Arc<reload::Shared>,
}

impl GatewayServer {
    /// Checks `config` and builds the gateway; nothing runs yet.
    ///
    /// # Errors
    /// [`GatewayError::Config`] when `config` is invalid.
    pub fn new(config: &GatewayConfig) -> Result<Self, GatewayError> {
        let shared = reload::Shared::new(config)?;

        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// A handle that puts a new configuration in force, before or while
    /// the gateway serves.
    #[must_use]
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Serves on `listener` until `shutdown` completes; see [`serve`].
    /// Active health checks and region looks run while it serves. With
    /// `worker_threads` other than 0 the serving happens on threads of
    /// its own; this future only waits for `shutdown` and the drain.
    ///
    /// # Errors
    /// [`GatewayError::Workers`] when worker threads cannot start.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        if let Ok(address) = listener.local_addr() {
            tracing::info!(
                event.action = "gateway-started",
                %address,
                "Gateway listening"
            );
        }

        let shared = Arc::clone(&self.shared);
        let workers = shared.current().workers();
        let served = if workers == 0 {
            shared.start(tokio::runtime::Handle::current());
            server::run(Arc::clone(&shared), listener, shutdown).await;
            Ok(())
        } else {
            server::run_workers(
                Arc::clone(&shared),
                listener,
                shutdown,
                workers,
            )
            .await
            .map_err(GatewayError::Workers)
        };
        shared.stop();

        served
    }
}
