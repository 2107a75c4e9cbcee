//! Region failover, active-passive.
//!
//! Every server of an upstream with `region_failover` names its region.
//! The servers of the `active` region take the traffic. Every `interval`
//! (30 s in the source design) the gateway looks whether the active
//! region has a healthy server: one that its active health checks pass,
//! that is not marked down by passive health and not ejected. After
//! `threshold` looks in a row (3 in the source design) found none, the
//! servers of the other regions take the traffic instead; at the first
//! look that finds a healthy server in the active region again, the
//! traffic returns there.
//!
//! Within the region that serves, balancing, backups and retries work as
//! without regions; a request never crosses to the other side on its own.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use tokio::time::{sleep_until, Instant};

use crate::config::RegionFailoverConfig;
use crate::upstream::Upstream;

/// Which side serves, and how many looks in a row found the active
/// region without a healthy server. Outlives a configuration reload
/// when the active region stays the same.
#[derive(Debug, Default)]
pub(crate) struct Failover {
    passive: AtomicBool,
    misses: AtomicU32,
}

/// What one look changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing.
    None,
    /// The passive region serves from now on.
    FailedOver,
    /// The active region serves again.
    Restored,
}

impl Failover {
    /// Whether the passive region serves now.
    pub(crate) fn passive_serves(&self) -> bool {
        self.passive.load(Ordering::Relaxed)
    }

    /// Looks in a row that found no healthy server in the active region.
    pub(crate) fn misses(&self) -> u32 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Records one look at the active region. Only the upstream's
    /// region task calls this.
    pub(crate) fn record(
        &self,
        active_healthy: bool,
        threshold: u32,
    ) -> Change {
        if active_healthy {
            self.misses.store(0, Ordering::Relaxed);
            let was_passive = self.passive.swap(false, Ordering::Relaxed);
            return if was_passive {
                Change::Restored
            } else {
                Change::None
            };
        }

        let misses = self.misses.fetch_add(1, Ordering::Relaxed) + 1;
        if misses >= threshold && !self.passive.swap(true, Ordering::Relaxed) {
            return Change::FailedOver;
        }

        Change::None
    }
}

/// Looks at the active region of `upstream` every interval, the first
/// time one interval after the start, until the task is aborted.
pub(crate) async fn run(upstream: Arc<Upstream>) {
    let Some(config) = upstream.region_failover().cloned() else {
        return;
    };
    let RegionFailoverConfig { interval, .. } = config;
    let mut next = Instant::now() + interval;

    loop {
        sleep_until(next).await;
        upstream.look_at_regions(&config);

        next += interval;
        let now = Instant::now();
        if next < now {
            next = now;
        }
    }
}

/// Keeps a reload's failover state when the active region is the same.
pub(crate) fn carried(
    old: Option<(&str, &Arc<Failover>)>,
    active: &str,
) -> Arc<Failover> {
    match old {
        Some((was, state)) if was == active => Arc::clone(state),
        _ => Arc::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_passive_side_serves_after_threshold_misses_in_a_row() {
        let f = Failover::default();

        assert_eq!(f.record(false, 3), Change::None);
        assert_eq!(f.record(false, 3), Change::None);
        assert_eq!(f.record(true, 3), Change::None);
        assert_eq!(f.record(false, 3), Change::None);
        assert_eq!(f.record(false, 3), Change::None);
        assert!(!f.passive_serves(), "the misses were not in a row");
        assert_eq!(f.record(false, 3), Change::FailedOver);
        assert!(f.passive_serves());
        assert_eq!(f.record(false, 3), Change::None);

        assert_eq!(f.record(true, 3), Change::Restored);
        assert!(!f.passive_serves());
        assert_eq!(f.misses(), 0);
    }
}
