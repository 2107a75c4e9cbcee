//! How a breaker decides: window, thresholds, timeouts and trial calls.

use std::time::Duration;

/// A breaker's settings. The defaults follow Lectern's design: a 10 s
/// window in 10 buckets, at least 5 calls, open at 50 % failures, a 3 s
/// call timeout, half-open after 30 s with one trial call.
///
/// Out-of-range values are clamped when the breaker is made, never
/// rejected: a zero count becomes one, a rate is kept within (0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    /// Length of the rolling window.
    pub window: Duration,
    /// Buckets the window is cut into; counts leave a bucket at a time.
    pub window_buckets: u32,
    /// Calls the window must hold before any rate can open the breaker.
    pub min_calls: u32,
    /// Failure rate (0 to 1) at which the breaker opens.
    pub failure_rate: f64,
    /// A call at least this long is slow, whatever its outcome.
    pub slow_call_duration: Duration,
    /// Slow-call rate (0 to 1) at which the breaker opens.
    pub slow_call_rate: f64,
    /// Calls are given up after this long, which counts as a failure;
    /// `None` for no timeout.
    pub call_timeout: Option<Duration>,
    /// How long the breaker stays open before a trial call.
    pub reset_timeout: Duration,
    /// Each time a trial fails, the next reset timeout is this many times
    /// longer (1 keeps it fixed).
    pub reset_backoff: u32,
    /// The reset timeout never grows past this (nor is cut below
    /// `reset_timeout` by it).
    pub max_reset_timeout: Duration,
    /// Trial calls let through in half-open; all of them must succeed to
    /// close. A slow trial that succeeds counts as a success.
    pub trial_calls: u16,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            window_buckets: 10,
            min_calls: 5,
            failure_rate: 0.5,
            slow_call_duration: Duration::from_secs(2),
            slow_call_rate: 1.0,
            call_timeout: Some(Duration::from_secs(3)),
            reset_timeout: Duration::from_secs(30),
            reset_backoff: 1,
            max_reset_timeout: Duration::from_secs(300),
            trial_calls: 1,
        }
    }
}

/// A config with every value in range, in the units the breaker uses.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) window: Duration,
    pub(crate) buckets: u32,
    pub(crate) min_calls: u64,
    pub(crate) failure_ppm: u128,
    pub(crate) slow_ppm: u128,
    pub(crate) slow_call: Duration,
    pub(crate) call_timeout: Option<Duration>,
    pub(crate) reset_timeout: Duration,
    pub(crate) reset_backoff: u32,
    pub(crate) max_reset_timeout: Duration,
    pub(crate) trial_calls: u16,
}

impl From<&BreakerConfig> for Settings {
    fn from(c: &BreakerConfig) -> Self {
        let buckets = c.window_buckets.max(1);
        let min_width = Duration::from_nanos(u64::from(buckets));

        Self {
            window: c.window.max(min_width),
            buckets,
            min_calls: u64::from(c.min_calls.max(1)),
            failure_ppm: rate_to_ppm(c.failure_rate),
            slow_ppm: rate_to_ppm(c.slow_call_rate),
            slow_call: c.slow_call_duration,
            call_timeout: c.call_timeout,
            reset_timeout: c.reset_timeout,
            reset_backoff: c.reset_backoff.max(1),
            max_reset_timeout: c.max_reset_timeout.max(c.reset_timeout),
            trial_calls: c.trial_calls.max(1),
        }
    }
}

impl Settings {
    /// The reset timeout after the breaker opened `opens` times in a row
    /// (counting from 1): `reset_timeout * reset_backoff^(opens-1)`,
    /// capped.
    pub(crate) fn reset_timeout_after(&self, opens: u32) -> Duration {
        let cap = self.max_reset_timeout.as_nanos();

        let grown = self
            .reset_backoff
            .checked_pow(opens.saturating_sub(1))
            .and_then(|f| self.reset_timeout.as_nanos().checked_mul(u128::from(f)));
        let nanos = grown.map_or(cap, |n| n.min(cap));

        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// True when `part` of `calls` reaches a rate of `ppm` millionths.
    pub(crate) fn reaches(part: u64, calls: u64, ppm: u128) -> bool {
        calls > 0 && u128::from(part) * 1_000_000 >= ppm * u128::from(calls)
    }
}

/// A rate in millionths, within 1 ..= 1 000 000.
fn rate_to_ppm(rate: f64) -> u128 {
    let ppm = (rate * 1e6).round();

    if ppm.is_nan() || ppm < 1.0 {
        return 1;
    }

    // In range after the clamp, so the cast loses nothing.
    ppm.min(1e6) as u128
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn settings(reset_s: u64, backoff: u32, max_s: u64) -> Settings {
        Settings::from(&BreakerConfig {
            reset_timeout: Duration::from_secs(reset_s),
            reset_backoff: backoff,
            max_reset_timeout: Duration::from_secs(max_s),
            ..BreakerConfig::default()
        })
    }

    #[test]
    fn reset_timeout_doubles_up_to_its_cap() {
        let s = settings(30, 2, 200);

        let waits: Vec<_> = (1..=5)
            .map(|n| s.reset_timeout_after(n).as_secs())
            .collect();

        assert_eq!(waits, [30, 60, 120, 200, 200]);
        assert_eq!(s.reset_timeout_after(u32::MAX).as_secs(), 200);
    }

    #[test]
    fn a_cap_below_the_reset_timeout_is_raised_to_it() {
        let s = settings(30, 2, 10);

        assert_eq!(s.reset_timeout_after(3).as_secs(), 30);
    }

    #[test]
    fn rates_are_compared_exactly() {
        let half = rate_to_ppm(0.5);

        assert!(Settings::reaches(5, 10, half));
        assert!(!Settings::reaches(4, 10, half));
        assert!(!Settings::reaches(0, 0, half));
        assert_eq!(rate_to_ppm(f64::NAN), 1);
        assert_eq!(rate_to_ppm(7.0), 1_000_000);
    }

    proptest! {
        #[test]
        fn reset_timeout_never_exceeds_the_cap_nor_shrinks(
            reset_ms in 0u64..100_000,
            backoff in 1u32..10,
            max_ms in 0u64..10_000_000,
            opens in 1u32..u32::MAX,
        ) {
            let s = Settings::from(&BreakerConfig {
                reset_timeout: Duration::from_millis(reset_ms),
                reset_backoff: backoff,
                max_reset_timeout: Duration::from_millis(max_ms),
                ..BreakerConfig::default()
            });

            let now = s.reset_timeout_after(opens);
            let next = s.reset_timeout_after(opens + 1);

            prop_assert!(now <= s.max_reset_timeout);
            prop_assert!(now >= s.reset_timeout.min(s.max_reset_timeout));
            prop_assert!(now <= next);
        }
    }
}
