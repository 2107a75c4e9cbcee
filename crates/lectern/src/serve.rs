//! `lectern serve <service>`: one service in the foreground, configured
//! from the environment, as a container (or `lectern up`) runs it.
//!
//! Logs are JSON lines on stdout (`telemetry::init`). Fault injection
//! (`CHAOS_ENABLED` and friends, see `lectern_platform::chaos`) applies
//! to every service but the gateway. A configuration
//! error names the variable and why, on stderr, and exits 2; a failure to
//! start (database unreachable, port taken) exits 1. SIGINT or SIGTERM
//! stops the service gracefully and exits 0.
//!
//! The gateway reads `LECTERN_GATEWAY_CONFIG` (a TOML file, see the
//! gateway crate). Without it, it serves the local layout of
//! [`GatewayConfig::local`] with the servers named by
//! `GATEWAY_BOOK_SERVERS`, `GATEWAY_USER_SERVERS` and
//! `GATEWAY_BORROWING_SERVERS`, which is how `lectern up` runs it.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use lectern_gateway::GatewayConfig;
use lectern_platform::chaos::ChaosConfig;
use lectern_platform::config::{env_or, ConfigError};
use lectern_platform::server::{self, Service};
use lectern_platform::telemetry;

use crate::cli::ServiceName;

/// The gateway's configuration file.
pub(crate) const GATEWAY_CONFIG: &str = "LECTERN_GATEWAY_CONFIG";
/// Without a file: book-service servers, comma-separated `ip:port`.
pub(crate) const GATEWAY_BOOK_SERVERS: &str = "GATEWAY_BOOK_SERVERS";
/// Without a file: the user-service server.
pub(crate) const GATEWAY_USER_SERVERS: &str = "GATEWAY_USER_SERVERS";
/// Without a file: the borrowing-service server.
pub(crate) const GATEWAY_BORROWING_SERVERS: &str = "GATEWAY_BORROWING_SERVERS";
/// Set by `lectern up`: a child stops when its parent is no longer this
/// pid (the supervisor died without stopping it).
pub(crate) const SUPERVISOR_PID: &str = "LECTERN_SUPERVISOR_PID";

/// The gateway's address when `LECTERN_BIND` is unset.
const GATEWAY_DEFAULT_BIND: ([u8; 4], u16) = ([127, 0, 0, 1], 8080);

/// How often an orphan check looks at the parent pid.
const ORPHAN_CHECK: Duration = Duration::from_secs(1);

/// Why `serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    /// A variable is missing or does not parse.
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// The gateway's file cannot be used.
    #[error("configuration error: {GATEWAY_CONFIG}={path}: {reason}")]
    GatewayFile {
        /// The file.
        path: String,
        /// Why, with its causes.
        reason: String,
    },
    /// Starting or serving failed.
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

impl ServeError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Config(_) | Self::GatewayFile { .. } => ExitCode::from(2),
            Self::Failed(_) => ExitCode::FAILURE,
        }
    }
}

/// Runs `service` until SIGINT or SIGTERM.
pub(crate) async fn run(service: ServiceName) -> ExitCode {
    if let Err(error) = telemetry::check_env() {
        eprintln!(
            "lectern serve {}: configuration error: {error}",
            service.as_str()
        );
        return ExitCode::from(2);
    }
    telemetry::init(service.as_str());

    let result = match service {
        ServiceName::BookService => {
            use lectern_book_service as book;
            let config = book::Config::from_env();
            serve_service(config, |c| c.bind, book::build).await
        }
        ServiceName::UserService => {
            use lectern_user_service as user;
            let config = user::Config::from_env();
            serve_service(config, |c| c.bind, user::build).await
        }
        ServiceName::BorrowingService => {
            use lectern_borrowing_service as borrowing;
            let config = borrowing::Config::from_env();
            serve_service(config, |c| c.common.bind, borrowing::build).await
        }
        ServiceName::Gateway => serve_gateway().await,
    };

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(event.action = "service-failed", "{error}");
            eprintln!("lectern serve {}: {error}", service.as_str());
            error.exit_code()
        }
    }
}

/// Builds a service from its configuration and serves it.
async fn serve_service<C, B, F>(
    config: Result<C, ConfigError>,
    bind: impl FnOnce(&C) -> SocketAddr,
    build: B,
) -> Result<(), ServeError>
where
    B: FnOnce(C) -> F,
    F: Future<Output = anyhow::Result<Service>>,
{
    let config = config?;
    let chaos = ChaosConfig::from_env()?;
    let address = bind(&config);
    let service = build(config)
        .await
        .map_err(ServeError::Failed)?
        .chaos(chaos);
    let listener = server::bind(address)
        .await
        .map_err(|e| ServeError::Failed(e.into()))?;

    service
        .serve(listener, stop_signal())
        .await
        .map_err(|e| ServeError::Failed(e.into()))
}

async fn serve_gateway() -> Result<(), ServeError> {
    let address = env_or("LECTERN_BIND", SocketAddr::from(GATEWAY_DEFAULT_BIND))?;
    let config = gateway_config()?;
    let gateway =
        lectern_gateway::GatewayServer::new(&config).map_err(|e| ServeError::Failed(e.into()))?;
    let listener = server::bind(address)
        .await
        .map_err(|e| ServeError::Failed(e.into()))?;

    // With a file, SIGHUP reloads it without dropping a request; the
    // local layout from variables has nothing to re-read.
    let reloader = match config_file() {
        Some(path) => Some(
            lectern_gateway::reload_on_sighup(gateway.reload_handle(), path)
                .map_err(|e| ServeError::Failed(e.into()))?,
        ),
        None => None,
    };
    let served = gateway.serve(listener, stop_signal()).await;
    if let Some(task) = reloader {
        task.abort();
    }
    served.map_err(|e| ServeError::Failed(e.into()))
}

/// The path in `LECTERN_GATEWAY_CONFIG`, when set.
fn config_file() -> Option<String> {
    std::env::var(GATEWAY_CONFIG)
        .ok()
        .filter(|p| !p.trim().is_empty())
}

/// The file named by `LECTERN_GATEWAY_CONFIG`, else the local layout.
fn gateway_config() -> Result<GatewayConfig, ServeError> {
    if let Some(path) = config_file() {
        return GatewayConfig::load(&path).map_err(|e| ServeError::GatewayFile {
            path,
            reason: format!("{:#}", anyhow::Error::new(e)),
        });
    }

    let book = servers(GATEWAY_BOOK_SERVERS, "127.0.0.1:8081")?;
    let user = one_server(GATEWAY_USER_SERVERS, "127.0.0.1:8082")?;
    let borrowing = one_server(GATEWAY_BORROWING_SERVERS, "127.0.0.1:8083")?;

    Ok(GatewayConfig::local(book, user, borrowing))
}

/// A comma-separated list of `ip:port` from `name`, or `default`.
fn servers(name: &str, default: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    let text = std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned());

    parse_servers(name, &text)
}

fn parse_servers(name: &str, text: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: name.to_owned(),
        value: text.to_owned(),
        reason,
    };
    let list = text
        .split(',')
        .map(str::trim)
        .map(|item| item.parse().map_err(|e| invalid(format!("{item:?}: {e}"))))
        .collect::<Result<Vec<SocketAddr>, _>>()?;
    if list.is_empty() {
        return Err(invalid("no servers".into()));
    }

    Ok(list)
}

fn one_server(name: &str, default: &str) -> Result<SocketAddr, ConfigError> {
    let list = servers(name, default)?;
    match list.as_slice() {
        [one] => Ok(*one),
        _ => Err(ConfigError::Invalid {
            name: name.to_owned(),
            value: std::env::var(name).unwrap_or_default(),
            reason: "exactly one ip:port is expected".into(),
        }),
    }
}

/// Completes on SIGINT, SIGTERM or, under `lectern up`, when the
/// supervisor is gone.
async fn stop_signal() {
    tokio::select! {
        () = server::shutdown_signal() => {}
        () = orphaned() => {}
    }
}

/// Completes when the parent is no longer the supervisor that started
/// this process; never when `LECTERN_SUPERVISOR_PID` is unset.
async fn orphaned() {
    let supervisor = std::env::var(SUPERVISOR_PID)
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok());
    let Some(supervisor) = supervisor else {
        return std::future::pending().await;
    };

    let mut tick = tokio::time::interval(ORPHAN_CHECK);
    loop {
        tick.tick().await;
        if std::os::unix::process::parent_id() != supervisor {
            tracing::warn!(
                event.action = "supervisor-gone",
                "The supervisor (pid {supervisor}) is gone; stopping"
            );
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lists_parse_and_bad_ones_name_the_variable() {
        let list = parse_servers("X", "127.0.0.1:1, 127.0.0.1:2").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].port(), 2);

        let err = parse_servers("GATEWAY_BOOK_SERVERS", "books:8081").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("GATEWAY_BOOK_SERVERS="), "{text}");
        assert!(parse_servers("X", "").is_err());
        assert!(parse_servers("X", "127.0.0.1:1,").is_err());
    }

    #[test]
    fn the_local_layout_is_a_valid_gateway() {
        let book = parse_servers("B", "127.0.0.1:1,127.0.0.1:2").unwrap();
        let one = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));

        let config = GatewayConfig::local(book, one(3), one(4));
        config.validate().unwrap();
        assert_eq!(config.upstreams["book-service"].servers.len(), 2);
    }
}
