//! The error of a call the breaker refused.

use std::sync::Arc;
use std::time::Duration;

use super::BreakerState;
use crate::error::Retryable;

/// The circuit breaker refused the call without sending it: it is open,
/// forced open, or half-open with every trial call taken.
///
/// Not retryable at once (that would only be refused again); when the
/// breaker knows when it will let a trial through, [`Retryable::retry_after`]
/// says so, ready for a `Retry-After` header.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker {name:?} is {state} and refused the call")]
pub struct BreakerOpen {
    name: Arc<str>,
    state: BreakerState,
    retry_after: Option<Duration>,
}

impl BreakerOpen {
    pub(crate) fn new(name: Arc<str>, state: BreakerState, retry_after: Option<Duration>) -> Self {
        Self {
            name,
            state,
            retry_after,
        }
    }

    /// The breaker's name, which is the dependency's.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The state that refused the call.
    pub fn state(&self) -> BreakerState {
        self.state
    }
}

impl Retryable for BreakerOpen {
    fn is_retryable(&self) -> bool {
        false
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}
