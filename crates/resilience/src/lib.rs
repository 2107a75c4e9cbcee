//! Fault tolerance for calls to a neighbour: circuit breaker, retry with
//! backoff and a budget, timeouts and deadlines, bulkhead, fallback cache.
//!
//! Every piece comes twice: as a tower layer (service, layer, future and
//! error, each small, as in tower itself) and as a plain async API that
//! wraps any future. Decisions are policies a caller can replace: which
//! results count as failures ([`Classify`]), which requests may be sent
//! twice ([`RetrySafe`]), which results are worth a retry
//! ([`RetryClassify`]), how long to wait ([`Backoff`]).
//!
//! This crate knows nothing of HTTP routes or of libraries. Time comes
//! from tokio's clock, so tests pause and advance it; nothing here owns a
//! timer or a task while idle. It logs only at debug and trace.
//!
//! Every failure has its own small error type that says whether trying
//! again can help ([`Retryable`]); the plain API gathers them in [`Error`],
//! the tower layers box them ([`BoxError`]) and [`hint_of`] reads the flag
//! back.
//!
//! # Wrapping an async call
//!
//! ```
//! use std::time::Duration;
//! use lectern_resilience::{
//!     Breaker, BreakerConfig, Deadline, Dependency, Error, Retry,
//!     RetryConfig,
//! };
//!
//! # async fn count_loans(book: u64) -> Result<u32, std::io::Error> { Ok(2) }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let loans = Dependency::new(
//!     Breaker::new("borrowing-service", BreakerConfig::default()),
//!     Retry::new("borrowing-service", RetryConfig::default()),
//! );
//!
//! let deadline = Deadline::after(Duration::from_secs(2));
//! let active: Result<u32, Error<std::io::Error>> =
//!     loans.call(true, Some(deadline), || count_loans(42)).await;
//! assert_eq!(active.unwrap(), 2);
//! # }
//! ```
//!
//! # Applying the tower layers
//!
//! Outermost first: the request's deadline, retries, the bulkhead, the
//! breaker (with its own call timeout), then each attempt's timeout.
//!
//! ```
//! use std::time::Duration;
//! use lectern_resilience::{
//!     Breaker, BreakerConfig, Bulkhead, Deadline, Retry, RetryConfig,
//!     TimeoutLayer,
//! };
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! #[derive(Clone)]
//! struct Lookup { id: u64, deadline: Deadline }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let breaker = Breaker::new("book-service", BreakerConfig::default());
//! let retry = Retry::new("book-service", RetryConfig::default());
//! let bulkhead = Bulkhead::new("book-service", 32, 64);
//! let deadline_of = |r: &Lookup| Some(r.deadline);
//!
//! let svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::deadline_only(deadline_of))
//!     .layer(retry.layer(|_: &Lookup| true).deadline(deadline_of))
//!     .layer(bulkhead.layer())
//!     .layer(breaker.layer())
//!     .layer(TimeoutLayer::new(Duration::from_secs(1)))
//!     .service(service_fn(|r: Lookup| async move {
//!         Ok::<_, std::io::Error>(r.id)
//!     }));
//!
//! let deadline = Deadline::after(Duration::from_secs(5));
//! let id = svc.oneshot(Lookup { id: 9, deadline }).await.unwrap();
//! assert_eq!(id, 9);
//! # }
//! ```

pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod bulkhead;
pub mod deadline;
pub mod dependency;
pub mod error;
pub mod fallback;
pub mod metrics;
pub mod retry;
pub mod timeout;
mod window;

pub use self::backoff::{Backoff, ExponentialBackoff};
pub use self::breaker::{
    Breaker, BreakerConfig, BreakerEvent, BreakerLayer, BreakerListener, BreakerOpen,
    BreakerSnapshot, BreakerState, Classify, ErrorsAreFailures, Outcome,
    RetryableErrorsAreFailures,
};
pub use self::budget::{BudgetConfig, BudgetExhausted, RetryBudget};
pub use self::bulkhead::{Bulkhead, BulkheadFull, BulkheadLayer};
pub use self::deadline::{Deadline, DeadlineExceeded, InvalidDeadline, DEADLINE_HEADER};
pub use self::dependency::Dependency;
pub use self::error::{hint_of, BoxError, Error, RetryHint, Retryable};
pub use self::fallback::{Answer, Cached, FallbackCache, FallbackLayer, MemoryCache};
pub use self::retry::{Retry, RetryClassify, RetryConfig, RetryLayer, RetrySafe, RetryStats};
pub use self::timeout::{Elapsed, TimeoutLayer};
