//! One dependency behind the whole stack, through the plain async API:
//! retry around bulkhead around breaker, with an optional cached fallback.
//!
//! Each attempt takes a bulkhead slot, goes through the breaker (and its
//! call timeout) and is limited by the caller's deadline; between attempts
//! the retry policy, budget and deadline decide. Errors come back as one
//! [`Error`] enum.
//!
//! ```
//! use std::time::Duration;
//! use lectern_resilience::{
//!     Breaker, BreakerConfig, Bulkhead, Deadline, Dependency, Retry,
//!     RetryConfig,
//! };
//!
//! # async fn get_copy(id: u64) -> Result<String, std::io::Error> {
//! #     Ok(format!("copy {id}"))
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let books = Dependency::new(
//!     Breaker::new("book-service", BreakerConfig::default()),
//!     Retry::new("book-service", RetryConfig::default()),
//! )
//! .with_bulkhead(Bulkhead::new("book-service", 32, 64));
//!
//! let deadline = Deadline::after(Duration::from_secs(5));
//! let copy = books.call(true, Some(deadline), || get_copy(7)).await;
//! assert_eq!(copy.unwrap(), "copy 7");
//! # }
//! ```

use std::future::Future;

use parking_lot::Mutex;

use crate::breaker::{Breaker, Classify, ErrorsAreFailures};
use crate::bulkhead::Bulkhead;
use crate::deadline::Deadline;
use crate::error::{Error, Retryable};
use crate::fallback::{Answer, FallbackCache};
use crate::retry::Retry;

/// The resilience stack of one dependency.
#[derive(Clone, Debug)]
pub struct Dependency<C = ErrorsAreFailures> {
    breaker: Breaker<C>,
    retry: Retry,
    bulkhead: Option<Bulkhead>,
}

impl<C> Dependency<C> {
    /// Calls guarded by `breaker` and retried by `retry`.
    pub fn new(breaker: Breaker<C>, retry: Retry) -> Self {
        Self {
            breaker,
            retry,
            bulkhead: None,
        }
    }

    /// Each attempt also takes a slot in `bulkhead`.
    #[must_use]
    pub fn with_bulkhead(mut self, bulkhead: Bulkhead) -> Self {
        self.bulkhead = Some(bulkhead);
        self
    }

    /// The breaker.
    pub fn breaker(&self) -> &Breaker<C> {
        &self.breaker
    }

    /// The retry.
    pub fn retry(&self) -> &Retry {
        &self.retry
    }

    /// The bulkhead, if any.
    pub fn bulkhead(&self) -> Option<&Bulkhead> {
        self.bulkhead.as_ref()
    }

    /// Calls the dependency: `attempt` makes one attempt, and is called
    /// only once the bulkhead and the breaker let it through; `retry_safe`
    /// says whether the request may be sent twice (it is idempotent or
    /// carries an idempotency key).
    pub async fn call<F, Fut, T, E>(
        &self,
        retry_safe: bool,
        deadline: Option<Deadline>,
        attempt: F,
    ) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        C: Classify<T, E>,
        E: Retryable,
    {
        // Attempts run one after another, so the lock is never contended;
        // it only lets the call's future be `Send`.
        let attempt = Mutex::new(attempt);

        self.retry
            .run(retry_safe, deadline, || self.attempt(&attempt))
            .await
    }

    /// Like [`Dependency::call`], keeping each good answer in `cache`
    /// under `key` and serving the last one, marked stale, when the call
    /// fails for a reason that is the dependency's (refused, timed out,
    /// or a retryable error). An error that retrying cannot cure, such as
    /// "no such record", is returned as it is: the cache would be wrong.
    pub async fn call_cached<K, F, Fut, T, E>(
        &self,
        cache: &K,
        key: &str,
        retry_safe: bool,
        deadline: Option<Deadline>,
        attempt: F,
    ) -> Result<Answer<T, Error<E>>, Error<E>>
    where
        K: FallbackCache<T>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        C: Classify<T, E>,
        E: Retryable,
    {
        let cause = match self.call(retry_safe, deadline, attempt).await {
            Ok(value) => {
                if let Err(err) = cache.put(key, &value).await {
                    tracing::debug!(dependency = self.breaker.name(), %err, "Cache write failed");
                }
                return Ok(Answer::Fresh(value));
            }
            Err(cause) => cause,
        };

        if !serves_stale(&cause) {
            return Err(cause);
        }
        match cache.get(key).await {
            Ok(Some(cached)) => {
                self.breaker.record_fallback();
                Ok(Answer::Stale {
                    value: cached.value,
                    age: cached.age,
                    cause,
                })
            }
            Ok(None) => Err(cause),
            Err(err) => {
                tracing::debug!(dependency = self.breaker.name(), %err, "Cache read failed");
                Err(cause)
            }
        }
    }

    async fn attempt<F, Fut, T, E>(&self, attempt: &Mutex<F>) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        C: Classify<T, E>,
    {
        let make = || (attempt.lock())();

        match &self.bulkhead {
            Some(bulkhead) => bulkhead.run(self.breaker.call_with(make)).await?,
            None => self.breaker.call_with(make).await,
        }
    }
}

/// A stale answer stands in for a failure of the dependency, never for an
/// answer it gave.
fn serves_stale<E: Retryable>(err: &Error<E>) -> bool {
    match err {
        Error::Inner(inner) => inner.is_retryable(),
        _ => true,
    }
}
