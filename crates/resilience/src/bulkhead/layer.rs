//! The layer that puts a [`Bulkhead`] in front of a service.

use tower::Layer;

use super::{Bulkhead, BulkheadService};

/// Applies a [`Bulkhead`] to the services it wraps. Every service made by
/// one layer shares the same slots and queue.
#[derive(Clone, Debug)]
pub struct BulkheadLayer {
    bulkhead: Bulkhead,
}

impl BulkheadLayer {
    /// Bounds services with `bulkhead`.
    pub fn new(bulkhead: Bulkhead) -> Self {
        Self { bulkhead }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService::new(inner, self.bulkhead.clone())
    }
}
