//! Why a call to a neighbour failed, tagged with where the failure came
//! from and whether trying again can help.

use std::time::Duration;

use lectern_resilience::{Error as StackError, Retryable};

/// Why a call to a neighbour failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection could be made to any replica; nothing was sent.
    #[error("cannot connect to {dependency}")]
    Connect {
        /// The neighbour.
        dependency: &'static str,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// No answer within the time limit of one attempt.
    #[error("{dependency} did not answer within {millis} ms")]
    Timeout {
        /// The neighbour.
        dependency: &'static str,
        /// The limit.
        millis: u128,
    },
    /// The caller's deadline passed before an answer came.
    #[error("{dependency} did not answer before the request's deadline")]
    Deadline {
        /// The neighbour.
        dependency: &'static str,
    },
    /// The neighbour answered with an error status.
    #[error("{dependency} answered {status}")]
    Status {
        /// The neighbour.
        dependency: &'static str,
        /// The status code.
        status: u16,
        /// Seconds from its `Retry-After`, if any.
        retry_after: Option<u64>,
    },
    /// The answer could not be read or decoded.
    #[error("bad answer from {dependency}")]
    Body {
        /// The neighbour.
        dependency: &'static str,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The circuit breaker is open: the neighbour failed too often lately,
    /// so the call was refused without being sent.
    #[error("{dependency} is failing; the call was not sent (circuit open)")]
    CircuitOpen {
        /// The neighbour.
        dependency: &'static str,
        /// When the breaker lets a trial call through, if known.
        retry_after: Option<Duration>,
    },
    /// Too many calls to the neighbour are in flight already; the call was
    /// refused without being sent.
    #[error("too many calls to {dependency} in flight; the call was not sent")]
    Overloaded {
        /// The neighbour.
        dependency: &'static str,
    },
}

impl CallError {
    /// Whether trying again (later, or elsewhere) can help.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } => true,
            Self::Status { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            Self::Body { .. } => false,
            Self::Deadline { .. } | Self::CircuitOpen { .. } | Self::Overloaded { .. } => true,
        }
    }

    /// Whether the neighbour said the request itself was wrong (4xx): the
    /// caller's fault, not the neighbour's.
    pub fn is_rejection(&self) -> bool {
        matches!(self, Self::Status { status, .. } if (400..500).contains(status) && *status != 429)
    }

    /// Whether the call was refused here without being sent (open
    /// breaker, full bulkhead).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::CircuitOpen { .. } | Self::Overloaded { .. })
    }

    /// The status the neighbour answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long the caller should wait before trying again, when the
    /// failure says: the neighbour's `Retry-After`, or the time until the
    /// breaker lets a trial call through.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => retry_after.map(Duration::from_secs),
            Self::CircuitOpen { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The error the resilience stack's `error` stands for.
    pub(crate) fn from_stack(dependency: &'static str, error: StackError<Self>) -> Self {
        match error {
            StackError::Inner(inner) => inner,
            StackError::Elapsed(elapsed) => Self::Timeout {
                dependency,
                millis: elapsed.limit().as_millis(),
            },
            StackError::DeadlineExceeded(_) => Self::Deadline { dependency },
            StackError::BreakerOpen(open) => Self::CircuitOpen {
                dependency,
                retry_after: open.retry_after(),
            },
            StackError::BulkheadFull(_) | StackError::BudgetExhausted(_) => {
                Self::Overloaded { dependency }
            }
        }
    }
}

/// What the retry loop reads: only failures a new attempt may not meet
/// again are retried (no connection, no answer in time, 429, 502, 503,
/// 504); the neighbour's `Retry-After` is honoured.
impl Retryable for CallError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::Status { .. } => self.retryable(),
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        CallError::retry_after(self)
    }
}

#[cfg(test)]
mod tests {
    use lectern_resilience::{Breaker, BreakerConfig, Retryable};

    use super::*;

    fn status(status: u16, retry_after: Option<u64>) -> CallError {
        CallError::Status {
            dependency: "book-service",
            status,
            retry_after,
        }
    }

    #[test]
    fn only_passing_failures_are_retried() {
        assert!(status(503, None).is_retryable());
        assert!(status(429, None).is_retryable());
        assert!(!status(500, None).is_retryable());
        assert!(!status(404, None).is_retryable());
        let open = CallError::CircuitOpen {
            dependency: "book-service",
            retry_after: None,
        };
        assert!(!open.is_retryable(), "retrying at once would be refused");
        assert!(open.retryable(), "but later it may work");
    }

    #[test]
    fn four_hundreds_but_429_are_the_callers_fault() {
        assert!(status(404, None).is_rejection());
        assert!(status(401, None).is_rejection());
        assert!(!status(429, None).is_rejection());
        assert!(!status(500, None).is_rejection());
    }

    #[test]
    fn retry_after_comes_from_the_neighbour_or_the_breaker() {
        assert_eq!(
            status(503, Some(7)).retry_after(),
            Some(Duration::from_secs(7))
        );
        let open = CallError::CircuitOpen {
            dependency: "x",
            retry_after: Some(Duration::from_millis(1500)),
        };
        assert_eq!(open.retry_after(), Some(Duration::from_millis(1500)));
    }

    #[tokio::test]
    async fn stack_errors_keep_the_dependencys_name() {
        let breaker = Breaker::new("user-service", BreakerConfig::default());
        breaker.force_open();
        let refused = breaker
            .call(async { Ok::<(), CallError>(()) })
            .await
            .unwrap_err();

        let error = CallError::from_stack("user-service", refused);

        assert!(error.is_refusal());
        assert!(error.to_string().contains("user-service"), "{error}");
    }
}
