//! The breaker's state machine, shared by the plain API and the tower
//! service.
//!
//! The fast path reads one atomic word (state and generation) to admit a
//! call and writes only to the calling thread's stripe to record it. Every
//! transition happens under a short lock, on a call, computed from tokio's
//! clock: there is no timer and no background task, so an idle breaker
//! costs only its memory.
//!
//! Each transition starts a new generation. A call remembers the
//! generation that admitted it, and its result counts only while that
//! generation lasts: a call admitted before the breaker opened cannot
//! close it, nor pollute the next closed window.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::config::Settings;
use super::event::{BreakerEvent, Events, OpenCause};
use super::stats::{Record, Stats, Verdict};
use super::{BreakerOpen, BreakerState, Outcome};
use crate::window::EpochClock;

/// Bits of the state word that hold the state; the rest is the generation.
const STATE_BITS: u32 = 3;

/// What a call was admitted as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Closed: counted in the window.
    Normal,
    /// Half-open: one of the trial calls.
    Trial,
    /// Disabled: passed through, counted nowhere but the totals.
    Passthrough,
}

/// A call's right to go through, and the generation that gave it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawPermit {
    admission: Admission,
    gen: u64,
}

/// The shared state of one breaker.
pub(crate) struct Core {
    pub(crate) name: Arc<str>,
    pub(crate) settings: Settings,
    pub(crate) stats: Stats,
    pub(crate) events: Events,
    clock: EpochClock,
    /// `generation << STATE_BITS | state`.
    word: AtomicU64,
    /// When an open breaker lets a trial through, in clock nanoseconds.
    reopen_at: AtomicU64,
    /// `generation (low 32 bits) << 32 | trials left << 16 | successes`.
    trial: AtomicU64,
    /// The last check found the rate over its threshold with too few calls.
    armed: AtomicBool,
    /// One more than the epoch of the last failure or slow call; 0 for none.
    last_bad: AtomicU64,
    /// The epoch of the last check.
    last_check: AtomicU64,
    control: Mutex<Control>,
}

/// What only transitions touch.
#[derive(Debug, Default)]
struct Control {
    /// Times opened since the breaker last closed.
    opens: u32,
}

impl Core {
    pub(crate) fn new(name: Arc<str>, settings: Settings) -> Self {
        let clock = EpochClock::new(Instant::now(), settings.window, settings.buckets);

        Self {
            stats: Stats::new(&clock, settings.buckets),
            events: Events::new(name.clone()),
            name,
            settings,
            clock,
            word: AtomicU64::new(pack(BreakerState::Closed, 0)),
            reopen_at: AtomicU64::new(0),
            trial: AtomicU64::new(0),
            armed: AtomicBool::new(false),
            last_bad: AtomicU64::new(0),
            last_check: AtomicU64::new(0),
            control: Mutex::new(Control::default()),
        }
    }

    /// Admits a call or refuses it.
    pub(crate) fn acquire(&self) -> Result<RawPermit, BreakerOpen> {
        loop {
            let word = self.word.load(Ordering::Acquire);
            let (state, gen) = unpack(word);
            let permit = |admission| Ok(RawPermit { admission, gen });

            match state {
                BreakerState::Closed => return permit(Admission::Normal),
                BreakerState::Disabled => return permit(Admission::Passthrough),
                BreakerState::ForcedOpen => return Err(self.reject(state, None)),
                // Open: refuse until the reset timeout passes, then move to
                // half-open and try again as a half-open call.
                BreakerState::Open => {
                    if let Some(wait) = self.open_for() {
                        return Err(self.reject(state, Some(wait)));
                    }
                    self.half_open(word);
                }
                // Half-open: a trial if one is left, else refuse; if the
                // generation ended meanwhile, read the new state.
                BreakerState::HalfOpen => match self.take_trial(gen) {
                    Some(true) => return permit(Admission::Trial),
                    Some(false) => return Err(self.reject(state, None)),
                    None => continue,
                },
            }
        }
    }

    /// Records a call that ran to an end, `start` to `end`.
    pub(crate) fn complete(
        &self,
        permit: RawPermit,
        outcome: Outcome,
        start: Instant,
        end: Instant,
    ) {
        let verdict = match outcome {
            Outcome::Success => Verdict::Success,
            Outcome::Failure => Verdict::Failure,
            Outcome::Ignored => Verdict::Ignored,
        };
        let latency = end.saturating_duration_since(start);

        let (epoch, slow) = self.record(permit, verdict, latency, end);
        match verdict {
            Verdict::Success => self.events.emit(BreakerEvent::Success { latency }),
            Verdict::Failure => self.events.emit(BreakerEvent::Failure { latency }),
            _ => {}
        }
        self.after(permit, verdict, slow, epoch);
    }

    /// Records a call given up at the breaker's timeout.
    pub(crate) fn timed_out(
        &self,
        permit: RawPermit,
        limit: Duration,
        start: Instant,
        end: Instant,
    ) {
        let latency = end.saturating_duration_since(start);

        let (epoch, slow) = self.record(permit, Verdict::Timeout, latency, end);
        self.events.emit(BreakerEvent::Timeout { limit });
        self.after(permit, Verdict::Timeout, slow, epoch);
    }

    /// A call was dropped before it finished: it says nothing, but a trial
    /// it held goes back.
    pub(crate) fn abandon(&self, permit: RawPermit) {
        tracing::trace!(breaker = &*self.name, "Call dropped before it finished");

        if permit.admission == Admission::Trial {
            self.release_trial(permit.gen);
        }
    }

    /// A timed-out call finished after all; its result is only counted.
    pub(crate) fn late(&self, outcome: Outcome) {
        self.stats.count(|t| match outcome {
            Outcome::Failure => t.late_failures += 1,
            _ => t.late_successes += 1,
        });
        self.events.emit(BreakerEvent::LateResult { outcome });
    }

    /// A fallback ran.
    pub(crate) fn fallback_ran(&self) {
        self.stats.count(|t| t.fallbacks += 1);
        self.events.emit(BreakerEvent::Fallback);
    }

    /// The state now; an open breaker whose reset timeout passed already
    /// reads half-open, though it moves only on the next call.
    pub(crate) fn state(&self) -> BreakerState {
        let (state, _) = unpack(self.word.load(Ordering::Acquire));

        if state == BreakerState::Open && self.open_for().is_none() {
            return BreakerState::HalfOpen;
        }
        state
    }

    /// How long an open breaker stays open, `None` once it may try.
    pub(crate) fn open_for(&self) -> Option<Duration> {
        let now = self.clock.nanos(Instant::now());
        let at = self.reopen_at.load(Ordering::Acquire);

        (now < at).then(|| Duration::from_nanos(at - now))
    }

    /// The closed window now (empty unless closed).
    pub(crate) fn window(&self) -> super::WindowCounts {
        let (_, gen) = unpack(self.word.load(Ordering::Acquire));

        self.stats.window(gen, self.clock.epoch(Instant::now()))
    }

    pub(crate) fn percentiles(&self) -> super::Percentiles {
        let epoch = self.clock.epoch(Instant::now());

        self.stats
            .percentiles(epoch / u64::from(self.settings.buckets))
    }

    /// An operator's order: disabled, forced open, or closed afresh.
    pub(crate) fn force(&self, state: BreakerState) {
        let mut control = self.control.lock();
        let (_, gen) = unpack(self.word.load(Ordering::Acquire));

        control.opens = 0;
        self.armed.store(false, Ordering::Relaxed);
        self.word.store(pack(state, gen + 1), Ordering::Release);
        drop(control);

        self.events.emit(BreakerEvent::Forced { state });
    }

    /// Counts a finished call; returns its epoch and whether it was slow.
    fn record(
        &self,
        permit: RawPermit,
        verdict: Verdict,
        latency: Duration,
        end: Instant,
    ) -> (u64, bool) {
        let slow = verdict != Verdict::Ignored && latency >= self.settings.slow_call;
        let normal = permit.admission == Admission::Normal;

        let epoch = self.stats.record(Record {
            window_gen: normal.then_some(permit.gen),
            now: self.clock.nanos(end),
            verdict,
            slow,
            latency,
        });

        (epoch, slow)
    }

    /// The transition a finished call may cause.
    fn after(&self, permit: RawPermit, verdict: Verdict, slow: bool, epoch: u64) {
        match permit.admission {
            Admission::Normal => self.after_normal(permit.gen, verdict, slow, epoch),
            Admission::Trial => self.after_trial(permit.gen, verdict),
            Admission::Passthrough => {}
        }
    }

    fn after_normal(&self, gen: u64, verdict: Verdict, slow: bool, epoch: u64) {
        let bad = slow || matches!(verdict, Verdict::Failure | Verdict::Timeout);

        if bad {
            self.last_bad.fetch_max(epoch + 1, Ordering::Relaxed);
            self.check(gen, epoch);
        } else if verdict == Verdict::Success && self.success_may_trip(epoch) {
            self.check(gen, epoch);
        }
    }

    /// Within one epoch a success can only lower the rates, except when
    /// it brings the window up to its minimum of calls. Across epochs old
    /// buckets leave and the rates may rise, so the first success of an
    /// epoch with recent failures checks again.
    fn success_may_trip(&self, epoch: u64) -> bool {
        if self.armed.load(Ordering::Relaxed) {
            return true;
        }
        let last_bad = self.last_bad.load(Ordering::Relaxed);
        let recent = last_bad != 0 && epoch < last_bad - 1 + u64::from(self.settings.buckets);

        recent && self.last_check.load(Ordering::Relaxed) < epoch
    }

    /// Opens the breaker if the window of `gen` says so.
    fn check(&self, gen: u64, epoch: u64) {
        self.last_check.fetch_max(epoch, Ordering::Relaxed);
        let w = self.stats.window(gen, epoch);
        let s = &self.settings;
        let over = Settings::reaches(w.failures, w.calls, s.failure_ppm)
            || Settings::reaches(w.slow, w.calls, s.slow_ppm);

        if w.calls < s.min_calls {
            self.armed.store(over, Ordering::Relaxed);
            return;
        }
        if self.armed.load(Ordering::Relaxed) {
            self.armed.store(false, Ordering::Relaxed);
        }
        if over {
            self.open(pack(BreakerState::Closed, gen), OpenCause::Window(w));
        }
    }

    fn after_trial(&self, gen: u64, verdict: Verdict) {
        match verdict {
            Verdict::Success => self.trial_succeeded(gen),
            Verdict::Failure | Verdict::Timeout => {
                self.open(pack(BreakerState::HalfOpen, gen), OpenCause::TrialFailed);
            }
            Verdict::Ignored => self.release_trial(gen),
        }
    }

    /// Closed or half-open (as `expected` says) to open, re-arming the
    /// reset timer.
    fn open(&self, expected: u64, cause: OpenCause) {
        let mut control = self.control.lock();
        if self.word.load(Ordering::Acquire) != expected {
            return;
        }
        let (_, gen) = unpack(expected);

        control.opens = control.opens.saturating_add(1);
        let reopen_in = self.settings.reset_timeout_after(control.opens);
        let now = self.clock.nanos(Instant::now());
        let at = now.saturating_add(u64::try_from(reopen_in.as_nanos()).unwrap_or(u64::MAX));

        self.reopen_at.store(at, Ordering::Release);
        self.armed.store(false, Ordering::Relaxed);
        self.word
            .store(pack(BreakerState::Open, gen + 1), Ordering::Release);
        drop(control);

        self.events.emit(BreakerEvent::Opened { reopen_in, cause });
    }

    /// Open to half-open, once the reset timeout has passed.
    fn half_open(&self, seen: u64) {
        let control = self.control.lock();
        if self.word.load(Ordering::Acquire) != seen {
            return;
        }
        let gen = unpack(seen).1 + 1;

        let trials = u64::from(self.settings.trial_calls);
        let word = (trial_gen(gen) << 32) | (trials << 16);
        self.trial.store(word, Ordering::Release);
        self.word
            .store(pack(BreakerState::HalfOpen, gen), Ordering::Release);
        drop(control);

        self.events.emit(BreakerEvent::HalfOpened);
    }

    /// Half-open to closed, with an empty window.
    fn close(&self, gen: u64) {
        let mut control = self.control.lock();
        if self.word.load(Ordering::Acquire) != pack(BreakerState::HalfOpen, gen) {
            return;
        }

        control.opens = 0;
        self.armed.store(false, Ordering::Relaxed);
        self.word
            .store(pack(BreakerState::Closed, gen + 1), Ordering::Release);
        drop(control);

        self.events.emit(BreakerEvent::Closed);
    }

    /// Takes a trial of half-open generation `gen`: `Some(true)` if taken,
    /// `Some(false)` if none is left, `None` if `gen` is over.
    fn take_trial(&self, gen: u64) -> Option<bool> {
        let mut current = self.trial.load(Ordering::Acquire);

        loop {
            if current >> 32 != trial_gen(gen) {
                return None;
            }
            if left(current) == 0 {
                return Some(false);
            }
            let next = current - (1 << 16);
            match self.trial.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(true),
                Err(actual) => current = actual,
            }
        }
    }

    fn release_trial(&self, gen: u64) {
        self.update_trial(gen, |t| t + (1 << 16));
    }

    fn trial_succeeded(&self, gen: u64) {
        let Some(after) = self.update_trial(gen, |t| t + 1) else {
            return;
        };

        if after & 0xffff >= u64::from(self.settings.trial_calls) {
            self.close(gen);
        }
    }

    /// Applies `change` to the trial word while it belongs to `gen`, and
    /// returns the new word.
    fn update_trial(&self, gen: u64, change: impl Fn(u64) -> u64) -> Option<u64> {
        let mut current = self.trial.load(Ordering::Acquire);

        loop {
            if current >> 32 != trial_gen(gen) {
                return None;
            }
            let next = change(current);
            match self.trial.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(next),
                Err(actual) => current = actual,
            }
        }
    }

    fn reject(&self, state: BreakerState, retry_after: Option<Duration>) -> BreakerOpen {
        self.stats.count(|t| t.rejected += 1);
        self.events.emit(BreakerEvent::Rejected { state });

        BreakerOpen::new(self.name.clone(), state, retry_after)
    }
}

fn pack(state: BreakerState, gen: u64) -> u64 {
    (gen << STATE_BITS) | u64::from(state.code())
}

fn unpack(word: u64) -> (BreakerState, u64) {
    let state = BreakerState::from_code((word & 0b111) as u8);

    (state, word >> STATE_BITS)
}

fn trial_gen(gen: u64) -> u64 {
    gen & 0xffff_ffff
}

fn left(trial: u64) -> u64 {
    (trial >> 16) & 0xffff
}

/// A call's permit: settled by `complete` or `timed_out`, or, if dropped
/// unsettled (the call was cancelled), given back.
pub(crate) struct Permit<R: Deref<Target = Core>> {
    core: R,
    raw: RawPermit,
    settled: bool,
}

impl<R: Deref<Target = Core>> Permit<R> {
    pub(crate) fn new(core: R, raw: RawPermit) -> Self {
        Self {
            core,
            raw,
            settled: false,
        }
    }

    pub(crate) fn complete(mut self, outcome: Outcome, start: Instant, end: Instant) {
        self.settled = true;
        self.core.complete(self.raw, outcome, start, end);
    }

    pub(crate) fn timed_out(mut self, limit: Duration, start: Instant, end: Instant) {
        self.settled = true;
        self.core.timed_out(self.raw, limit, start, end);
    }
}

impl<R: Deref<Target = Core>> Drop for Permit<R> {
    fn drop(&mut self) {
        if !self.settled {
            self.core.abandon(self.raw);
        }
    }
}

impl<R: Deref<Target = Core>> std::fmt::Debug for Permit<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit").field("raw", &self.raw).finish()
    }
}
