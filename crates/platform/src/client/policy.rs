//! How calls to one neighbour are guarded: the settings of its circuit
//! breaker, retries and bulkhead, read from the environment, and the
//! stack built from them.
//!
//! Defaults follow the design: each attempt limited by the call timeout
//! (`LECTERN_CALL_TIMEOUT_MS`, 3 s, read by each service), the breaker
//! opens at 50 % failures over a 10 s window once it holds 5 calls, tries
//! one call again after 30 s; up to 3 attempts for requests that may be
//! sent twice, with backoff from 100 ms doubling to 1 s (full jitter) and
//! a budget of one retry per five requests plus ten a second; 32 calls in
//! flight and 64 waiting per neighbour.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use lectern_resilience::{
    Breaker, BreakerConfig, BreakerEvent, BreakerListener, BudgetConfig, Bulkhead, Classify,
    Dependency, ExponentialBackoff, Outcome, Retry, RetryBudget, RetryConfig,
};

use super::CallError;
use crate::config::{self, ConfigError, Lookup};

/// How long a retry-budget deposit or withdrawal counts.
const BUDGET_WINDOW: Duration = Duration::from_secs(10);

/// The settings of the stack in front of every neighbour.
#[derive(Debug, Clone, PartialEq)]
pub struct CallPolicy {
    /// `LECTERN_RETRY_MAX_ATTEMPTS`: attempts in all, the first included,
    /// for requests that may be sent twice (GET).
    pub max_attempts: u32,
    /// `LECTERN_RETRY_BACKOFF_MS`: the first wait's ceiling; it doubles.
    pub backoff_base: Duration,
    /// `LECTERN_RETRY_BACKOFF_MAX_MS`: the cap of the wait. A neighbour's
    /// `Retry-After` longer than this is not waited for: the caller gets
    /// it instead.
    pub backoff_max: Duration,
    /// `LECTERN_RETRY_BUDGET_RATIO`: retries allowed per request (0 to 1).
    pub budget_ratio: f64,
    /// `LECTERN_RETRY_BUDGET_MIN_PER_SEC`: retries allowed per second
    /// whatever the traffic.
    pub budget_min_per_sec: u32,
    /// `LECTERN_BREAKER_WINDOW_MS`: the breaker's rolling window.
    pub breaker_window: Duration,
    /// `LECTERN_BREAKER_MIN_CALLS`: calls the window must hold before the
    /// breaker may open.
    pub breaker_min_calls: u32,
    /// `LECTERN_BREAKER_FAILURE_RATE`: the failure rate that opens it.
    pub breaker_failure_rate: f64,
    /// `LECTERN_BREAKER_RESET_MS`: how long it stays open before a trial.
    pub breaker_reset: Duration,
    /// `LECTERN_BREAKER_TRIAL_CALLS`: trial calls in half-open; all must
    /// succeed to close.
    pub breaker_trial_calls: u16,
    /// `LECTERN_BULKHEAD_MAX_IN_FLIGHT`: calls at once per neighbour.
    pub max_in_flight: usize,
    /// `LECTERN_BULKHEAD_MAX_QUEUED`: calls waiting for a slot; more are
    /// refused at once.
    pub max_queued: usize,
}

impl Default for CallPolicy {
    fn default() -> Self {
        let breaker = BreakerConfig::default();

        Self {
            max_attempts: 3,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            budget_ratio: 0.2,
            budget_min_per_sec: 10,
            breaker_window: breaker.window,
            breaker_min_calls: breaker.min_calls,
            breaker_failure_rate: breaker.failure_rate,
            breaker_reset: breaker.reset_timeout,
            breaker_trial_calls: breaker.trial_calls,
            max_in_flight: 32,
            max_queued: 64,
        }
    }
}

impl CallPolicy {
    /// Reads the `LECTERN_RETRY_*`, `LECTERN_BREAKER_*` and
    /// `LECTERN_BULKHEAD_*` variables from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&config::from_env)
    }

    /// The same variables from any source.
    pub fn from_vars(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let d = Self::default();

        let policy = Self {
            max_attempts: positive(lookup, "LECTERN_RETRY_MAX_ATTEMPTS", d.max_attempts)?,
            backoff_base: config::millis_or(lookup, "LECTERN_RETRY_BACKOFF_MS", d.backoff_base)?,
            backoff_max: config::millis_or(lookup, "LECTERN_RETRY_BACKOFF_MAX_MS", d.backoff_max)?,
            budget_ratio: config::rate_or(lookup, "LECTERN_RETRY_BUDGET_RATIO", d.budget_ratio)?,
            budget_min_per_sec: config::var_or(
                lookup,
                "LECTERN_RETRY_BUDGET_MIN_PER_SEC",
                d.budget_min_per_sec,
            )?,
            breaker_window: config::millis_or(
                lookup,
                "LECTERN_BREAKER_WINDOW_MS",
                d.breaker_window,
            )?,
            breaker_min_calls: positive(lookup, "LECTERN_BREAKER_MIN_CALLS", d.breaker_min_calls)?,
            breaker_failure_rate: failure_rate(lookup, d.breaker_failure_rate)?,
            breaker_reset: config::millis_or(lookup, "LECTERN_BREAKER_RESET_MS", d.breaker_reset)?,
            breaker_trial_calls: positive(
                lookup,
                "LECTERN_BREAKER_TRIAL_CALLS",
                d.breaker_trial_calls,
            )?,
            max_in_flight: positive(lookup, "LECTERN_BULKHEAD_MAX_IN_FLIGHT", d.max_in_flight)?,
            max_queued: config::var_or(lookup, "LECTERN_BULKHEAD_MAX_QUEUED", d.max_queued)?,
        };
        Ok(policy)
    }

    /// The stack guarding calls to `dependency`, each attempt limited to
    /// `call_timeout`; its breaker's changes of state are logged.
    pub(crate) fn stack(
        &self,
        dependency: &'static str,
        call_timeout: Duration,
    ) -> Dependency<NeighbourFaults> {
        let breaker = Breaker::new(dependency, self.breaker_config(call_timeout));
        breaker.listen(Arc::new(LogTransitions));

        let breaker = breaker.classify_with(NeighbourFaults);
        let retry = Retry::new(dependency, self.retry_config());
        let bulkhead = Bulkhead::new(dependency, self.max_in_flight, self.max_queued);

        Dependency::new(breaker, retry).with_bulkhead(bulkhead)
    }

    fn breaker_config(&self, call_timeout: Duration) -> BreakerConfig {
        BreakerConfig {
            window: self.breaker_window,
            min_calls: self.breaker_min_calls,
            failure_rate: self.breaker_failure_rate,
            call_timeout: Some(call_timeout),
            reset_timeout: self.breaker_reset,
            trial_calls: self.breaker_trial_calls,
            ..BreakerConfig::default()
        }
    }

    fn retry_config(&self) -> RetryConfig {
        let backoff = ExponentialBackoff::new(self.backoff_base, self.backoff_max);
        let budget = RetryBudget::new(BudgetConfig {
            ratio: self.budget_ratio,
            min_per_sec: self.budget_min_per_sec,
            ttl: BUDGET_WINDOW,
        });

        RetryConfig {
            max_attempts: self.max_attempts,
            backoff: Arc::new(backoff),
            // The breaker's call timeout limits each attempt.
            attempt_timeout: None,
            max_retry_after: self.backoff_max,
            budget: Some(budget),
            ..RetryConfig::default()
        }
    }
}

/// A failure rate above 0 and at most 1.
fn failure_rate(lookup: Lookup<'_>, default: f64) -> Result<f64, ConfigError> {
    let name = "LECTERN_BREAKER_FAILURE_RATE";
    let rate = config::rate_or(lookup, name, default)?;

    if rate == 0.0 {
        return Err(ConfigError::invalid(name, "0", "must be above 0"));
    }
    Ok(rate)
}

/// A whole number above 0 from `name`, or `default`.
fn positive<T>(lookup: Lookup<'_>, name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr + Default + PartialEq,
    T::Err: std::fmt::Display,
{
    let value = config::var_or(lookup, name, default)?;

    if value == T::default() {
        return Err(ConfigError::invalid(name, "0", "must be above 0"));
    }
    Ok(value)
}

/// What counts against a neighbour: every failure but a 4xx answer (other
/// than 429), which says the request was wrong, not that the neighbour is.
#[derive(Debug, Clone, Copy, Default)]
pub struct NeighbourFaults;

impl<T> Classify<T, CallError> for NeighbourFaults {
    fn classify(&self, result: &Result<T, CallError>) -> Outcome {
        match result {
            Err(error) if !error.is_rejection() => Outcome::Failure,
            _ => Outcome::Success,
        }
    }
}

/// Logs a breaker's changes of state: operators act on them.
struct LogTransitions;

impl BreakerListener for LogTransitions {
    fn on_event(&self, breaker: &str, event: &BreakerEvent) {
        match event {
            BreakerEvent::Opened { reopen_in, .. } => tracing::warn!(
                event.action = "breaker-opened",
                dependency = breaker,
                breaker.reopen_in_ms = reopen_in.as_millis() as u64,
                "Circuit breaker for {breaker} opened: calls fail fast"
            ),
            BreakerEvent::HalfOpened => tracing::info!(
                event.action = "breaker-half-open",
                dependency = breaker,
                "Circuit breaker for {breaker} lets a trial call through"
            ),
            BreakerEvent::Closed => tracing::info!(
                event.action = "breaker-closed",
                dependency = breaker,
                "Circuit breaker for {breaker} closed: calls go through again"
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<CallPolicy, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        CallPolicy::from_vars(&|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_design() {
        let policy = read(&[]).unwrap();

        assert_eq!(policy, CallPolicy::default());
        assert_eq!(policy.breaker_window, Duration::from_secs(10));
        assert_eq!(policy.breaker_min_calls, 5);
        assert_eq!(policy.breaker_failure_rate, 0.5);
        assert_eq!(policy.breaker_reset, Duration::from_secs(30));
        assert_eq!(policy.breaker_trial_calls, 1);
    }

    #[test]
    fn every_variable_is_read() {
        let policy = read(&[
            ("LECTERN_RETRY_MAX_ATTEMPTS", "1"),
            ("LECTERN_RETRY_BACKOFF_MS", "5"),
            ("LECTERN_RETRY_BACKOFF_MAX_MS", "50"),
            ("LECTERN_RETRY_BUDGET_RATIO", "0.5"),
            ("LECTERN_RETRY_BUDGET_MIN_PER_SEC", "0"),
            ("LECTERN_BREAKER_WINDOW_MS", "2000"),
            ("LECTERN_BREAKER_MIN_CALLS", "2"),
            ("LECTERN_BREAKER_FAILURE_RATE", "0.75"),
            ("LECTERN_BREAKER_RESET_MS", "1500"),
            ("LECTERN_BREAKER_TRIAL_CALLS", "3"),
            ("LECTERN_BULKHEAD_MAX_IN_FLIGHT", "4"),
            ("LECTERN_BULKHEAD_MAX_QUEUED", "0"),
        ])
        .unwrap();

        let expected = CallPolicy {
            max_attempts: 1,
            backoff_base: Duration::from_millis(5),
            backoff_max: Duration::from_millis(50),
            budget_ratio: 0.5,
            budget_min_per_sec: 0,
            breaker_window: Duration::from_secs(2),
            breaker_min_calls: 2,
            breaker_failure_rate: 0.75,
            breaker_reset: Duration::from_millis(1500),
            breaker_trial_calls: 3,
            max_in_flight: 4,
            max_queued: 0,
        };
        assert_eq!(policy, expected);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("LECTERN_RETRY_MAX_ATTEMPTS", "0"),
            ("LECTERN_RETRY_BACKOFF_MS", "0"),
            ("LECTERN_RETRY_BUDGET_RATIO", "2"),
            ("LECTERN_BREAKER_WINDOW_MS", "ten"),
            ("LECTERN_BREAKER_MIN_CALLS", "0"),
            ("LECTERN_BREAKER_FAILURE_RATE", "0"),
            ("LECTERN_BREAKER_RESET_MS", "-1"),
            ("LECTERN_BREAKER_TRIAL_CALLS", "0"),
            ("LECTERN_BULKHEAD_MAX_IN_FLIGHT", "0"),
        ] {
            let error = read(&[(name, value)]).unwrap_err();
            assert!(error.to_string().contains(name), "{name}: {error}");
        }
    }

    #[test]
    fn a_4xx_does_not_count_against_the_neighbour() {
        let status = |status| -> Result<(), CallError> {
            Err(CallError::Status {
                dependency: "x",
                status,
                retry_after: None,
            })
        };

        assert_eq!(NeighbourFaults.classify(&status(404)), Outcome::Success);
        assert_eq!(NeighbourFaults.classify(&status(429)), Outcome::Failure);
        assert_eq!(NeighbourFaults.classify(&status(500)), Outcome::Failure);
        assert_eq!(NeighbourFaults.classify(&Ok(())), Outcome::Success);
    }
}
