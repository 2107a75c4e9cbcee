//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lectern_resilience::Retryable;

/// A dependency's error, as a test scripts it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// A passing failure: retrying may help.
    #[error("dependency down")]
    Down,
    /// The caller's mistake: retrying cannot help.
    #[error("no such record")]
    NotFound,
    /// The server asks to be left alone for a while.
    #[error("busy")]
    Busy(Duration),
}

impl Retryable for Fault {
    fn is_retryable(&self) -> bool {
        !matches!(self, Fault::NotFound)
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Fault::Busy(after) => Some(*after),
            _ => None,
        }
    }
}

/// Counts how often something ran.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub fn hit(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A call that takes `after` and then answers `result`.
pub async fn answer_after<T>(after: Duration, result: Result<T, Fault>) -> Result<T, Fault> {
    tokio::time::sleep(after).await;
    result
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
