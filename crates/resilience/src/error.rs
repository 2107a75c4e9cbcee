//! Errors shared by every layer, and the flag that says whether trying again
//! can help.
//!
//! Each failure has its own small type, kept beside the middleware that
//! produces it ([`Elapsed`], [`BreakerOpen`], [`BulkheadFull`],
//! [`BudgetExhausted`], [`DeadlineExceeded`]). The plain async API returns
//! them inside one enum, [`Error`]; the tower layers box them, and
//! [`hint_of`] reads the flag back from a boxed error.

use std::error::Error as StdError;
use std::time::Duration;

use crate::breaker::BreakerOpen;
use crate::budget::BudgetExhausted;
use crate::bulkhead::BulkheadFull;
use crate::deadline::DeadlineExceeded;
use crate::timeout::Elapsed;

/// The error type of the tower layers, as in tower itself.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Whether trying the same call again can help, and how soon.
///
/// Retry and breaker code read this flag instead of an error message.
pub trait Retryable {
    /// True when a later attempt of the same call may succeed.
    fn is_retryable(&self) -> bool;

    /// How long to wait before trying again, when the failure says so
    /// (a server's `Retry-After`, an open breaker's reset timer).
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// What an error says about trying again, read from a boxed error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryHint {
    /// True when a later attempt may succeed.
    pub retryable: bool,
    /// The wait the failure asks for, if any.
    pub after: Option<Duration>,
}

impl RetryHint {
    /// Trying again cannot help.
    pub const FINAL: Self = Self {
        retryable: false,
        after: None,
    };

    /// Trying again may help, with no wait asked for.
    pub const TRANSIENT: Self = Self {
        retryable: true,
        after: None,
    };

    /// The hint of a value that knows its own retryability.
    pub fn of<E: Retryable + ?Sized>(err: &E) -> Self {
        Self {
            retryable: err.is_retryable(),
            after: err.retry_after(),
        }
    }
}

/// The hint of the first error of this crate found in `err`'s source
/// chain, or `None` when the chain holds none of them.
pub fn hint_of(err: &(dyn StdError + 'static)) -> Option<RetryHint> {
    let mut current = Some(err);

    while let Some(e) = current {
        if let Some(hint) = own_hint(e) {
            return Some(hint);
        }
        current = e.source();
    }

    None
}

fn own_hint(e: &(dyn StdError + 'static)) -> Option<RetryHint> {
    if let Some(e) = e.downcast_ref::<Elapsed>() {
        return Some(RetryHint::of(e));
    }
    if let Some(e) = e.downcast_ref::<BreakerOpen>() {
        return Some(RetryHint::of(e));
    }
    if let Some(e) = e.downcast_ref::<BulkheadFull>() {
        return Some(RetryHint::of(e));
    }
    if let Some(e) = e.downcast_ref::<BudgetExhausted>() {
        return Some(RetryHint::of(e));
    }
    if let Some(e) = e.downcast_ref::<DeadlineExceeded>() {
        return Some(RetryHint::of(e));
    }
    e.downcast_ref::<std::io::Error>().map(RetryHint::of)
}

/// Every way a call through the plain async API can fail.
///
/// `Inner` is the dependency's own error; every other variant is a
/// decision of this crate, and none of them is ever a silent wrong answer.
#[derive(Debug, thiserror::Error)]
pub enum Error<E> {
    /// The dependency answered with an error.
    #[error(transparent)]
    Inner(E),
    /// An attempt took longer than its timeout and was given up.
    #[error(transparent)]
    Elapsed(#[from] Elapsed),
    /// The circuit breaker refused the call without trying it.
    #[error(transparent)]
    BreakerOpen(#[from] BreakerOpen),
    /// The bulkhead had no room, in flight or in its queue.
    #[error(transparent)]
    BulkheadFull(#[from] BulkheadFull),
    /// The retry budget refused a retry. [`RetryBudget::try_withdraw`]
    /// returns it to callers that run their own retries; [`Retry`] instead
    /// returns the last attempt's error, which says more, and counts the
    /// refusal.
    ///
    /// [`RetryBudget::try_withdraw`]: crate::RetryBudget::try_withdraw
    /// [`Retry`]: crate::Retry
    #[error(transparent)]
    BudgetExhausted(#[from] BudgetExhausted),
    /// The caller's deadline passed.
    #[error(transparent)]
    DeadlineExceeded(#[from] DeadlineExceeded),
}

impl<E> Error<E> {
    /// The dependency's own error, if that is what this is.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Inner(e) => Some(e),
            _ => None,
        }
    }

    /// True when this crate refused the call without sending it.
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            Self::BreakerOpen(_) | Self::BulkheadFull(_) | Self::BudgetExhausted(_)
        )
    }
}

impl<E: Retryable> Retryable for Error<E> {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Inner(e) => e.is_retryable(),
            Self::Elapsed(e) => e.is_retryable(),
            Self::BreakerOpen(e) => e.is_retryable(),
            Self::BulkheadFull(e) => e.is_retryable(),
            Self::BudgetExhausted(e) => e.is_retryable(),
            Self::DeadlineExceeded(e) => e.is_retryable(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Inner(e) => e.retry_after(),
            Self::Elapsed(e) => e.retry_after(),
            Self::BreakerOpen(e) => e.retry_after(),
            Self::BulkheadFull(e) => e.retry_after(),
            Self::BudgetExhausted(e) => e.retry_after(),
            Self::DeadlineExceeded(e) => e.retry_after(),
        }
    }
}

/// Network failures that a new connection may not meet again.
impl Retryable for std::io::Error {
    fn is_retryable(&self) -> bool {
        use std::io::ErrorKind as K;

        matches!(
            self.kind(),
            K::ConnectionRefused
                | K::ConnectionReset
                | K::ConnectionAborted
                | K::NotConnected
                | K::BrokenPipe
                | K::TimedOut
                | K::Interrupted
                | K::UnexpectedEof
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_is_found_through_the_source_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped")]
        struct Wrapper(#[source] Elapsed);

        let boxed: BoxError = Box::new(Wrapper(Elapsed::new(Duration::from_secs(1))));

        assert_eq!(hint_of(boxed.as_ref()), Some(RetryHint::TRANSIENT));
    }

    #[test]
    fn unknown_errors_have_no_hint() {
        let boxed: BoxError = "refused".into();

        assert_eq!(hint_of(boxed.as_ref()), None);
    }

    #[test]
    fn deadline_exceeded_is_final() {
        let err: Error<std::io::Error> = DeadlineExceeded::new().into();

        assert!(!RetryHint::of(&DeadlineExceeded::new()).retryable);
        assert!(!err.is_rejection());
    }
}
