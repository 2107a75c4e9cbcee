//! The layer that wraps a service in a [`Timeout`].

use std::time::Duration;

use tower::Layer;

use super::{NoDeadline, Timeout};

/// Applies a [`Timeout`] to the services it wraps.
#[derive(Clone, Debug)]
pub struct TimeoutLayer<D = NoDeadline> {
    limit: Option<Duration>,
    deadline: D,
}

impl TimeoutLayer {
    /// Each call is given up after `limit`.
    pub fn new(limit: Duration) -> Self {
        Self {
            limit: Some(limit),
            deadline: NoDeadline,
        }
    }
}

impl TimeoutLayer<NoDeadline> {
    /// Each call is given up when the deadline `deadline` reads from the
    /// request passes, or after this layer's own limit if that comes first.
    pub fn with_deadline<D>(self, deadline: D) -> TimeoutLayer<D> {
        TimeoutLayer {
            limit: self.limit,
            deadline,
        }
    }

    /// Calls are limited only by the deadline `deadline` reads from each
    /// request.
    pub fn deadline_only<D>(deadline: D) -> TimeoutLayer<D> {
        TimeoutLayer {
            limit: None,
            deadline,
        }
    }
}

impl<S, D: Clone> Layer<S> for TimeoutLayer<D> {
    type Service = Timeout<S, D>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::new(inner, self.limit, self.deadline.clone())
    }
}
