//! The service's configuration: the common variables plus its own.
//!
//! [`Config::from_env`] reads the environment (see the crate README for
//! the table); [`Config::new`] gives the same defaults for tests, whose
//! fields can then be set directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lectern_platform::auth::TokenKeys;
use lectern_platform::config::{env_or, CommonConfig, ConfigError};

use crate::passwords::{PasswordCost, MIN_PASSWORD_CHARS};

/// Token lifetime when `LECTERN_TOKEN_TTL_SECS` is unset: eight hours.
const DEFAULT_TOKEN_TTL_SECS: u64 = 8 * 3600;

/// Loan limit of a new member when `DEFAULT_LOAN_LIMIT` is unset.
const DEFAULT_LOAN_LIMIT: i64 = 5;

/// The largest loan limit a member may have.
pub(crate) const MAX_LOAN_LIMIT: i64 = 100;

/// Where generated secrets go when `LECTERN_DATA_DIR` is unset.
const DEFAULT_DATA_DIR: &str = "./lectern-data";

/// Everything user-service needs to start.
#[derive(Clone)]
pub struct Config {
    /// `LECTERN_BIND`: the address to listen on.
    pub bind: SocketAddr,
    /// `DATABASE_URL`: `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// `LECTERN_TOKEN_SECRET`, as the keys that sign and check tokens.
    pub keys: Arc<TokenKeys>,
    /// `LECTERN_ADMIN_PASSWORD`: the first admin's password; when `None`
    /// a strong one is generated, printed once and saved in
    /// `data_dir/admin-password`.
    pub admin_password: Option<String>,
    /// `LECTERN_DATA_DIR`: where the generated admin password is saved.
    pub data_dir: PathBuf,
    /// `LECTERN_TOKEN_TTL_SECS`: how long a sign-in token is valid.
    pub token_ttl: Duration,
    /// `DEFAULT_LOAN_LIMIT`: the loan limit of a member created without
    /// one.
    pub default_loan_limit: i64,
    /// How costly password hashes are. Always
    /// [`PasswordCost::Standard`] from the environment; only code (tests)
    /// can choose another.
    pub password_cost: PasswordCost,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let admin_password = self.admin_password.as_ref().map(|_| "<hidden>");
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("database_url", &self.database_url)
            .field("admin_password", &admin_password)
            .field("data_dir", &self.data_dir)
            .field("token_ttl", &self.token_ttl)
            .field("default_loan_limit", &self.default_loan_limit)
            .field("password_cost", &self.password_cost)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The defaults every unset variable gets, for `database_url` and
    /// `keys`.
    pub fn new(database_url: impl Into<String>, keys: Arc<TokenKeys>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], crate::DEFAULT_PORT)),
            database_url: database_url.into(),
            keys,
            admin_password: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            token_ttl: Duration::from_secs(DEFAULT_TOKEN_TTL_SECS),
            default_loan_limit: DEFAULT_LOAN_LIMIT,
            password_cost: PasswordCost::Standard,
        }
    }

    /// Reads the environment; a value that does not parse is an error
    /// naming the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(crate::DEFAULT_PORT)?;
        let mut config = Self::new(common.database_url, common.keys);
        config.bind = common.bind;
        config.admin_password = admin_password()?;
        config.data_dir = env_or("LECTERN_DATA_DIR", config.data_dir)?;
        config.token_ttl = token_ttl()?;
        config.default_loan_limit = default_loan_limit()?;
        Ok(config)
    }
}

fn admin_password() -> Result<Option<String>, ConfigError> {
    let Ok(password) = std::env::var("LECTERN_ADMIN_PASSWORD") else {
        return Ok(None);
    };
    if password.is_empty() {
        return Ok(None);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ConfigError::Invalid {
            name: "LECTERN_ADMIN_PASSWORD".into(),
            value: "<hidden>".into(),
            reason: format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        });
    }
    Ok(Some(password))
}

fn token_ttl() -> Result<Duration, ConfigError> {
    let name = "LECTERN_TOKEN_TTL_SECS";
    let secs: u64 = env_or(name, DEFAULT_TOKEN_TTL_SECS)?;
    if secs == 0 {
        return Err(invalid(name, secs, "must be at least 1 second"));
    }
    Ok(Duration::from_secs(secs))
}

fn default_loan_limit() -> Result<i64, ConfigError> {
    let name = "DEFAULT_LOAN_LIMIT";
    let limit: i64 = env_or(name, DEFAULT_LOAN_LIMIT)?;
    if !(0..=MAX_LOAN_LIMIT).contains(&limit) {
        let reason = format!("must be between 0 and {MAX_LOAN_LIMIT}");
        return Err(invalid(name, limit, &reason));
    }
    Ok(limit)
}

fn invalid(name: &str, value: impl ToString, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_owned(),
        value: value.to_string(),
        reason: reason.to_owned(),
    }
}
