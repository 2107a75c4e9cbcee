//! Fallbacks: the last good answer per key, served when the live call
//! fails, and a tower layer that answers in place of a failed call.
//!
//! A cached answer is always marked stale and carries its age, so whoever
//! shows it can say how old it is. Entries older than the cache's age
//! limit are never served.
//!
//! [`FallbackCache`] is the trait; [`MemoryCache`] keeps entries in this
//! process, and `RedisCache` (cargo feature `redis`) shares them between
//! replicas.

mod layer;
mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::future::Future;
use std::time::Duration;

pub use self::layer::{Fallback, FallbackLayer, ResponseFuture};
pub use self::memory::MemoryCache;
#[cfg(feature = "redis")]
pub use self::redis::RedisCache;
use crate::error::{BoxError, Retryable};

/// A stored answer and how long ago it was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cached<V> {
    /// The answer.
    pub value: V,
    /// Time since it was stored.
    pub age: Duration,
}

/// Keeps the last good answer per key, for at most an age limit.
pub trait FallbackCache<V>: Send + Sync {
    /// Stores `value` as the last good answer for `key`.
    fn put(&self, key: &str, value: &V) -> impl Future<Output = Result<(), CacheError>> + Send;

    /// The last good answer for `key`, if one younger than the age limit
    /// is stored.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Cached<V>>, CacheError>> + Send;
}

/// An answer from a call with a cached fallback.
#[derive(Debug)]
pub enum Answer<T, E> {
    /// The live answer.
    Fresh(T),
    /// The live call failed; this is the last good answer.
    Stale {
        /// The cached answer.
        value: T,
        /// How old it is.
        age: Duration,
        /// Why the live call gave no answer.
        cause: E,
    },
}

impl<T, E> Answer<T, E> {
    /// The answer, fresh or stale.
    pub fn into_value(self) -> T {
        match self {
            Self::Fresh(value) | Self::Stale { value, .. } => value,
        }
    }

    /// True for a cached answer.
    pub fn is_stale(&self) -> bool {
        matches!(self, Self::Stale { .. })
    }

    /// The age of a cached answer; `None` for a fresh one.
    pub fn age(&self) -> Option<Duration> {
        match self {
            Self::Fresh(_) => None,
            Self::Stale { age, .. } => Some(*age),
        }
    }
}

/// The cache could not be read or written.
///
/// Retryable: cache stores fail for the same passing reasons as any
/// neighbour.
#[derive(Debug, thiserror::Error)]
#[error("fallback cache failed: {source}")]
pub struct CacheError {
    #[source]
    source: BoxError,
}

impl CacheError {
    /// A cache failure caused by `source`.
    pub fn new(source: impl Into<BoxError>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

impl Retryable for CacheError {
    fn is_retryable(&self) -> bool {
        true
    }
}
