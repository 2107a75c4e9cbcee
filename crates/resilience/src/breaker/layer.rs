//! The layer that puts a [`Breaker`] in front of a service.

use tower::Layer;

use super::{Breaker, BreakerService, ErrorsAreFailures};

/// Applies a [`Breaker`] to the services it wraps. Every service made by
/// one layer shares the same breaker.
#[derive(Clone, Debug)]
pub struct BreakerLayer<C = ErrorsAreFailures> {
    breaker: Breaker<C>,
}

impl<C> BreakerLayer<C> {
    /// Guards services with `breaker`.
    pub fn new(breaker: Breaker<C>) -> Self {
        Self { breaker }
    }
}

impl<S, C: Clone> Layer<S> for BreakerLayer<C> {
    type Service = BreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        BreakerService::new(inner, self.breaker.clone())
    }
}
