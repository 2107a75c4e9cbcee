//! How long the supervisor waits before restarting a child that died.
//!
//! The wait doubles with each quick death, from 0.5 s up to 10 s, so a
//! child that cannot start does not spin; a child that ran for 30 s or
//! more counts as healthy again and its next restart is quick.

use std::time::Duration;

/// The first wait.
pub(crate) const INITIAL: Duration = Duration::from_millis(500);

/// The longest wait.
pub(crate) const MAX: Duration = Duration::from_secs(10);

/// A run this long resets the backoff.
pub(crate) const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// The restart history of one child.
#[derive(Debug, Default)]
pub(crate) struct Restarts {
    /// Quick deaths in a row.
    streak: u32,
}

impl Restarts {
    /// The wait before the next start, for a child that ran `ran` before
    /// it died (or failed to start at all, with `ran` zero).
    pub(crate) fn after_exit(&mut self, ran: Duration) -> Duration {
        if ran >= HEALTHY_RUN {
            self.streak = 0;
        }
        let delay = delay_for(self.streak);
        self.streak = self.streak.saturating_add(1);

        delay
    }
}

/// `INITIAL * 2^streak`, capped at `MAX`.
fn delay_for(streak: u32) -> Duration {
    // 2^5 * 0.5 s = 16 s is already past the cap; stop doubling there so
    // the multiplication cannot overflow.
    let factor = 1u32 << streak.min(5);

    INITIAL.saturating_mul(factor).min(MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn quick_deaths_double_the_wait_up_to_the_cap() {
        let mut restarts = Restarts::default();
        let waits: Vec<Duration> = (0..8)
            .map(|_| restarts.after_exit(Duration::from_secs(1)))
            .collect();

        let expected = [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0].map(secs);
        assert_eq!(waits, expected);
    }

    #[test]
    fn a_long_run_resets_the_wait() {
        let mut restarts = Restarts::default();
        for _ in 0..6 {
            restarts.after_exit(Duration::ZERO);
        }

        assert_eq!(restarts.after_exit(HEALTHY_RUN), INITIAL);
        assert_eq!(restarts.after_exit(Duration::ZERO), secs(1.0));
    }

    #[test]
    fn a_run_just_short_of_healthy_does_not_reset() {
        let mut restarts = Restarts::default();
        restarts.after_exit(Duration::ZERO);
        restarts.after_exit(Duration::ZERO);

        let almost = HEALTHY_RUN - Duration::from_millis(1);
        assert_eq!(restarts.after_exit(almost), secs(2.0));
    }

    #[test]
    fn a_long_streak_never_overflows() {
        let mut restarts = Restarts { streak: u32::MAX };

        assert_eq!(restarts.after_exit(Duration::ZERO), MAX);
        assert_eq!(restarts.after_exit(Duration::ZERO), MAX);
    }
}
