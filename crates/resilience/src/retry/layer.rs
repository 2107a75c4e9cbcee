//! The layer that retries a service's calls.

use tower::Layer;

use super::{ErrorHints, Retry, RetryService};
use crate::timeout::NoDeadline;

/// Applies a [`Retry`] to the services it wraps.
///
/// `P` says which requests may be retried, `K` which results are worth it,
/// `D` where a request's deadline is.
#[derive(Clone, Debug)]
pub struct RetryLayer<P, K = ErrorHints, D = NoDeadline> {
    retry: Retry,
    retry_safe: P,
    classify: K,
    deadline: D,
}

impl<P> RetryLayer<P> {
    /// Retries requests `retry_safe` approves, as `retry` says.
    pub fn new(retry: Retry, retry_safe: P) -> Self {
        Self {
            retry,
            retry_safe,
            classify: ErrorHints,
            deadline: NoDeadline,
        }
    }
}

impl<P, K, D> RetryLayer<P, K, D> {
    /// Judges results with `classify` instead.
    pub fn classify<K2>(self, classify: K2) -> RetryLayer<P, K2, D> {
        RetryLayer {
            retry: self.retry,
            retry_safe: self.retry_safe,
            classify,
            deadline: self.deadline,
        }
    }

    /// Reads each request's deadline with `deadline`: no retry starts that
    /// cannot finish before it.
    pub fn deadline<D2>(self, deadline: D2) -> RetryLayer<P, K, D2> {
        RetryLayer {
            retry: self.retry,
            retry_safe: self.retry_safe,
            classify: self.classify,
            deadline,
        }
    }
}

impl<S, P: Clone, K: Clone, D: Clone> Layer<S> for RetryLayer<P, K, D> {
    type Service = RetryService<S, P, K, D>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService::new(
            inner,
            self.retry.clone(),
            self.retry_safe.clone(),
            self.classify.clone(),
            self.deadline.clone(),
        )
    }
}
