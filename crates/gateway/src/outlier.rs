//! Outlier ejection on consecutive 5xx, with Envoy's meanings.
//!
//! Every answer with a 5xx status, and every failed attempt (refused,
//! broken, timed out, invalid), counts one failure in a row; any other
//! answer ends the row. `consecutive_5xx` in a row eject the server for
//! `base_ejection_time` × the number of its recent ejections, at most
//! `max_ejection_time`. Back in service the row starts again from zero,
//! so a server still failing is ejected again after at most
//! `consecutive_5xx` more failures, for longer. Each `base_ejection_time`
//! spent back in service forgets one past ejection.
//!
//! At most `max_ejection_percent` of an upstream's servers are ejected at
//! once (at least one may always be), so ejection alone never empties an
//! upstream.
//!
//! Time is in milliseconds of the gateway's clock ([`crate::health::Clock`]).
//!
//! Limitation: every 5xx counts, also a 503 that a service sends because
//! a neighbour it needs is down; `max_ejection_percent` keeps that from
//! emptying an upstream, but such a replica can be ejected for a fault
//! that is not its own.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::config::OutlierConfig;

/// The settings, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outlier {
    consecutive: u32,
    base: u64,
    max: u64,
    percent: u32,
}

impl Outlier {
    pub(crate) fn new(config: &OutlierConfig) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let base = ms(config.base_ejection_time).max(1);

        Self {
            consecutive: config.consecutive_5xx,
            base,
            max: ms(config.max_ejection_time).max(base),
            percent: config.max_ejection_percent,
        }
    }

    /// Most servers of `servers` that may be ejected at once.
    pub(crate) fn max_ejected(self, servers: usize) -> usize {
        let share = servers * self.percent as usize / 100;

        share.max(1)
    }
}

/// Ejections so far and when the last one ended.
#[derive(Debug, Default)]
struct History {
    ejections: u32,
    last_end: u64,
}

/// The ejection state of one server; outlives a configuration reload.
#[derive(Debug, Default)]
pub(crate) struct Ejection {
    /// Failures in a row; read on every answer, written on failures.
    row: AtomicU32,
    /// 0 when in service; else the time the ejection ends.
    until: AtomicU64,
    history: Mutex<History>,
}

/// What recording a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The server stays in service.
    Stays,
    /// The server is ejected for this many milliseconds.
    Ejected(u64),
    /// The server met the threshold but too many are ejected already.
    Spared,
}

impl Ejection {
    /// Whether the server is ejected at `now`.
    pub(crate) fn is_ejected(&self, now: u64) -> bool {
        self.until.load(Ordering::Acquire) > now
    }

    /// Milliseconds of ejection left, if ejected.
    pub(crate) fn ejected_for(&self, now: u64) -> Option<u64> {
        let until = self.until.load(Ordering::Acquire);

        (until > now).then(|| until - now)
    }

    /// Failures in a row now.
    pub(crate) fn row(&self) -> u32 {
        self.row.load(Ordering::Relaxed)
    }

    /// Recent ejections (the multiplier of the next one).
    pub(crate) fn ejections(&self) -> u32 {
        self.history.lock().ejections
    }

    /// An answer that is not a failure ends the row. Reads before it
    /// writes, so the common case touches no shared cache line.
    pub(crate) fn record_success(&self) {
        if self.row.load(Ordering::Relaxed) != 0 {
            self.row.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a failure; `may_eject` says whether the upstream has room
    /// for one more ejected server.
    pub(crate) fn record_failure(
        &self,
        now: u64,
        settings: Outlier,
        may_eject: impl FnOnce() -> bool,
    ) -> Verdict {
        if self.is_ejected(now) {
            // Answers of requests sent before the ejection: the row
            // starts again when the server is back.
            return Verdict::Stays;
        }
        let row = self.row.fetch_add(1, Ordering::Relaxed) + 1;
        if row < settings.consecutive {
            return Verdict::Stays;
        }
        if !may_eject() {
            return Verdict::Spared;
        }

        let mut history = self.history.lock();
        let back_since = history.last_end.min(now);
        let forgotten = (now - back_since) / settings.base;
        let forgotten = u32::try_from(forgotten).unwrap_or(u32::MAX);
        history.ejections = history.ejections.saturating_sub(forgotten) + 1;

        let times = u64::from(history.ejections);
        let length = settings.base.saturating_mul(times).min(settings.max);
        let until = now.saturating_add(length);
        history.last_end = until;
        self.row.store(0, Ordering::Relaxed);
        self.until.store(until, Ordering::Release);

        Verdict::Ejected(length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000;

    fn settings() -> Outlier {
        Outlier::new(&OutlierConfig {
            consecutive_5xx: 3,
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(25),
            max_ejection_percent: 10,
        })
    }

    fn fail(e: &Ejection, now: u64) -> Verdict {
        e.record_failure(now, settings(), || true)
    }

    #[test]
    fn failures_in_a_row_eject_and_a_success_ends_the_row() {
        let e = Ejection::default();

        assert_eq!(fail(&e, S), Verdict::Stays);
        assert_eq!(fail(&e, S), Verdict::Stays);
        e.record_success();
        assert_eq!(fail(&e, S), Verdict::Stays);
        assert_eq!(fail(&e, S), Verdict::Stays);
        assert_eq!(fail(&e, S), Verdict::Ejected(10 * S));

        assert!(e.is_ejected(10 * S));
        assert!(!e.is_ejected(11 * S));
    }

    #[test]
    fn a_server_still_failing_is_ejected_again_for_longer() {
        let e = Ejection::default();
        for _ in 0..3 {
            fail(&e, 0);
        }
        assert_eq!(e.ejected_for(0), Some(10 * S));

        // Back at 10 s, failing: ejected again within the threshold.
        assert_eq!(fail(&e, 10 * S), Verdict::Stays);
        assert_eq!(fail(&e, 10 * S), Verdict::Stays);
        assert_eq!(fail(&e, 10 * S), Verdict::Ejected(20 * S));

        // Third time: 30 s, capped at the maximum of 25 s.
        for _ in 0..3 {
            fail(&e, 30 * S);
        }
        assert_eq!(e.ejected_for(30 * S), Some(25 * S));
        assert_eq!(e.ejections(), 3);
    }

    #[test]
    fn time_back_in_service_forgets_ejections() {
        let e = Ejection::default();
        for _ in 0..3 {
            fail(&e, 0);
        }
        for _ in 0..3 {
            fail(&e, 10 * S);
        }
        assert_eq!(e.ejections(), 2);

        // Ejected until 30 s; 20 s back in service forget two.
        for _ in 0..3 {
            fail(&e, 50 * S);
        }
        assert_eq!(e.ejections(), 1);
        assert_eq!(e.ejected_for(50 * S), Some(10 * S));
    }

    #[test]
    fn a_full_upstream_spares_the_server() {
        let e = Ejection::default();
        for _ in 0..2 {
            fail(&e, 0);
        }

        assert_eq!(e.record_failure(0, settings(), || false), Verdict::Spared);
        assert!(!e.is_ejected(0));
        assert_eq!(settings().max_ejected(3), 1, "at least one");
        let half = Outlier {
            percent: 50,
            ..settings()
        };
        assert_eq!(half.max_ejected(6), 3);
    }
}
