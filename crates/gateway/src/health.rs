//! Passive health of one server, with nginx's `max_fails` meaning.
//!
//! A server that fails `max_fails` times within `fail_timeout` is
//! unavailable for `fail_timeout`. When that time is up, one request (the
//! trial) may go to it, and the server stays unavailable for everyone else
//! for another `fail_timeout` unless the trial succeeds, which makes it
//! available again. This is how nginx behaves too.
//!
//! Time is a count of milliseconds on the upstream's tokio clock (see
//! [`Clock`]), so tests can pause and advance it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Milliseconds since a fixed start, read from tokio's clock; never 0.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    /// Now, in milliseconds after the start, plus one so 0 means "never".
    pub(crate) fn now(self) -> u64 {
        let ms = self.start.elapsed().as_millis();

        u64::try_from(ms).unwrap_or(u64::MAX - 1) + 1
    }
}

/// What choosing a server means for its health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The server is available; nothing special.
    Normal,
    /// The server was unavailable and this request is its one trial.
    Trial,
    /// Another request took the trial first; choose again.
    Lost,
}

/// Failures counted within the current window.
#[derive(Debug, Default)]
struct Window {
    fails: u32,
    started: u64,
}

/// The passive-health settings of one server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Passive {
    max_fails: u32,
    fail_timeout: u64,
}

impl Passive {
    pub(crate) fn new(max_fails: u32, fail_timeout: Duration) -> Self {
        let ms = u64::try_from(fail_timeout.as_millis()).unwrap_or(u64::MAX);

        Self {
            max_fails,
            fail_timeout: ms,
        }
    }
}

/// The passive health state of one server. It outlives a configuration
/// reload; the settings ([`Passive`]) come with each call.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// 0 when available; else the time from which a trial may start.
    down_until: AtomicU64,
    /// Touched only when a request fails, never to choose a server.
    window: Mutex<Window>,
}

impl Health {
    /// Whether a request may be sent now (maybe as the trial).
    pub(crate) fn is_available(&self, now: u64) -> bool {
        let until = self.down_until.load(Ordering::Acquire);

        until == 0 || until <= now
    }

    /// Milliseconds until the server may be tried again, if it is down.
    pub(crate) fn down_for(&self, now: u64) -> Option<u64> {
        let until = self.down_until.load(Ordering::Acquire);

        (until > now).then(|| until - now)
    }

    /// Failures in the current window (for reports).
    pub(crate) fn fails(&self) -> u32 {
        self.window.lock().fails
    }

    /// Called on the server just chosen: takes the trial if it is one.
    pub(crate) fn claim(&self, now: u64, settings: Passive) -> Claim {
        let until = self.down_until.load(Ordering::Acquire);
        if until == 0 {
            return Claim::Normal;
        }
        if until > now {
            return Claim::Lost;
        }

        let next = now.saturating_add(settings.fail_timeout);
        let swap = self.down_until.compare_exchange(
            until,
            next,
            Ordering::AcqRel,
            Ordering::Acquire,
        );

        match swap {
            Ok(_) => Claim::Trial,
            Err(_) => Claim::Lost,
        }
    }

    /// Counts a failure; returns true when it makes the server unavailable.
    pub(crate) fn record_failure(&self, now: u64, settings: Passive) -> bool {
        if settings.max_fails == 0 {
            return false;
        }

        let mut window = self.window.lock();
        let expired =
            now.saturating_sub(window.started) >= settings.fail_timeout;
        if window.fails == 0 || expired {
            *window = Window {
                fails: 0,
                started: now,
            };
        }
        window.fails += 1;

        if window.fails < settings.max_fails {
            return false;
        }

        *window = Window::default();
        let until = now.saturating_add(settings.fail_timeout);
        self.down_until.store(until, Ordering::Release);

        true
    }

    /// Counts a success; a successful trial makes the server available.
    /// Returns true when it did.
    pub(crate) fn record_success(&self, trial: bool) -> bool {
        if !trial || self.down_until.load(Ordering::Acquire) == 0 {
            return false;
        }

        *self.window.lock() = Window::default();
        self.down_until.store(0, Ordering::Release);

        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000;

    /// A server's health with these settings, as one value for tests.
    struct H(Health, Passive);

    impl H {
        fn record_failure(&self, now: u64) -> bool {
            self.0.record_failure(now, self.1)
        }
        fn claim(&self, now: u64) -> Claim {
            self.0.claim(now, self.1)
        }
        fn record_success(&self, trial: bool) -> bool {
            self.0.record_success(trial)
        }
        fn is_available(&self, now: u64) -> bool {
            self.0.is_available(now)
        }
        fn down_for(&self, now: u64) -> Option<u64> {
            self.0.down_for(now)
        }
    }

    fn health(max_fails: u32) -> H {
        H(
            Health::default(),
            Passive::new(max_fails, Duration::from_secs(10)),
        )
    }

    #[test]
    fn max_fails_within_fail_timeout_marks_the_server_down() {
        let h = health(3);

        assert!(!h.record_failure(SECOND));
        assert!(!h.record_failure(2 * SECOND));
        assert!(h.is_available(2 * SECOND));
        assert!(h.record_failure(3 * SECOND));

        assert!(!h.is_available(3 * SECOND));
        assert_eq!(h.down_for(3 * SECOND), Some(10 * SECOND));
    }

    #[test]
    fn failures_spread_wider_than_fail_timeout_do_not() {
        let h = health(2);

        assert!(!h.record_failure(SECOND));
        assert!(!h.record_failure(12 * SECOND));
        assert!(h.record_failure(13 * SECOND));
    }

    #[test]
    fn max_fails_zero_never_marks_down() {
        let h = health(0);

        for t in 1..100 {
            assert!(!h.record_failure(t));
        }
        assert!(h.is_available(100));
    }

    #[test]
    fn after_fail_timeout_exactly_one_trial_goes_through() {
        let h = health(1);
        h.record_failure(SECOND);

        assert!(!h.is_available(5 * SECOND));
        assert!(h.is_available(11 * SECOND));
        assert_eq!(h.claim(11 * SECOND), Claim::Trial);

        assert!(!h.is_available(12 * SECOND));
        assert_eq!(h.claim(12 * SECOND), Claim::Lost);
    }

    #[test]
    fn a_successful_trial_restores_the_server() {
        let h = health(1);
        h.record_failure(SECOND);
        assert_eq!(h.claim(11 * SECOND), Claim::Trial);

        assert!(h.record_success(true));

        assert!(h.is_available(11 * SECOND));
        assert_eq!(h.claim(11 * SECOND), Claim::Normal);
    }

    #[test]
    fn a_failed_trial_keeps_it_down_for_another_fail_timeout() {
        let h = health(3);
        for t in 1..=3 {
            h.record_failure(t * SECOND);
        }
        assert_eq!(h.claim(14 * SECOND), Claim::Trial);

        h.record_failure(14 * SECOND);

        assert!(!h.is_available(23 * SECOND));
        assert!(h.is_available(24 * SECOND));
    }

    #[test]
    fn a_normal_success_does_not_clear_a_mark_made_meanwhile() {
        let h = health(1);
        h.record_failure(SECOND);

        assert!(!h.record_success(false));
        assert!(!h.is_available(2 * SECOND));
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_follows_tokio_time() {
        let clock = Clock::new();
        let before = clock.now();

        tokio::time::advance(Duration::from_secs(10)).await;

        assert_eq!(clock.now() - before, 10 * SECOND);
    }
}
