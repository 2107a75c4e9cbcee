//! Configuration from the environment (12-factor).
//!
//! Every variable, its default and its meaning is listed in
//! `docs/configuration.md`. A value that does not parse stops the service
//! with a message naming the variable, rather than falling back silently.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::TokenKeys;

/// A variable that is set but does not parse, or a required one missing.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Set, but not a valid value.
    #[error("{name}={value:?} is not valid: {reason}")]
    Invalid {
        /// The variable.
        name: String,
        /// What it was set to.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// Required and not set.
    #[error("{0} must be set")]
    Missing(String),
}

impl ConfigError {
    /// `name` is set to `value`, which is wrong for `reason`.
    pub fn invalid(name: &str, value: &str, reason: &str) -> Self {
        Self::Invalid {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

/// Reads a variable by name; `None` when unset. The environment is one
/// ([`from_env`]); tests pass a map.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment as a [`Lookup`].
pub fn from_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `name` parsed, or `default` when unset or empty.
pub fn env_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    var_or(&from_env, name, default)
}

/// `name` from `lookup`, parsed, or `default` when unset or blank.
pub fn var_or<T>(lookup: Lookup<'_>, name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match lookup(name) {
        Some(value) if !value.trim().is_empty() => {
            value
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::Invalid {
                    name: name.to_owned(),
                    reason: e.to_string(),
                    value,
                })
        }
        _ => Ok(default),
    }
}

/// Checks a list of base URLs (one, or several replicas comma-separated,
/// as [`crate::client::ServiceClient`] takes them): each must start with
/// `http://` or `https://`.
pub fn check_urls(name: &str, value: &str) -> Result<(), ConfigError> {
    let items: Vec<&str> = value.split(',').map(str::trim).collect();
    let web = |url: &&str| url.starts_with("http://") || url.starts_with("https://");

    if items.iter().all(web) {
        Ok(())
    } else {
        let reason = "each comma-separated URL must start with http:// or https://";
        Err(ConfigError::invalid(name, value, reason))
    }
}

/// A rate from `lookup`: a number from 0 to 1, or `default` when unset.
pub fn rate_or(lookup: Lookup<'_>, name: &str, default: f64) -> Result<f64, ConfigError> {
    let rate: f64 = var_or(lookup, name, default)?;

    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        let shown = rate.to_string();
        Err(ConfigError::invalid(name, &shown, "must be from 0 to 1"))
    }
}

/// Milliseconds from `lookup`, at least one, as a duration.
pub fn millis_or(
    lookup: Lookup<'_>,
    name: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let default_ms = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
    let millis: u64 = var_or(lookup, name, default_ms)?;

    if millis == 0 {
        return Err(ConfigError::invalid(name, "0", "must be above 0"));
    }
    Ok(Duration::from_millis(millis))
}

/// `name`, or an error saying it must be set.
pub fn env_required(name: &str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing(name.to_owned())),
    }
}

/// What every service reads: where to listen, its database, the secret.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// `LECTERN_BIND`: the address to listen on.
    pub bind: SocketAddr,
    /// `DATABASE_URL`: `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// `LECTERN_TOKEN_SECRET`: the shared token secret, as keys.
    pub keys: Arc<TokenKeys>,
}

impl CommonConfig {
    /// Reads the common variables; `default_port` is used when
    /// `LECTERN_BIND` is unset.
    pub fn from_env(default_port: u16) -> Result<Self, ConfigError> {
        let default_bind = SocketAddr::from(([127, 0, 0, 1], default_port));
        let secret = env_required("LECTERN_TOKEN_SECRET")?;
        if secret.len() < 16 {
            return Err(ConfigError::Invalid {
                name: "LECTERN_TOKEN_SECRET".into(),
                value: "<hidden>".into(),
                reason: "must be at least 16 characters".into(),
            });
        }
        Ok(Self {
            bind: env_or("LECTERN_BIND", default_bind)?,
            database_url: env_required("DATABASE_URL")?,
            keys: Arc::new(TokenKeys::from_secret(secret.as_bytes())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_lists_need_http_on_every_item() {
        assert!(check_urls("U", "http://a:1").is_ok());
        assert!(check_urls("U", "http://a:1, https://b:2").is_ok());
        for bad in ["a:1", "http://a:1,b:2", "http://a:1,", ""] {
            let error = check_urls("U", bad).unwrap_err();
            assert!(error.to_string().starts_with("U="), "{error}");
        }
    }
}
