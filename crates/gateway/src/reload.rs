//! Configuration reloads without dropping a request.
//!
//! The configuration in force is one [`Gateway`] behind a lock that each
//! request holds only to clone an `Arc`. A reload checks the new
//! configuration, builds the next gateway (sharing the live state of the
//! servers that stay: requests in flight, passive health, checks,
//! ejections, which region serves), starts its checks, swaps it in and
//! stops the old checks. Requests that began on the old configuration
//! finish on it; the listener and the clients' connections stay open.
//! An invalid configuration changes nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::config::{ConfigError, GatewayConfig, LoadError};
use crate::gateway::Gateway;
use crate::health::Clock;
use crate::metrics::Families;

/// What every connection and every reload share.
#[derive(Debug)]
pub(crate) struct Shared {
    current: RwLock<Arc<Gateway>>,
    families: Arc<Families>,
    clock: Clock,
    /// The runtime serving, while `serve` runs: background checks of a
    /// new configuration start there. Also serialises reloads.
    runtime: Mutex<Option<tokio::runtime::Handle>>,
}

impl Shared {
    pub(crate) fn new(config: &GatewayConfig) -> Result<Self, ConfigError> {
        let families = Arc::new(Families::new());
        let clock = Clock::new();
        let workers = config.workers();
        let gateway = Gateway::new(config, &families, clock, workers, None)?;

        Ok(Self {
            current: RwLock::new(Arc::new(gateway)),
            families,
            clock,
            runtime: Mutex::new(None),
        })
    }

    /// The configuration in force.
    pub(crate) fn current(&self) -> Arc<Gateway> {
        Arc::clone(&self.current.read())
    }

    /// Serving begins on `runtime`: starts the background checks.
    pub(crate) fn start(&self, runtime: tokio::runtime::Handle) {
        let mut slot = self.runtime.lock();
        self.current().start_tasks(&runtime);
        *slot = Some(runtime);
    }

    /// Serving ended: stops them.
    pub(crate) fn stop(&self) {
        let mut slot = self.runtime.lock();
        self.current().stop_tasks();
        *slot = None;
    }

    /// Puts `config` in force.
    pub(crate) fn reload(
        &self,
        config: &GatewayConfig,
    ) -> Result<(), ConfigError> {
        let runtime = self.runtime.lock();
        let old = self.current();
        let (families, clock) = (&self.families, self.clock);
        let next =
            Gateway::new(config, families, clock, old.workers(), Some(&old))?;
        let next = Arc::new(next);
        if let Some(runtime) = runtime.as_ref() {
            next.start_tasks(runtime);
        }

        *self.current.write() = Arc::clone(&next);
        old.stop_tasks();
        old.forget_removed(&next);
        drop(runtime);

        tracing::info!(
            event.action = "gateway-reloaded",
            upstreams = config.upstreams.len(),
            routes = config.routes.len(),
            "Gateway configuration reloaded"
        );

        Ok(())
    }
}

/// Puts a new configuration in force in a running gateway; cheap to
/// clone. See [`crate::GatewayServer::reload_handle`].
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    pub(crate) shared: Arc<Shared>,
}

impl ReloadHandle {
    /// Checks `config` and puts it in force: requests already begun
    /// finish on the old configuration, later ones use the new one.
    ///
    /// # Errors
    /// [`ConfigError`] when `config` is invalid; the old one stays.
    pub fn reload(&self, config: &GatewayConfig) -> Result<(), ConfigError> {
        self.shared.reload(config)
    }

    /// Reads, checks and puts in force the TOML file at `path`.
    ///
    /// # Errors
    /// [`LoadError`] when the file is unreadable or invalid; the old
    /// configuration stays.
    pub fn reload_file(&self, path: impl AsRef<Path>) -> Result<(), LoadError> {
        let config = GatewayConfig::load(path)?;

        Ok(self.reload(&config)?)
    }
}

/// Reloads the file at `path` whenever the process gets SIGHUP, as
/// `nginx -s reload` does, logging each outcome; an invalid file is
/// logged and changes nothing. The returned task runs until aborted.
///
/// # Errors
/// When the SIGHUP handler cannot be installed.
#[cfg(unix)]
pub fn reload_on_sighup(
    handle: ReloadHandle,
    path: impl Into<PathBuf>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};

    let path = path.into();
    let mut hangups = signal(SignalKind::hangup())?;

    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            if let Err(error) = handle.reload_file(&path) {
                let reason = Chain(&error).to_string();
                tracing::warn!(
                    event.action = "gateway-reload-failed",
                    file = %path.display(),
                    %reason,
                    "Gateway configuration not reloaded; the old one stays"
                );
            }
        }
    }))
}

/// An error with its causes, for a log line.
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }

        Ok(())
    }
}
