//! The breaker's counts, kept in per-thread stripes so that two threads
//! calling through one breaker never fight over a cache line.
//!
//! Each stripe holds, under its own short lock: the rolling window of
//! calls, failures and slow calls; lifetime totals; and a latency
//! histogram of the last one to two windows. A thread always writes to the
//! same stripe; readers (the trip decision, snapshots, metrics) add the
//! stripes up.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use crate::window::{EpochClock, Ring};

/// Latency buckets: 8 exact microsecond values, then 4 per power of two up
/// below 2^29 µs (about 9 minutes); longer calls share the last bucket.
const LATENCY_BUCKETS: usize = 112;

/// Calls, failures and slow calls over the rolling window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Calls recorded (ignored outcomes are not).
    pub calls: u64,
    /// Of those, failures, timeouts included.
    pub failures: u64,
    /// Of those, calls that took at least the slow-call duration.
    pub slow: u64,
}

/// A breaker's lifetime counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed, timeouts not included.
    pub failures: u64,
    /// Calls given up at the breaker's timeout.
    pub timeouts: u64,
    /// Calls whose outcome counted neither way.
    pub ignored: u64,
    /// Calls refused without being sent.
    pub rejected: u64,
    /// Fallbacks run.
    pub fallbacks: u64,
    /// Timed-out calls that later succeeded; their result was discarded.
    pub late_successes: u64,
    /// Timed-out calls that later failed; their result was discarded.
    pub late_failures: u64,
}

/// Latency percentiles over the last one to two windows, each given as the
/// upper edge of its histogram bucket (within 25 % above the truth).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// Calls measured.
    pub count: u64,
    /// Median.
    pub p50: Option<Duration>,
    /// 90th percentile.
    pub p90: Option<Duration>,
    /// 99th percentile.
    pub p99: Option<Duration>,
}

/// How one finished call is to be counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Success,
    Failure,
    Timeout,
    Ignored,
}

/// One finished call, ready to record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Record {
    /// The closed generation whose window counts it, if any.
    pub(crate) window_gen: Option<u64>,
    /// When it ended, in clock nanoseconds.
    pub(crate) now: u64,
    pub(crate) verdict: Verdict,
    pub(crate) slow: bool,
    pub(crate) latency: Duration,
}

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    calls: u64,
    failures: u64,
    slow: u64,
}

#[derive(Debug)]
struct Latency {
    periods: [u64; 2],
    counts: [[u32; LATENCY_BUCKETS]; 2],
}

/// The epoch a stripe last wrote to, and the clock span it covers, so
/// that writes within one bucket's width divide nothing.
#[derive(Clone, Copy, Debug, Default)]
struct EpochCache {
    epoch: u64,
    start: u64,
    end: u64,
    slot: usize,
    period: u64,
}

#[derive(Debug)]
struct StripeData {
    cache: EpochCache,
    gen: u64,
    ring: Ring<Counts>,
    latency: Latency,
    totals: Totals,
}

/// One stripe, alone on its cache lines.
#[derive(Debug)]
#[repr(align(128))]
struct Stripe(Mutex<StripeData>);

/// The stripes of one breaker.
#[derive(Debug)]
pub(crate) struct Stats {
    stripes: Box<[Stripe]>,
    width_nanos: u64,
    buckets: u64,
}

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// A small number that differs between threads started one after another.
fn thread_index() -> usize {
    THREAD_INDEX.with(|cell| {
        let index = cell.get();
        if index != usize::MAX {
            return index;
        }
        let index = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
        cell.set(index);
        index
    })
}

/// Stripes per breaker: the machine's parallelism, rounded up to a power of
/// two, at most 16.
fn stripe_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

    *COUNT.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cores.next_power_of_two().min(16)
    })
}

impl Stats {
    // Limitation: every stripe keeps its own window and histogram, so a
    // breaker costs about 1.4 KiB per stripe (2.8 KiB on a 2-core machine,
    // 22 KiB on 16 cores) whether or not it is busy.
    pub(crate) fn new(clock: &EpochClock, buckets: u32) -> Self {
        let stripes = (0..stripe_count())
            .map(|_| Stripe(Mutex::new(StripeData::new(buckets))))
            .collect();

        Self {
            stripes,
            width_nanos: clock.width_nanos(),
            buckets: u64::from(buckets.max(1)),
        }
    }

    /// Bytes the stripes take, their rings included.
    pub(crate) fn heap_size(&self) -> usize {
        self.stripes
            .iter()
            .map(|s| std::mem::size_of::<Stripe>() + s.0.lock().ring.heap_size())
            .sum()
    }

    /// Counts a finished call; returns the epoch it fell in.
    pub(crate) fn record(&self, record: Record) -> u64 {
        let mut stripe = self.stripe();
        let at = stripe.locate(record.now, self.width_nanos, self.buckets);

        if let Some(gen) = record.window_gen {
            stripe.count_in_window(gen, at, &record);
        }
        stripe.count_in_totals(record.verdict);
        if record.verdict != Verdict::Ignored {
            stripe.latency.record(at.period, record.latency);
        }

        at.epoch
    }

    /// Changes lifetime totals that need no window, such as rejections.
    pub(crate) fn count(&self, change: impl FnOnce(&mut Totals)) {
        change(&mut self.stripe().totals);
    }

    /// The window of closed generation `gen`, as of `epoch`.
    pub(crate) fn window(&self, gen: u64, epoch: u64) -> WindowCounts {
        let mut sum = WindowCounts::default();

        for stripe in self.stripes.iter() {
            let data = stripe.0.lock();
            if data.gen != gen {
                continue;
            }
            for counts in data.ring.live(epoch) {
                sum.calls += counts.calls;
                sum.failures += counts.failures;
                sum.slow += counts.slow;
            }
        }

        sum
    }

    /// Lifetime totals.
    pub(crate) fn totals(&self) -> Totals {
        let mut sum = Totals::default();

        for stripe in self.stripes.iter() {
            let t = stripe.0.lock().totals;
            sum.successes += t.successes;
            sum.failures += t.failures;
            sum.timeouts += t.timeouts;
            sum.ignored += t.ignored;
            sum.rejected += t.rejected;
            sum.fallbacks += t.fallbacks;
            sum.late_successes += t.late_successes;
            sum.late_failures += t.late_failures;
        }

        sum
    }

    /// Latency percentiles as of window period `period`.
    pub(crate) fn percentiles(&self, period: u64) -> Percentiles {
        let mut merged = [0u64; LATENCY_BUCKETS];

        for stripe in self.stripes.iter() {
            stripe.0.lock().latency.add_to(period, &mut merged);
        }

        percentiles(&merged)
    }

    fn stripe(&self) -> MutexGuard<'_, StripeData> {
        let index = thread_index() & (self.stripes.len() - 1);

        self.stripes[index].0.lock()
    }
}

impl StripeData {
    fn new(buckets: u32) -> Self {
        Self {
            cache: EpochCache::default(),
            gen: 0,
            ring: Ring::new(buckets),
            latency: Latency::new(),
            totals: Totals::default(),
        }
    }

    /// The epoch of clock nanosecond `now`.
    fn locate(&mut self, now: u64, width: u64, buckets: u64) -> EpochCache {
        let cached = self.cache;
        if cached.start <= now && now < cached.end {
            return cached;
        }

        let epoch = now / width;
        let start = epoch * width;
        self.cache = EpochCache {
            epoch,
            start,
            end: start.saturating_add(width),
            slot: (epoch % buckets) as usize,
            period: epoch / buckets,
        };
        self.cache
    }

    fn count_in_window(&mut self, gen: u64, at: EpochCache, record: &Record) {
        if self.gen < gen {
            // A new closed generation starts with an empty window.
            self.ring.clear();
            self.gen = gen;
        }
        if self.gen != gen || record.verdict == Verdict::Ignored {
            return;
        }
        let Some(counts) = self.ring.bucket_at(at.slot, at.epoch) else {
            return;
        };

        counts.calls += 1;
        if matches!(record.verdict, Verdict::Failure | Verdict::Timeout) {
            counts.failures += 1;
        }
        if record.slow {
            counts.slow += 1;
        }
    }

    fn count_in_totals(&mut self, verdict: Verdict) {
        let t = &mut self.totals;

        match verdict {
            Verdict::Success => t.successes += 1,
            Verdict::Failure => t.failures += 1,
            Verdict::Timeout => t.timeouts += 1,
            Verdict::Ignored => t.ignored += 1,
        }
    }
}

impl Latency {
    fn new() -> Self {
        Self {
            periods: [u64::MAX; 2],
            counts: [[0; LATENCY_BUCKETS]; 2],
        }
    }

    fn record(&mut self, period: u64, latency: Duration) {
        let slot = (period % 2) as usize;
        if self.periods[slot] != period {
            self.periods[slot] = period;
            self.counts[slot] = [0; LATENCY_BUCKETS];
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let count = &mut self.counts[slot][bucket_of(micros)];

        *count = count.saturating_add(1);
    }

    /// Adds the counts of `period` and the one before it to `sum`.
    fn add_to(&self, period: u64, sum: &mut [u64; LATENCY_BUCKETS]) {
        for (tag, counts) in self.periods.iter().zip(&self.counts) {
            if *tag > period || period - *tag > 1 {
                continue;
            }
            for (total, count) in sum.iter_mut().zip(counts) {
                *total += u64::from(*count);
            }
        }
    }
}

/// The histogram bucket of a latency in microseconds.
fn bucket_of(micros: u64) -> usize {
    if micros < 8 {
        return micros as usize;
    }
    let msb = 63 - micros.leading_zeros() as usize;
    if msb > 28 {
        return LATENCY_BUCKETS - 1;
    }
    let sub = ((micros >> (msb - 2)) & 3) as usize;

    8 + (msb - 3) * 4 + sub
}

/// The largest latency, in microseconds, that falls in `bucket`.
fn upper_edge(bucket: usize) -> u64 {
    if bucket < 8 {
        return bucket as u64;
    }
    let step = bucket - 8;
    let shift = step / 4 + 1;
    let lower = (4 + (step % 4) as u64) << shift;

    lower + (1 << shift) - 1
}

fn percentiles(counts: &[u64; LATENCY_BUCKETS]) -> Percentiles {
    let count: u64 = counts.iter().sum();
    let at = |q_percent: u64| quantile(counts, count, q_percent);

    Percentiles {
        count,
        p50: at(50),
        p90: at(90),
        p99: at(99),
    }
}

/// The upper edge of the bucket holding the `q_percent` quantile.
fn quantile(counts: &[u64], total: u64, q_percent: u64) -> Option<Duration> {
    if total == 0 {
        return None;
    }
    let rank = (total * q_percent).div_ceil(100).max(1);
    let mut seen = 0;

    for (bucket, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(Duration::from_micros(upper_edge(bucket)));
        }
    }

    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_first_buckets_are_exact() {
        for micros in 0..8 {
            assert_eq!(upper_edge(bucket_of(micros)), micros);
        }
        assert_eq!(bucket_of(8), 8);
        assert_eq!(upper_edge(8), 9);
        assert_eq!(upper_edge(bucket_of(16)), 19);
    }

    #[test]
    fn percentiles_pick_the_right_buckets() {
        let mut latency = Latency::new();
        for ms in 1..=100 {
            latency.record(0, Duration::from_millis(ms));
        }
        let mut merged = [0; LATENCY_BUCKETS];
        latency.add_to(0, &mut merged);

        let p = percentiles(&merged);

        assert_eq!(p.count, 100);
        let p50 = p.p50.unwrap();
        assert!(p50 >= Duration::from_millis(50), "{p50:?}");
        assert!(p50 <= Duration::from_micros(62_500), "{p50:?}");
        assert!(p.p99.unwrap() >= Duration::from_millis(99));
    }

    #[test]
    fn latency_older_than_two_periods_is_forgotten() {
        let mut latency = Latency::new();
        latency.record(3, Duration::from_millis(1));
        latency.record(4, Duration::from_millis(1));

        let mut at_4 = [0; LATENCY_BUCKETS];
        let mut at_6 = [0; LATENCY_BUCKETS];
        latency.add_to(4, &mut at_4);
        latency.add_to(6, &mut at_6);

        assert_eq!(at_4.iter().sum::<u64>(), 2);
        assert_eq!(at_6.iter().sum::<u64>(), 0);
    }

    proptest! {
        /// The cached epoch always equals the plain division, whatever
        /// order the instants come in.
        #[test]
        fn located_epochs_match_division(
            width in 1u64..5_000,
            nows in proptest::collection::vec(0u64..1_000_000, 1..100),
        ) {
            let mut stripe = StripeData::new(10);

            for now in nows {
                let at = stripe.locate(now, width, 10);
                prop_assert_eq!(at.epoch, now / width);
                prop_assert_eq!(at.slot as u64, (now / width) % 10);
                prop_assert_eq!(at.period, now / width / 10);
            }
        }

        /// Every value lands in the bucket whose edges hold it, and
        /// buckets are ordered.
        #[test]
        fn buckets_hold_their_values(micros in 0u64..(1 << 29)) {
            let bucket = bucket_of(micros);

            prop_assert!(micros <= upper_edge(bucket));
            if bucket > 0 {
                prop_assert!(micros > upper_edge(bucket - 1));
            }
            // Within a quarter of the value above it.
            prop_assert!(upper_edge(bucket) - micros <= micros / 4 + 1);
        }
    }
}
