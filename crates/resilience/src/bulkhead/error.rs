//! The error of a call the bulkhead had no room for.

use std::sync::Arc;

use crate::error::Retryable;

/// The bulkhead was full: every slot in flight and every place in its
/// queue taken. The call was refused at once, without waiting.
///
/// Not retryable: the dependency is saturated, and retrying would add to
/// the load it is shedding.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bulkhead {name:?} is full ({max_in_flight} in flight, {max_queued} queued)")]
pub struct BulkheadFull {
    name: Arc<str>,
    max_in_flight: usize,
    max_queued: usize,
}

impl BulkheadFull {
    pub(crate) fn new(name: Arc<str>, max_in_flight: usize, max_queued: usize) -> Self {
        Self {
            name,
            max_in_flight,
            max_queued,
        }
    }

    /// The bulkhead's name, which is the dependency's.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Retryable for BulkheadFull {
    fn is_retryable(&self) -> bool {
        false
    }
}
