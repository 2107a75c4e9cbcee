//! The gateway's configuration: routes, upstreams and their servers.
//!
//! Every key keeps the meaning of the nginx directive it is named after
//! (`weight`, `max_fails`, `fail_timeout`, `backup`, `next_upstream`,
//! `next_upstream_tries`, `next_upstream_timeout`, ...), so an operator who
//! knows nginx can read a Lectern gateway file. `crates/gateway/README.md`
//! lists every key with its default; `deploy/gateway.toml` is an example.
//!
//! This module only describes and checks the configuration; turning it
//! into live upstreams happens in [`crate::upstream`].

mod units;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

pub use validate::ConfigError;

/// The whole gateway: limits on clients, routes and upstreams.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Largest request body accepted, in bytes (nginx
    /// `client_max_body_size`); larger requests get 413. Bodies are read
    /// whole before they are sent, so a failed connection can be retried.
    #[serde(default = "default_body_size", with = "units::size")]
    pub client_max_body_size: u64,

    /// Request bodies up to this size are read whole before they are sent,
    /// so a failed attempt can send the same bytes to another server.
    /// A larger body is streamed to one server as it arrives and never
    /// sent to a second one once its first byte left (like nginx
    /// `proxy_request_buffering off` above this size).
    #[serde(default = "default_buffer_size", with = "units::size")]
    pub client_body_buffer_size: u64,

    /// How long a client may take to send the request head (nginx
    /// `client_header_timeout`).
    #[serde(default = "default_client_timeout", with = "units::duration")]
    pub client_header_timeout: Duration,

    /// How long a client may take to send the whole request body (nginx
    /// `client_body_timeout`, here for the whole body); then 408.
    #[serde(default = "default_client_timeout", with = "units::duration")]
    pub client_body_timeout: Duration,

    /// How long a graceful stop waits for requests in flight.
    #[serde(default = "default_shutdown", with = "units::duration")]
    pub shutdown_timeout: Duration,

    /// Serve `/admin/...` only to clients on a loopback address.
    #[serde(default = "yes")]
    pub admin_loopback_only: bool,

    /// Threads that serve clients, each running its own single-threaded
    /// runtime and accepting from the same listener, as nginx's
    /// `worker_processes`; `None` (the default) means one per CPU core,
    /// `Some(0)` serves on the Tokio runtime that calls `serve` instead
    /// (what tests on a paused clock need). Read at start only.
    #[serde(default)]
    pub worker_threads: Option<usize>,

    /// Path prefixes and the upstream that serves each.
    pub routes: Vec<RouteConfig>,

    /// Upstreams by name (`book-service`, ...).
    pub upstreams: BTreeMap<String, UpstreamConfig>,
}

/// One public route: a path prefix and the upstream behind it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Matches the path itself and every path below it (`/api/books`
    /// matches `/api/books` and `/api/books/42`, not `/api/bookshelf`).
    /// It is also the `route` label of the HTTP metrics.
    pub prefix: String,

    /// Name of an entry in [`GatewayConfig::upstreams`].
    pub upstream: String,
}

/// A group of servers that answer the same requests (nginx `upstream`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The servers; at least one must not be a backup.
    pub servers: Vec<ServerConfig>,

    /// Longest wait for a TCP connection (nginx `proxy_connect_timeout`).
    #[serde(default = "default_connect", with = "units::duration")]
    pub connect_timeout: Duration,

    /// Longest wait for the response head once the connection is made,
    /// and for each later chunk of the body (nginx `proxy_read_timeout`).
    #[serde(default = "default_read", with = "units::duration")]
    pub read_timeout: Duration,

    /// When a request moves on to the next server (nginx
    /// `proxy_next_upstream`).
    #[serde(default = "default_next_upstream")]
    pub next_upstream: Vec<NextUpstream>,

    /// Most servers one request tries; 0 means no limit but the number of
    /// servers (nginx `proxy_next_upstream_tries`).
    #[serde(default)]
    pub next_upstream_tries: u32,

    /// Time after which no further server is tried; 0 means no limit
    /// (nginx `proxy_next_upstream_timeout`).
    #[serde(default, with = "units::duration")]
    pub next_upstream_timeout: Duration,

    /// Idle keep-alive connections kept per server (nginx `keepalive`).
    #[serde(default = "default_keepalive")]
    pub keepalive: usize,

    /// How long an idle keep-alive connection is kept (nginx
    /// `keepalive_timeout` in an upstream).
    #[serde(default = "default_keepalive_timeout", with = "units::duration")]
    pub keepalive_timeout: Duration,

    /// Active health checks; none when absent.
    #[serde(default)]
    pub health_check: Option<HealthCheckConfig>,

    /// Ejection of servers that answer 5xx in a row; none when absent.
    #[serde(default)]
    pub outlier_detection: Option<OutlierConfig>,

    /// Active-passive failover between the servers' regions; none when
    /// absent.
    #[serde(default)]
    pub region_failover: Option<RegionFailoverConfig>,
}

/// Active health checks of every server of an upstream: a `GET` of
/// `path` every `interval`, passed by a 2xx answer within `timeout`
/// (NGINX Plus `health_check` with `fails` and `passes`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// The path asked.
    #[serde(default = "default_check_path")]
    pub path: String,

    /// Time between two checks of one server.
    #[serde(default = "default_check_interval", with = "units::duration")]
    pub interval: Duration,

    /// Longest wait for a check's answer head, connection included.
    #[serde(default = "default_check_timeout", with = "units::duration")]
    pub timeout: Duration,

    /// Failed checks in a row that make a healthy server unhealthy.
    #[serde(default = "one")]
    pub fails: u32,

    /// Passed checks in a row that make an unhealthy server healthy.
    #[serde(default = "one")]
    pub passes: u32,
}

/// Outlier ejection (Envoy's `consecutive_5xx`): a server that fails
/// `consecutive_5xx` times in a row is taken out for
/// `base_ejection_time` times the number of its recent ejections.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierConfig {
    /// 5xx answers or failed attempts in a row that eject a server.
    #[serde(default = "default_consecutive_5xx")]
    pub consecutive_5xx: u32,

    /// Ejection time of a first ejection; the n-th ejection in a row
    /// lasts n times as long. One ejection is forgotten for each
    /// `base_ejection_time` a server spends back in service.
    #[serde(default = "default_base_ejection", with = "units::duration")]
    pub base_ejection_time: Duration,

    /// Longest ejection.
    #[serde(default = "default_max_ejection", with = "units::duration")]
    pub max_ejection_time: Duration,

    /// Most servers ejected at once, in percent of the upstream's
    /// servers; one server may always be ejected.
    #[serde(default = "default_max_ejection_percent")]
    pub max_ejection_percent: u32,
}

/// Active-passive failover: servers of the `active` region take the
/// traffic; the other regions' servers take it only after the active
/// region had no healthy server at `threshold` checks in a row, made
/// every `interval`, and until a check finds one there again.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionFailoverConfig {
    /// The region that takes traffic while it can.
    pub active: String,

    /// Time between two checks of the active region.
    #[serde(default = "default_region_interval", with = "units::duration")]
    pub interval: Duration,

    /// Checks in a row without a healthy server in the active region
    /// before the passive region takes the traffic.
    #[serde(default = "default_region_threshold")]
    pub threshold: u32,
}

/// One server of an upstream (nginx `server` in an `upstream` block).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `host:port`; a name is resolved at each new connection.
    pub address: String,

    /// Share of the load: least-connections compares in-flight requests
    /// divided by weight.
    #[serde(default = "one")]
    pub weight: u32,

    /// Failures within `fail_timeout` that make the server unavailable
    /// for `fail_timeout`; 0 never marks it unavailable.
    #[serde(default = "one")]
    pub max_fails: u32,

    /// The window that counts failures, and how long the server then
    /// stays unavailable.
    #[serde(default = "default_fail_timeout", with = "units::duration")]
    pub fail_timeout: Duration,

    /// Used only while every primary server is unavailable.
    #[serde(default)]
    pub backup: bool,

    /// The region the server is in, for `region_failover`.
    #[serde(default)]
    pub region: Option<String>,
}

/// A condition of nginx `proxy_next_upstream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NextUpstream {
    /// The connection failed, or the request or response head broke.
    Error,
    /// The connect or read timeout ran out.
    Timeout,
    /// The response head was not valid HTTP.
    InvalidHeader,
    /// The server answered 500.
    #[serde(rename = "http_500")]
    Http500,
    /// The server answered 502.
    #[serde(rename = "http_502")]
    Http502,
    /// The server answered 503.
    #[serde(rename = "http_503")]
    Http503,
    /// The server answered 504.
    #[serde(rename = "http_504")]
    Http504,
    /// The server answered 403.
    #[serde(rename = "http_403")]
    Http403,
    /// The server answered 404.
    #[serde(rename = "http_404")]
    Http404,
    /// The server answered 429.
    #[serde(rename = "http_429")]
    Http429,
    /// Also retry POST, LOCK and PATCH once they may have reached a
    /// server. Without it they are retried only when the connection
    /// failed (nothing was sent) or they carry an `Idempotency-Key`.
    NonIdempotent,
    /// Never try another server; must stand alone.
    Off,
}

/// The configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read gateway configuration {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`GatewayConfig`].
    #[error("gateway configuration is not valid TOML")]
    Parse(#[from] toml::de::Error),
    /// The file parses but describes an impossible gateway.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

impl GatewayConfig {
    /// Reads, parses and checks a TOML file.
    ///
    /// # Errors
    /// [`LoadError`] when the file is unreadable, not TOML or invalid.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| {
            LoadError::Read {
                path: path.display().to_string(),
                source,
            }
        })?;

        Self::from_toml(&text)
    }

    /// Parses and checks TOML text.
    ///
    /// # Errors
    /// [`LoadError::Parse`] or [`LoadError::Invalid`].
    pub fn from_toml(text: &str) -> Result<Self, LoadError> {
        let config: Self = toml::from_str(text)?;
        config.validate()?;

        Ok(config)
    }

    /// The system on one machine, as the local supervisor runs it: the
    /// public routes of the design, `book` as equal replicas, one server
    /// each for user-service and borrowing-service.
    #[must_use]
    pub fn local(
        book: Vec<SocketAddr>,
        user: SocketAddr,
        borrowing: SocketAddr,
    ) -> GatewayConfig {
        let upstreams = BTreeMap::from([
            ("book-service".to_owned(), UpstreamConfig::with(book)),
            ("user-service".to_owned(), UpstreamConfig::with(vec![user])),
            (
                "borrowing-service".to_owned(),
                UpstreamConfig::with(vec![borrowing]),
            ),
        ]);

        let mut config = GatewayConfig {
            client_max_body_size: default_body_size(),
            client_body_buffer_size: default_buffer_size(),
            client_header_timeout: default_client_timeout(),
            client_body_timeout: default_client_timeout(),
            shutdown_timeout: default_shutdown(),
            admin_loopback_only: true,
            worker_threads: None,
            routes: default_routes(),
            upstreams,
        };
        // Every Lectern service answers `/health/ready` (its own storage),
        // so the gateway stops sending to a replica that cannot serve.
        for upstream in config.upstreams.values_mut() {
            upstream.health_check = Some(HealthCheckConfig::default());
        }

        config
    }

    /// How many worker threads `worker_threads` asks for: 0 means the
    /// caller's runtime.
    #[must_use]
    pub fn workers(&self) -> usize {
        self.worker_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, usize::from)
        })
    }

    /// Checks what serde cannot: names resolve, prefixes are sane, every
    /// upstream has a primary server.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::config(self)
    }
}

impl UpstreamConfig {
    /// An upstream of equal servers with every other key at its default.
    #[must_use]
    pub fn with(servers: Vec<SocketAddr>) -> UpstreamConfig {
        UpstreamConfig {
            servers: servers.into_iter().map(ServerConfig::at).collect(),
            connect_timeout: default_connect(),
            read_timeout: default_read(),
            next_upstream: default_next_upstream(),
            next_upstream_tries: 0,
            next_upstream_timeout: Duration::ZERO,
            keepalive: default_keepalive(),
            keepalive_timeout: default_keepalive_timeout(),
            health_check: None,
            outlier_detection: None,
            region_failover: None,
        }
    }
}

impl Default for HealthCheckConfig {
    /// `GET /health/ready` every 5 s, 2 s to answer, one failure marks
    /// a server unhealthy and one pass restores it.
    fn default() -> Self {
        HealthCheckConfig {
            path: default_check_path(),
            interval: default_check_interval(),
            timeout: default_check_timeout(),
            fails: 1,
            passes: 1,
        }
    }
}

impl Default for OutlierConfig {
    /// Envoy's defaults: 5 in a row, 30 s, at most 300 s, 10 %.
    fn default() -> Self {
        OutlierConfig {
            consecutive_5xx: default_consecutive_5xx(),
            base_ejection_time: default_base_ejection(),
            max_ejection_time: default_max_ejection(),
            max_ejection_percent: default_max_ejection_percent(),
        }
    }
}

impl RegionFailoverConfig {
    /// Failover from `active`, checked every 30 s, after 3 checks in a
    /// row found no healthy server there (the source design's values).
    #[must_use]
    pub fn new(active: &str) -> Self {
        RegionFailoverConfig {
            active: active.to_owned(),
            interval: default_region_interval(),
            threshold: default_region_threshold(),
        }
    }
}

impl ServerConfig {
    /// A primary server with weight 1 and the default failure settings.
    #[must_use]
    pub fn at(address: SocketAddr) -> ServerConfig {
        ServerConfig {
            address: address.to_string(),
            weight: 1,
            max_fails: 1,
            fail_timeout: default_fail_timeout(),
            backup: false,
            region: None,
        }
    }
}

fn default_routes() -> Vec<RouteConfig> {
    [
        ("/api/books", "book-service"),
        ("/api/copies", "book-service"),
        ("/api/auth", "user-service"),
        ("/api/members", "user-service"),
        ("/api/loans", "borrowing-service"),
    ]
    .into_iter()
    .map(|(prefix, upstream)| RouteConfig {
        prefix: prefix.to_owned(),
        upstream: upstream.to_owned(),
    })
    .collect()
}

fn default_body_size() -> u64 {
    16 << 20
}

fn default_buffer_size() -> u64 {
    1 << 20
}

fn default_check_path() -> String {
    "/health/ready".to_owned()
}

fn default_check_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_check_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_consecutive_5xx() -> u32 {
    5
}

fn default_base_ejection() -> Duration {
    Duration::from_secs(30)
}

fn default_max_ejection() -> Duration {
    Duration::from_secs(300)
}

fn default_max_ejection_percent() -> u32 {
    10
}

fn default_region_interval() -> Duration {
    Duration::from_secs(30)
}

fn default_region_threshold() -> u32 {
    3
}

fn default_client_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_shutdown() -> Duration {
    Duration::from_secs(30)
}

fn default_connect() -> Duration {
    Duration::from_secs(3)
}

fn default_read() -> Duration {
    Duration::from_secs(30)
}

// Not `http_503`: services answer 503 when a neighbour they need is down,
// which another replica cannot fix, and nginx would count it as a failure
// of the server and take every replica out of rotation.
fn default_next_upstream() -> Vec<NextUpstream> {
    vec![NextUpstream::Error, NextUpstream::Timeout]
}

fn default_keepalive() -> usize {
    32
}

fn default_keepalive_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_fail_timeout() -> Duration {
    Duration::from_secs(10)
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}
