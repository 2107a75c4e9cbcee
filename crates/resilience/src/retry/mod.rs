//! Retries with exponential backoff and full jitter, bounded by the number
//! of attempts, a retry budget, and the caller's deadline.
//!
//! Before each retry the policy is asked, in order:
//! - can it help? (the error is [`Retryable`], or the classifier says so);
//! - may this request be sent twice? (it is idempotent or carries an
//!   idempotency key: a [`RetrySafe`] predicate the caller supplies);
//! - are attempts left?
//! - how long to wait: the backoff, or the server's `Retry-After` if longer
//!   (one longer than `max_retry_after` is not waited for);
//! - can the retry still finish before the deadline? The wait plus
//!   `min_attempt_time` must fit in the time left;
//! - does the budget allow it? (asked last, so refused retries cost none).
//!
//! Each attempt is limited by `attempt_timeout` and by the deadline. When
//! the deadline cuts an attempt short the call ends with
//! [`DeadlineExceeded`]; when a retry is refused the last attempt's result
//! is returned as it was.
//!
//! ```
//! use std::time::Duration;
//! use lectern_resilience::{Deadline, Error, Retry, RetryConfig};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let retry = Retry::new("book-service", RetryConfig::default());
//! let deadline = Deadline::after(Duration::from_secs(5));
//!
//! let answer: Result<u32, Error<std::io::Error>> = retry
//!     .run(true, Some(deadline), || async { Ok(7) })
//!     .await;
//! assert_eq!(answer.unwrap(), 7);
//! # }
//! ```

mod future;
mod layer;
mod policy;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::Service;

pub use self::future::ResponseFuture;
pub use self::layer::RetryLayer;
pub use self::policy::{ErrorHints, RetryClassify, RetrySafe};
use crate::backoff::{Backoff, ExponentialBackoff};
use crate::budget::RetryBudget;
use crate::deadline::{Deadline, DeadlineExceeded};
use crate::error::{BoxError, RetryHint, Retryable};
use crate::timeout::{Elapsed, ExtractDeadline, Timed};

/// How a [`Retry`] behaves. Defaults: 3 attempts, backoff from 1 s
/// doubling to at most 10 s, no attempt timeout, `Retry-After` honoured up
/// to 30 s, a retry starts only with 10 ms left for it, no budget.
#[derive(Clone, Debug)]
pub struct RetryConfig {
    /// Attempts in all, the first included (at least one).
    pub max_attempts: u32,
    /// The wait between attempts.
    pub backoff: Arc<dyn Backoff>,
    /// Each attempt is given up after this long.
    pub attempt_timeout: Option<Duration>,
    /// A server asking for a longer wait than this is not retried.
    pub max_retry_after: Duration,
    /// A retry starts only if at least this much of the deadline is left
    /// after its wait: the least time an attempt could finish in.
    pub min_attempt_time: Duration,
    /// Shared limit on retries across all requests to the dependency.
    pub budget: Option<RetryBudget>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Arc::new(ExponentialBackoff::default()),
            attempt_timeout: None,
            max_retry_after: Duration::from_secs(30),
            min_attempt_time: Duration::from_millis(10),
            budget: None,
        }
    }
}

/// Counters of one [`Retry`] since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryStats {
    /// Requests started.
    pub requests: u64,
    /// Retries started.
    pub retries: u64,
    /// Retries the budget refused.
    pub budget_refusals: u64,
    /// Retries refused because they could not finish before the deadline.
    pub deadline_refusals: u64,
}

/// Retries calls to one dependency. Cloning it shares its counters.
#[derive(Clone, Debug)]
pub struct Retry {
    inner: Arc<Shared>,
}

/// What every clone of one [`Retry`] shares.
#[derive(Debug)]
pub(crate) struct Shared {
    name: Arc<str>,
    config: RetryConfig,
    requests: AtomicU64,
    retries: AtomicU64,
    budget_refusals: AtomicU64,
    deadline_refusals: AtomicU64,
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Wait(Duration),
    Stop,
}

impl Retry {
    /// Retries for the dependency `name` as `config` says.
    pub fn new(name: impl Into<Arc<str>>, config: RetryConfig) -> Self {
        let inner = Shared {
            name: name.into(),
            config,
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            budget_refusals: AtomicU64::new(0),
            deadline_refusals: AtomicU64::new(0),
        };

        Self {
            inner: Arc::new(inner),
        }
    }

    /// The dependency's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Counters since this retry was made.
    pub fn stats(&self) -> RetryStats {
        let i = &self.inner;

        RetryStats {
            requests: i.requests.load(Ordering::Relaxed),
            retries: i.retries.load(Ordering::Relaxed),
            budget_refusals: i.budget_refusals.load(Ordering::Relaxed),
            deadline_refusals: i.deadline_refusals.load(Ordering::Relaxed),
        }
    }

    /// A tower layer retrying the requests `retry_safe` approves.
    pub fn layer<P>(&self, retry_safe: P) -> RetryLayer<P> {
        RetryLayer::new(self.clone(), retry_safe)
    }

    /// Runs `attempt` until it succeeds or a retry is refused.
    ///
    /// `retry_safe` is the caller's word that the request may be sent
    /// twice (see [`RetrySafe`]); without it there is exactly one attempt.
    pub async fn run<F, Fut, T, E>(
        &self,
        retry_safe: bool,
        deadline: Option<Deadline>,
        mut attempt: F,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Retryable + From<Elapsed> + From<DeadlineExceeded>,
    {
        self.start_request();
        let mut attempts = 0;

        loop {
            let (limit, by_deadline) = self.attempt_limit(deadline);
            if by_deadline && limit.is_some_and(|l| l.is_zero()) {
                return Err(DeadlineExceeded::new().into());
            }
            attempts += 1;

            let err = match Timed::new(attempt(), limit, Instant::now()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(err)) => err,
                Err(_) if by_deadline => return Err(DeadlineExceeded::new().into()),
                Err(elapsed) => E::from(elapsed),
            };

            match self.decide(attempts, retry_safe, RetryHint::of(&err), deadline) {
                Decision::Wait(delay) => tokio::time::sleep(delay).await,
                Decision::Stop => return Err(err),
            }
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner
    }

    pub(crate) fn from_shared(inner: Arc<Shared>) -> Self {
        Self { inner }
    }

    /// Counts a request and pays its deposit into the budget.
    pub(crate) fn start_request(&self) {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);

        if let Some(budget) = &self.inner.config.budget {
            budget.deposit();
        }
    }

    /// The limit of the next attempt, and whether the deadline sets it.
    pub(crate) fn attempt_limit(&self, deadline: Option<Deadline>) -> (Option<Duration>, bool) {
        let own = self.inner.config.attempt_timeout;

        match (own, deadline.map(Deadline::remaining)) {
            (Some(own), Some(left)) if left < own => (Some(left), true),
            (Some(own), _) => (Some(own), false),
            (None, Some(left)) => (Some(left), true),
            (None, None) => (None, false),
        }
    }

    /// Whether to retry after `attempts` attempts, and after what wait.
    pub(crate) fn decide(
        &self,
        attempts: u32,
        retry_safe: bool,
        hint: RetryHint,
        deadline: Option<Deadline>,
    ) -> Decision {
        let config = &self.inner.config;
        let name = &*self.inner.name;

        if !hint.retryable || !retry_safe || attempts >= config.max_attempts {
            tracing::trace!(
                dependency = name,
                attempts,
                hint.retryable,
                retry_safe,
                "Not retrying"
            );
            return Decision::Stop;
        }

        let backoff = config.backoff.delay(attempts);
        let delay = match hint.after {
            Some(after) if after > config.max_retry_after => {
                tracing::debug!(dependency = name, ?after, "Retry-After too long");
                return Decision::Stop;
            }
            Some(after) => backoff.max(after),
            None => backoff,
        };

        if let Some(deadline) = deadline {
            let needed = delay.saturating_add(config.min_attempt_time);
            if needed > deadline.remaining() {
                self.inner.deadline_refusals.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(dependency = name, ?delay, "Retry would miss the deadline");
                return Decision::Stop;
            }
        }

        if let Some(budget) = &config.budget {
            if budget.try_withdraw().is_err() {
                self.inner.budget_refusals.fetch_add(1, Ordering::Relaxed);
                return Decision::Stop;
            }
        }

        self.inner.retries.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(dependency = name, attempts, ?delay, "Retrying");
        Decision::Wait(delay)
    }
}

/// A service whose calls are retried.
#[derive(Clone, Debug)]
pub struct RetryService<S, P, K = ErrorHints, D = crate::timeout::NoDeadline> {
    inner: S,
    retry: Retry,
    retry_safe: P,
    classify: K,
    deadline: D,
}

impl<S, P, K, D> RetryService<S, P, K, D> {
    /// Retries `inner`'s calls; see [`RetryLayer`] for the parts.
    pub fn new(inner: S, retry: Retry, retry_safe: P, classify: K, deadline: D) -> Self {
        Self {
            inner,
            retry,
            retry_safe,
            classify,
            deadline,
        }
    }
}

impl<S, P, K, D, Req> Service<Req> for RetryService<S, P, K, D>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    Req: Clone,
    P: RetrySafe<Req>,
    K: RetryClassify<S::Response> + Clone,
    D: ExtractDeadline<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, S::Future, K>;

    /// Always ready: each attempt waits for the inner service itself.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.retry.start_request();
        let retry_safe = self.retry_safe.is_retry_safe(&req);
        let deadline = self.deadline.deadline(&req);

        ResponseFuture::new(
            self.inner.clone(),
            req,
            self.retry.clone(),
            self.classify.clone(),
            retry_safe,
            deadline,
        )
    }
}
