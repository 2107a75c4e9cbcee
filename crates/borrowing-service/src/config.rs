//! The service's configuration, from the environment or built in code.
//!
//! Every variable is listed with its default in this crate's README. A
//! value that does not parse stops the service with a message naming the
//! variable.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use lectern_platform::cache;
use lectern_platform::client::CallPolicy;
use lectern_platform::config::{self as platform, CommonConfig, ConfigError};

use crate::clock::{Clock, SystemClock};
use crate::policy::Policy;

/// The port used when `LECTERN_BIND` is unset.
pub const DEFAULT_PORT: u16 = 8083;

/// Where book-service is when `BOOK_SERVICE_URL` is unset.
pub const DEFAULT_BOOK_SERVICE_URL: &str = "http://127.0.0.1:8081";

/// Where user-service is when `USER_SERVICE_URL` is unset.
pub const DEFAULT_USER_SERVICE_URL: &str = "http://127.0.0.1:8082";

/// The time limit of one call to a neighbour, by default.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(3000);

/// How old a cached eligibility answer may be and still be used, by
/// default: 15 minutes, long enough to ride out a user-service restart or
/// a short outage, short enough that a suspension reaches the desk soon.
pub const DEFAULT_ELIGIBILITY_MAX_AGE: Duration = Duration::from_secs(900);

/// How old cached copy details may be and still be used, by default: a
/// day. A copy's title and loanable flag rarely change.
pub const DEFAULT_COPY_MAX_AGE: Duration = Duration::from_secs(86_400);

/// The longest loan period accepted from `LOAN_DAYS`.
const MAX_LOAN_DAYS: u32 = 3650;

/// Everything borrowing-service needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `LECTERN_BIND`, `DATABASE_URL`, `LECTERN_TOKEN_SECRET`.
    pub common: CommonConfig,
    /// `BOOK_SERVICE_URL`: base URL of book-service.
    pub book_service_url: String,
    /// `USER_SERVICE_URL`: base URL of user-service.
    pub user_service_url: String,
    /// `LECTERN_CALL_TIMEOUT_MS`: the time limit of one neighbour call.
    pub call_timeout: Duration,
    /// `LECTERN_RETRY_*`, `LECTERN_BREAKER_*`, `LECTERN_BULKHEAD_*`: how
    /// calls to the neighbours are retried, broken and bounded.
    pub calls: CallPolicy,
    /// `REDIS_URL`: where the fallback caches live; in this process when
    /// `None`.
    pub redis_url: Option<String>,
    /// `ELIGIBILITY_CACHE_MAX_AGE_SECS`: the oldest cached eligibility
    /// answer a checkout may use when user-service cannot answer.
    pub eligibility_max_age: Duration,
    /// `COPY_CACHE_MAX_AGE_SECS`: the oldest cached copy details a
    /// checkout may use when book-service cannot answer.
    pub copy_max_age: Duration,
    /// `LOAN_DAYS`, `MAX_RENEWALS`, `LIBRARY_TIMEZONE`.
    pub policy: Policy,
    /// Where "now" comes from; the system clock unless a test sets one.
    pub clock: Arc<dyn Clock>,
}

impl Config {
    /// The defaults around `common`, with the system clock.
    pub fn new(common: CommonConfig) -> Self {
        Self {
            common,
            book_service_url: DEFAULT_BOOK_SERVICE_URL.to_owned(),
            user_service_url: DEFAULT_USER_SERVICE_URL.to_owned(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            calls: CallPolicy::default(),
            redis_url: None,
            eligibility_max_age: DEFAULT_ELIGIBILITY_MAX_AGE,
            copy_max_age: DEFAULT_COPY_MAX_AGE,
            policy: Policy::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads every variable, falling back to the documented defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(DEFAULT_PORT)?;
        let own = Settings::read(&|name| std::env::var(name).ok())?;

        Ok(own.apply(Self::new(common)))
    }
}

/// This service's own variables, apart from the common ones.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    book_service_url: String,
    user_service_url: String,
    call_timeout: Duration,
    calls: CallPolicy,
    redis_url: Option<String>,
    eligibility_max_age: Duration,
    copy_max_age: Duration,
    policy: Policy,
}

/// Reads a variable by name; `None` when unset.
type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Settings {
    fn read(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let timeout_ms = var_or(lookup, "LECTERN_CALL_TIMEOUT_MS", 3000_u64)?;
        let loan_days = var_or(lookup, "LOAN_DAYS", 14_u32)?;

        if timeout_ms == 0 {
            return Err(invalid(
                "LECTERN_CALL_TIMEOUT_MS",
                "0",
                "must be above 0",
            ));
        }
        if !(1..=MAX_LOAN_DAYS).contains(&loan_days) {
            let reason = format!("must be 1 to {MAX_LOAN_DAYS}");
            return Err(invalid("LOAN_DAYS", &loan_days.to_string(), &reason));
        }

        Ok(Self {
            book_service_url: service_url(
                lookup,
                "BOOK_SERVICE_URL",
                DEFAULT_BOOK_SERVICE_URL,
            )?,
            user_service_url: service_url(
                lookup,
                "USER_SERVICE_URL",
                DEFAULT_USER_SERVICE_URL,
            )?,
            call_timeout: Duration::from_millis(timeout_ms),
            calls: CallPolicy::from_vars(lookup)?,
            redis_url: cache::redis_url(lookup)?,
            eligibility_max_age: secs(
                lookup,
                "ELIGIBILITY_CACHE_MAX_AGE_SECS",
                DEFAULT_ELIGIBILITY_MAX_AGE,
            )?,
            copy_max_age: secs(
                lookup,
                "COPY_CACHE_MAX_AGE_SECS",
                DEFAULT_COPY_MAX_AGE,
            )?,
            policy: Policy {
                loan_days,
                max_renewals: var_or(lookup, "MAX_RENEWALS", 2_u32)?,
                timezone: var_or(lookup, "LIBRARY_TIMEZONE", Tz::UTC)?,
            },
        })
    }

    fn apply(self, config: Config) -> Config {
        Config {
            book_service_url: self.book_service_url,
            user_service_url: self.user_service_url,
            call_timeout: self.call_timeout,
            calls: self.calls,
            redis_url: self.redis_url,
            eligibility_max_age: self.eligibility_max_age,
            copy_max_age: self.copy_max_age,
            policy: self.policy,
            ..config
        }
    }
}

/// `name` parsed, or `default` when unset or blank; the same rules as
/// the platform's `env_or`, over any source of variables.
fn var_or<T>(
    lookup: Lookup<'_>,
    name: &str,
    default: T,
) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match lookup(name) {
        Some(value) if !value.trim().is_empty() => value
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                name: name.to_owned(),
                reason: e.to_string(),
                value,
            }),
        _ => Ok(default),
    }
}

/// `http://` or `https://` base URLs from `name`: one, or several
/// replicas comma-separated.
fn service_url(
    lookup: Lookup<'_>,
    name: &str,
    default: &str,
) -> Result<String, ConfigError> {
    let url: String = var_or(lookup, name, default.to_owned())?;

    platform::check_urls(name, &url)?;
    Ok(url)
}

/// Whole seconds from `name`, or `default`; 0 turns the cache off (an
/// answer is never young enough).
fn secs(
    lookup: Lookup<'_>,
    name: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let secs = var_or(lookup, name, default.as_secs())?;

    Ok(Duration::from_secs(secs))
}

fn invalid(name: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::read(&|name| vars.get(name).cloned())
    }

    #[test]
    fn unset_variables_take_the_documented_defaults() {
        let settings = read(&[]).unwrap();

        assert_eq!(settings.book_service_url, DEFAULT_BOOK_SERVICE_URL);
        assert_eq!(settings.user_service_url, DEFAULT_USER_SERVICE_URL);
        assert_eq!(settings.call_timeout, DEFAULT_CALL_TIMEOUT);
        assert_eq!(settings.policy, Policy::default());
    }

    #[test]
    fn set_variables_are_read() {
        let settings = read(&[
            ("LOAN_DAYS", "21"),
            ("MAX_RENEWALS", "0"),
            ("LIBRARY_TIMEZONE", "Europe/Paris"),
            ("LECTERN_CALL_TIMEOUT_MS", "250"),
            ("BOOK_SERVICE_URL", "http://books:8081"),
        ])
        .unwrap();

        assert_eq!(settings.policy.loan_days, 21);
        assert_eq!(settings.policy.max_renewals, 0);
        assert_eq!(settings.policy.timezone, chrono_tz::Europe::Paris);
        assert_eq!(settings.call_timeout, Duration::from_millis(250));
        assert_eq!(settings.book_service_url, "http://books:8081");
    }

    #[test]
    fn resilience_and_cache_variables_are_read() {
        let settings = read(&[
            ("BOOK_SERVICE_URL", "http://b1:8081,http://b2:8081"),
            ("LECTERN_BREAKER_RESET_MS", "2000"),
            ("ELIGIBILITY_CACHE_MAX_AGE_SECS", "60"),
            ("COPY_CACHE_MAX_AGE_SECS", "0"),
            ("REDIS_URL", "redis://127.0.0.1:6379/"),
        ])
        .unwrap();

        assert_eq!(settings.book_service_url, "http://b1:8081,http://b2:8081");
        assert_eq!(settings.calls.breaker_reset, Duration::from_secs(2));
        assert_eq!(settings.eligibility_max_age, Duration::from_secs(60));
        assert_eq!(settings.copy_max_age, Duration::ZERO);
        assert_eq!(
            settings.redis_url.as_deref(),
            Some("redis://127.0.0.1:6379/")
        );

        let defaults = read(&[]).unwrap();
        assert_eq!(defaults.eligibility_max_age, Duration::from_secs(900));
        assert_eq!(defaults.copy_max_age, Duration::from_secs(86_400));
        assert_eq!(defaults.redis_url, None);
        assert_eq!(defaults.calls, CallPolicy::default());
    }

    #[test]
    fn a_bad_time_zone_is_an_error_naming_the_variable() {
        let error = read(&[("LIBRARY_TIMEZONE", "Mars/Olympus")]).unwrap_err();

        assert!(error.to_string().contains("LIBRARY_TIMEZONE"), "{error}");
    }

    #[test]
    fn bad_numbers_and_urls_are_errors_naming_the_variable() {
        let cases = [
            ("LOAN_DAYS", "0"),
            ("LOAN_DAYS", "two weeks"),
            ("MAX_RENEWALS", "-1"),
            ("LECTERN_CALL_TIMEOUT_MS", "0"),
            ("USER_SERVICE_URL", "users:8082"),
            ("BOOK_SERVICE_URL", "http://b1:8081,b2:8081"),
            ("ELIGIBILITY_CACHE_MAX_AGE_SECS", "-1"),
            ("LECTERN_BREAKER_MIN_CALLS", "0"),
        ];
        for (name, value) in cases {
            let error = read(&[(name, value)]).unwrap_err();
            assert!(error.to_string().contains(name), "{name}: {error}");
        }
    }
}
