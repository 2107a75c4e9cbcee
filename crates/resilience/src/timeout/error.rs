//! The error of a call that ran out of time.

use std::time::Duration;

use crate::error::Retryable;

/// A call took longer than its timeout and was given up (its future was
/// dropped, which cancels it).
///
/// Retryable: the next attempt may be faster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {limit:?}")]
pub struct Elapsed {
    limit: Duration,
}

impl Elapsed {
    /// The call ran past `limit`.
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }

    /// The timeout that was reached.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

impl Retryable for Elapsed {
    fn is_retryable(&self) -> bool {
        true
    }
}
