//! Active health checks: the gateway asks every server for its health
//! path (`/health/ready` by default) every `interval`, and marks it
//! unhealthy after `fails` failed checks in a row, healthy again after
//! `passes` passed checks in a row (NGINX Plus `health_check`).
//!
//! A check passes on a 2xx answer head within `timeout`; anything else
//! (another status, a refused or broken connection, no answer in time)
//! fails it. A server is healthy until a check says otherwise, so a new
//! gateway does not wait a full round before serving.
//!
//! An unhealthy server is skipped while choosing, unless no server the
//! request could use is healthy: then the checks are ignored for that
//! choice (Envoy's "panic mode"), so a check that is wrong everywhere,
//! or a dependency down behind every replica, never makes the gateway
//! refuse more than it would without checks.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use tokio::time::{sleep_until, timeout, Instant};

use crate::client;
use crate::config::HealthCheckConfig;
use crate::upstream::Upstream;

/// What the checks found out about one server so far.
#[derive(Debug)]
pub(crate) struct Active {
    healthy: AtomicBool,
    fails: AtomicU32,
    passes: AtomicU32,
}

impl Default for Active {
    fn default() -> Self {
        Self {
            healthy: AtomicBool::new(true),
            fails: AtomicU32::new(0),
            passes: AtomicU32::new(0),
        }
    }
}

/// A change of a server's health that a check caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing changed.
    None,
    /// The server became unhealthy.
    Down,
    /// The server became healthy again.
    Up,
}

impl Active {
    /// Whether the last checks found the server healthy.
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Failed checks in a row (for reports).
    pub(crate) fn fails(&self) -> u32 {
        self.fails.load(Ordering::Relaxed)
    }

    /// Passed checks in a row (for reports).
    pub(crate) fn passes(&self) -> u32 {
        self.passes.load(Ordering::Relaxed)
    }

    /// Records one check. Only the server's checker calls this, so the
    /// counters need no lock.
    pub(crate) fn record(
        &self,
        passed: bool,
        config: &HealthCheckConfig,
    ) -> Change {
        let healthy = self.is_healthy();
        if passed {
            self.fails.store(0, Ordering::Relaxed);
            let passes = self.passes.fetch_add(1, Ordering::Relaxed) + 1;
            if !healthy && passes >= config.passes {
                self.healthy.store(true, Ordering::Relaxed);
                return Change::Up;
            }
        } else {
            self.passes.store(0, Ordering::Relaxed);
            let fails = self.fails.fetch_add(1, Ordering::Relaxed) + 1;
            if healthy && fails >= config.fails {
                self.healthy.store(false, Ordering::Relaxed);
                return Change::Down;
            }
        }

        Change::None
    }
}

/// Checks server `index` of `upstream` every interval, the first time at
/// once, until the task is aborted.
pub(crate) async fn run(upstream: Arc<Upstream>, index: usize) {
    let Some(config) = upstream.health_check().cloned() else {
        return;
    };
    let mut next = Instant::now();

    loop {
        sleep_until(next).await;
        let passed = probe(&upstream, index, &config).await;
        upstream.record_check(index, passed, &config);

        next += config.interval;
        let now = Instant::now();
        if next < now {
            // Checks fell behind (a stalled runtime): skip, not burst.
            next = now;
        }
    }
}

/// One check: a 2xx answer head within the timeout.
async fn probe(
    upstream: &Upstream,
    index: usize,
    config: &HealthCheckConfig,
) -> bool {
    let server = upstream.server(index);
    let asked = client::check(server.target(), server.address(), &config.path);

    match timeout(config.timeout, asked).await {
        Ok(Ok(status)) => status.is_success(),
        Ok(Err(error)) => {
            tracing::debug!(
                upstream = %upstream.name(),
                server = %server.address(),
                %error,
                "Health check failed"
            );
            false
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(fails: u32, passes: u32) -> HealthCheckConfig {
        HealthCheckConfig {
            fails,
            passes,
            ..HealthCheckConfig::default()
        }
    }

    #[test]
    fn fails_in_a_row_mark_down_and_passes_in_a_row_restore() {
        let c = config(2, 3);
        let a = Active::default();
        assert!(a.is_healthy(), "healthy until a check says otherwise");

        assert_eq!(a.record(false, &c), Change::None);
        assert_eq!(a.record(true, &c), Change::None);
        assert_eq!(a.record(false, &c), Change::None);
        assert!(a.is_healthy(), "the failures were not in a row");
        assert_eq!(a.record(false, &c), Change::Down);
        assert!(!a.is_healthy());

        assert_eq!(a.record(true, &c), Change::None);
        assert_eq!(a.record(true, &c), Change::None);
        assert_eq!(a.record(false, &c), Change::None);
        assert_eq!(a.record(true, &c), Change::None);
        assert_eq!(a.record(true, &c), Change::None);
        assert_eq!(a.record(true, &c), Change::Up);
        assert!(a.is_healthy());
    }
}
