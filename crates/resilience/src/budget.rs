//! A retry budget: retries may add at most a fixed fraction of the
//! requests, plus a small floor per second, over a rolling window.
//!
//! Every request deposits `ratio` of a retry; every retry withdraws one
//! whole retry; a standing reserve of `min_per_sec * ttl` retries lets a
//! quiet service retry at all. Deposits and withdrawals leave the window
//! after `ttl`. The arithmetic is exact: amounts are kept in millionths of a
//! retry, so a 0.6 ratio over 10 requests allows exactly 6 retries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::error::Retryable;
use crate::window::{EpochClock, Ring};

/// Millionths of a retry in one retry.
const UNIT: u128 = 1_000_000;

/// Buckets in the budget's window.
const BUCKETS: u32 = 10;

/// How much a retry budget allows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetConfig {
    /// Retries allowed per request, as a fraction (0.2 is one retry per
    /// five requests). Kept to six decimal places; negative counts as 0.
    pub ratio: f64,
    /// Retries allowed per second whatever the traffic.
    pub min_per_sec: u32,
    /// How long a deposit or a withdrawal counts.
    pub ttl: Duration,
}

impl Default for BudgetConfig {
    /// One retry per five requests, ten per second, over ten seconds.
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_sec: 10,
            ttl: Duration::from_secs(10),
        }
    }
}

/// A retry budget shared by every caller of one dependency. Cloning it
/// shares the same budget.
// Limitation: one short lock per budget is taken on every request (to
// deposit) and every retry; under heavy parallel load it is a point of
// contention. The breaker's hot path does not take it.
#[derive(Clone, Debug)]
pub struct RetryBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ratio_ppm: u128,
    reserve: u128,
    clock: EpochClock,
    flows: Mutex<Ring<Flow>>,
    refusals: AtomicU64,
}

/// Requests and retries of one bucket.
#[derive(Clone, Copy, Debug, Default)]
struct Flow {
    deposits: u64,
    withdrawals: u64,
}

impl RetryBudget {
    /// A budget as `config` describes.
    pub fn new(config: BudgetConfig) -> Self {
        let ttl_ms = config.ttl.as_millis().max(1);
        let reserve = u128::from(config.min_per_sec) * ttl_ms * (UNIT / 1000);
        let clock = EpochClock::new(Instant::now(), config.ttl, BUCKETS);

        let inner = Inner {
            ratio_ppm: ratio_to_ppm(config.ratio),
            reserve,
            clock,
            flows: Mutex::new(Ring::new(BUCKETS)),
            refusals: AtomicU64::new(0),
        };

        Self {
            inner: Arc::new(inner),
        }
    }

    /// Records one request, which earns `ratio` of a retry.
    pub fn deposit(&self) {
        let epoch = self.epoch();
        let mut flows = self.inner.flows.lock();

        if let Some(flow) = flows.bucket(epoch) {
            flow.deposits += 1;
        }
    }

    /// Takes one retry from the budget, or refuses when less than one whole
    /// retry is left.
    pub fn try_withdraw(&self) -> Result<(), BudgetExhausted> {
        let epoch = self.epoch();
        let mut flows = self.inner.flows.lock();

        if self.inner.balance(&flows, epoch) < UNIT {
            drop(flows);
            self.inner.refusals.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(retry.budget = "exhausted", "Retry refused");
            return Err(BudgetExhausted::new());
        }
        if let Some(flow) = flows.bucket(epoch) {
            flow.withdrawals += 1;
        }

        Ok(())
    }

    /// The whole retries the budget would allow now.
    pub fn available(&self) -> u64 {
        let epoch = self.epoch();
        let flows = self.inner.flows.lock();
        let whole = self.inner.balance(&flows, epoch) / UNIT;

        u64::try_from(whole).unwrap_or(u64::MAX)
    }

    /// Retries refused since the budget was made.
    pub fn refusals(&self) -> u64 {
        self.inner.refusals.load(Ordering::Relaxed)
    }

    fn epoch(&self) -> u64 {
        self.inner.clock.epoch(Instant::now())
    }
}

impl Inner {
    /// What is left, in millionths of a retry.
    fn balance(&self, flows: &Ring<Flow>, epoch: u64) -> u128 {
        let (deposits, withdrawals) = flows.live(epoch).fold((0u128, 0u128), |(d, w), flow| {
            (
                d + u128::from(flow.deposits),
                w + u128::from(flow.withdrawals),
            )
        });
        let earned = deposits * self.ratio_ppm + self.reserve;

        earned.saturating_sub(withdrawals * UNIT)
    }
}

/// A ratio in millionths, rounded to the nearest; 0 for NaN or negative,
/// capped at a million retries per request.
fn ratio_to_ppm(ratio: f64) -> u128 {
    let ppm = (ratio * 1e6).round();

    if ppm.is_nan() || ppm <= 0.0 {
        return 0;
    }

    // In range after the clamp, so the cast loses nothing.
    ppm.min(1e12) as u128
}

/// The retry budget refused a retry.
///
/// Not retryable: the budget exists to stop retry storms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error("the retry budget is exhausted")]
pub struct BudgetExhausted {
    _private: (),
}

impl BudgetExhausted {
    /// A new `BudgetExhausted`.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Retryable for BudgetExhausted {
    fn is_retryable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn budget(ratio: f64, min_per_sec: u32) -> RetryBudget {
        RetryBudget::new(BudgetConfig {
            ratio,
            min_per_sec,
            ttl: Duration::from_secs(10),
        })
    }

    fn withdrawals(budget: &RetryBudget) -> u64 {
        let mut allowed = 0;
        while budget.try_withdraw().is_ok() {
            allowed += 1;
        }
        allowed
    }

    #[tokio::test(start_paused = true)]
    async fn ratio_0_6_over_10_requests_allows_exactly_6_retries() {
        let budget = budget(0.6, 0);

        for _ in 0..10 {
            budget.deposit();
        }

        assert_eq!(withdrawals(&budget), 6);
        assert_eq!(budget.refusals(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn ratios_that_floats_get_wrong_are_exact() {
        // 0.1 * 30 is 3.0000000000000004 and 0.7 * 10 is 7.000000000000001
        // in f64; both must give whole retries, no more and no less.
        let tenth = budget(0.1, 0);
        let seven = budget(0.7, 0);

        for _ in 0..30 {
            tenth.deposit();
        }
        for _ in 0..10 {
            seven.deposit();
        }

        assert_eq!(withdrawals(&tenth), 3);
        assert_eq!(withdrawals(&seven), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_allows_retries_without_traffic() {
        let budget = budget(0.2, 2);

        assert_eq!(budget.available(), 20);
        assert_eq!(withdrawals(&budget), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_and_withdrawals_expire_after_the_ttl() {
        let budget = budget(0.5, 0);
        for _ in 0..4 {
            budget.deposit();
        }
        assert_eq!(withdrawals(&budget), 2);

        tokio::time::advance(Duration::from_secs(10)).await;
        for _ in 0..2 {
            budget.deposit();
        }

        assert_eq!(withdrawals(&budget), 1);
    }

    #[test]
    fn odd_ratios_are_clamped() {
        assert_eq!(ratio_to_ppm(f64::NAN), 0);
        assert_eq!(ratio_to_ppm(-1.0), 0);
        assert_eq!(ratio_to_ppm(0.6), 600_000);
        assert_eq!(ratio_to_ppm(f64::INFINITY), 1_000_000_000_000);
    }

    proptest! {
        /// Exactly floor((requests * ppm + floor * ttl) / 1e6) retries.
        #[test]
        fn allowed_retries_are_exact(
            ppm in 0u32..=2_000_000,
            requests in 0u32..500,
            min_per_sec in 0u32..5,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();

            let allowed = rt.block_on(async {
                let budget = budget(f64::from(ppm) / 1e6, min_per_sec);
                for _ in 0..requests {
                    budget.deposit();
                }
                withdrawals(&budget)
            });

            let earned = u64::from(requests) * u64::from(ppm)
                + u64::from(min_per_sec) * 10 * 1_000_000;
            prop_assert_eq!(allowed, earned / 1_000_000);
        }

        /// The budget grants exactly what a plain ledger of every request
        /// and retry, each counted for its one-second bucket plus nine
        /// more, would grant.
        #[test]
        fn budget_matches_a_naive_ledger(
            ppm in 0u32..=1_000_000,
            min_per_sec in 0u32..2,
            steps in proptest::collection::vec(
                (0u64..3_000, 0u32..5, 0u32..5),
                1..60,
            ),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();

            rt.block_on(async {
                let budget = budget(f64::from(ppm) / 1e6, min_per_sec);
                let reserve = u64::from(min_per_sec) * 10 * 1_000_000;
                let mut now_ms = 0;
                let mut ledger: Vec<(u64, bool)> = Vec::new();

                for (gap_ms, requests, retries) in steps {
                    tokio::time::advance(Duration::from_millis(gap_ms)).await;
                    now_ms += gap_ms;
                    let epoch = now_ms / 1000;

                    for _ in 0..requests {
                        budget.deposit();
                        ledger.push((epoch, true));
                    }
                    for _ in 0..retries {
                        let live = ledger.iter().filter(|(e, _)| epoch - e < 10);
                        let (d, w) = live.fold((0, 0), |(d, w), (_, dep)| {
                            if *dep { (d + 1, w) } else { (d, w + 1) }
                        });
                        let balance = (d * u64::from(ppm) + reserve)
                            .saturating_sub(w * 1_000_000);
                        let expected = balance >= 1_000_000;

                        let granted = budget.try_withdraw().is_ok();
                        assert_eq!(granted, expected, "at {now_ms} ms");
                        if granted {
                            ledger.push((epoch, false));
                        }
                    }
                }
            });
        }
    }
}
