//! The service's configuration: the common variables plus its own.
//!
//! [`Config::from_env`] reads the environment; tests build one with
//! [`Config::new`] and set the public fields they care about.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lectern_platform::auth::TokenKeys;
use lectern_platform::client::CallPolicy;
use lectern_platform::config::{self, env_or, CommonConfig, ConfigError};

/// The default limit on one call to borrowing-service.
const DEFAULT_CALL_TIMEOUT_MS: u64 = 3000;

/// Everything book-service reads at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `LECTERN_BIND`: the address to listen on.
    pub bind: SocketAddr,
    /// `DATABASE_URL`: `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// `LECTERN_TOKEN_SECRET`, as keys.
    pub keys: Arc<TokenKeys>,
    /// `BORROWING_SERVICE_URL`: where to ask for active loans; `None`
    /// makes availability unknown.
    pub borrowing_url: Option<String>,
    /// `LECTERN_CALL_TIMEOUT_MS`: the limit on one call to a neighbour.
    pub call_timeout: Duration,
    /// `LECTERN_RETRY_*`, `LECTERN_BREAKER_*`, `LECTERN_BULKHEAD_*`: how
    /// calls to borrowing-service are retried, broken and bounded.
    pub calls: CallPolicy,
    /// `LECTERN_SAMPLE_CATALOGUE`: load the bundled sample catalogue
    /// when the catalogue is empty at start.
    pub sample_catalogue: bool,
}

impl Config {
    /// A configuration with defaults, for tests and embedding: listens
    /// on the default port, no borrowing-service, no sample catalogue.
    pub fn new(database_url: impl Into<String>, keys: Arc<TokenKeys>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], crate::DEFAULT_PORT)),
            database_url: database_url.into(),
            keys,
            borrowing_url: None,
            call_timeout: Duration::from_millis(DEFAULT_CALL_TIMEOUT_MS),
            calls: CallPolicy::default(),
            sample_catalogue: false,
        }
    }

    /// Reads the environment; a value that does not parse is an error
    /// naming its variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(crate::DEFAULT_PORT)?;
        let millis =
            env_or("LECTERN_CALL_TIMEOUT_MS", DEFAULT_CALL_TIMEOUT_MS)?;
        if millis == 0 {
            return Err(invalid("LECTERN_CALL_TIMEOUT_MS", "0", "must be > 0"));
        }

        Ok(Self {
            bind: common.bind,
            database_url: common.database_url,
            keys: common.keys,
            borrowing_url: borrowing_url()?,
            call_timeout: Duration::from_millis(millis),
            calls: CallPolicy::from_env()?,
            sample_catalogue: env_or("LECTERN_SAMPLE_CATALOGUE", false)?,
        })
    }
}

/// `BORROWING_SERVICE_URL` when set: http(s) URLs, comma-separated when
/// there are several replicas.
fn borrowing_url() -> Result<Option<String>, ConfigError> {
    let name = "BORROWING_SERVICE_URL";
    let Some(url) = std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };

    config::check_urls(name, &url)?;
    Ok(Some(url))
}

fn invalid(name: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}
