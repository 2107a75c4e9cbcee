//! How long to wait before trying again: exponential growth, a cap, and
//! full jitter.
//!
//! With full jitter the wait before retry `n` is drawn uniformly from
//! `[0, min(base * 2^(n-1), max)]`, so callers that failed together do not
//! come back together. The arithmetic holds for any attempt number: it never
//! overflows and never panics, and past the point where the exponent passes
//! the cap the range simply stays at the cap, still random.

use std::fmt;
use std::time::Duration;

use rand::Rng;

/// A policy that says how long to wait before the next attempt.
pub trait Backoff: fmt::Debug + Send + Sync {
    /// The wait after `attempt` attempts failed (`attempt` counts from 1).
    fn delay(&self, attempt: u32) -> Duration;
}

/// Exponential backoff with full jitter and a cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExponentialBackoff {
    base: Duration,
    max: Duration,
}

impl Default for ExponentialBackoff {
    /// One second, doubling to at most ten.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(10))
    }
}

impl ExponentialBackoff {
    /// Waits drawn below `base`, doubling each attempt, capped at `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    /// The top of the range the wait after `attempt` failures is drawn
    /// from: `min(base * 2^(attempt-1), max)`. Attempt 0 counts as 1.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1);
        let max = self.max.as_nanos();

        let grown = 1u128
            .checked_shl(exponent)
            .and_then(|factor| self.base.as_nanos().checked_mul(factor));

        from_nanos(grown.map_or(max, |nanos| nanos.min(max)))
    }

    /// A wait drawn uniformly from `[0, ceiling(attempt)]` with `rng`.
    pub fn jittered<R: Rng + ?Sized>(&self, attempt: u32, rng: &mut R) -> Duration {
        let ceiling = self.ceiling(attempt).as_nanos();
        let ceiling = u64::try_from(ceiling).unwrap_or(u64::MAX);

        Duration::from_nanos(rng.random_range(0..=ceiling))
    }
}

impl Backoff for ExponentialBackoff {
    fn delay(&self, attempt: u32) -> Duration {
        self.jittered(attempt, &mut rand::rng())
    }
}

/// `nanos` never exceeds a `Duration`'s own nanoseconds here.
fn from_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;

    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    let subsec = (nanos % NANOS_PER_SEC) as u32;

    Duration::new(secs, subsec)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn defaults_double_from_one_second_to_ten() {
        let backoff = ExponentialBackoff::default();

        let ceilings: Vec<_> = (1..=6).map(|a| backoff.ceiling(a)).collect();

        assert_eq!(
            ceilings,
            [secs(1), secs(2), secs(4), secs(8), secs(10), secs(10)]
        );
    }

    #[test]
    fn attempt_1000_is_the_cap_range_and_still_random() {
        let backoff = ExponentialBackoff::default();
        let mut rng = StdRng::seed_from_u64(7);

        let draws: Vec<_> = (0..200).map(|_| backoff.jittered(1000, &mut rng)).collect();
        let distinct: HashSet<_> = draws.iter().collect();

        assert_eq!(backoff.ceiling(1000), secs(10));
        assert_eq!(backoff.ceiling(u32::MAX), secs(10));
        assert!(draws.iter().all(|d| *d <= secs(10)));
        assert!(distinct.len() > 150, "only {} distinct", distinct.len());
        assert!(draws.iter().any(|d| *d < secs(5)));
        assert!(draws.iter().any(|d| *d > secs(5)));
    }

    #[test]
    fn extreme_durations_do_not_overflow() {
        let backoff = ExponentialBackoff::new(Duration::MAX, Duration::MAX);

        assert_eq!(backoff.ceiling(1), Duration::MAX);
        assert_eq!(backoff.ceiling(2), Duration::MAX);
        assert!(backoff.delay(1000) <= Duration::MAX);
    }

    #[test]
    fn a_cap_below_the_base_wins() {
        let backoff = ExponentialBackoff::new(secs(5), secs(2));

        assert_eq!(backoff.ceiling(1), secs(2));
    }

    proptest! {
        #[test]
        fn ceiling_matches_checked_doubling(
            base_ms in 0u64..100_000,
            max_ms in 0u64..10_000_000,
            attempt in 0u32..=u32::MAX,
        ) {
            let backoff = ExponentialBackoff::new(
                Duration::from_millis(base_ms),
                Duration::from_millis(max_ms),
            );

            let exponent = attempt.saturating_sub(1);
            let mut expected = u128::from(base_ms);
            for _ in 0..exponent.min(64) {
                expected = (expected * 2).min(u128::from(max_ms) + 1);
            }
            let expected = expected.min(u128::from(max_ms));

            let ceiling = backoff.ceiling(attempt);
            prop_assert_eq!(ceiling.as_millis(), expected);
        }

        #[test]
        fn ceiling_never_shrinks(
            base_ms in 0u64..1_000_000,
            max_ms in 0u64..1_000_000_000,
            attempt in 1u32..u32::MAX,
        ) {
            let backoff = ExponentialBackoff::new(
                Duration::from_millis(base_ms),
                Duration::from_millis(max_ms),
            );

            prop_assert!(backoff.ceiling(attempt) <= backoff.ceiling(attempt + 1));
        }

        #[test]
        fn jitter_stays_within_the_ceiling(
            base_ms in 0u64..100_000,
            max_ms in 0u64..10_000_000,
            attempt in 0u32..=u32::MAX,
            seed in any::<u64>(),
        ) {
            let backoff = ExponentialBackoff::new(
                Duration::from_millis(base_ms),
                Duration::from_millis(max_ms),
            );
            let mut rng = StdRng::seed_from_u64(seed);

            let delay = backoff.jittered(attempt, &mut rng);

            prop_assert!(delay <= backoff.ceiling(attempt));
        }
    }
}
