//! Fallback caches: the last good answer of a neighbour per key, served
//! (marked stale, with its age) when the neighbour cannot answer.
//!
//! Entries live in this process ([`MemoryCache`]) or, when `REDIS_URL` is
//! set, in Redis ([`RedisCache`]), shared by every replica of the service
//! and kept across restarts. Either way an entry older than the cache's
//! age limit is never served. Redis calls have short time limits: a slow
//! or absent Redis makes a cache miss, never a slow request.
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! use lectern_platform::cache::CacheBackend;
//!
//! let backend = CacheBackend::connect(std::env::var("REDIS_URL").ok().as_deref()).await;
//! let copies = backend.store::<String>("borrowing-service:copy", Duration::from_secs(3600));
//! # }
//! ```

use std::future::Future;
use std::time::Duration;

use lectern_resilience::fallback::{CacheError, RedisCache};
use lectern_resilience::{Cached, FallbackCache, MemoryCache};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{ConfigError, Lookup};

/// Keys one in-process cache holds at most; the oldest go first.
pub const MEMORY_CAPACITY: usize = 10_000;

/// How long connecting to Redis may take.
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one Redis command may take before it counts as a miss.
const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);

/// Where a service keeps its fallback caches.
#[derive(Clone)]
pub enum CacheBackend {
    /// In this process.
    Memory,
    /// In Redis, shared by every replica.
    Redis(Box<ConnectionManager>),
}

impl std::fmt::Debug for CacheBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl CacheBackend {
    /// Redis at `redis_url` when given and reachable, else this process.
    /// An unreachable Redis is logged at warn and the process keeps its
    /// own cache, so Redis being down never stops a service.
    // Limitation: the choice is made once, at start: a service that
    // started while Redis was down keeps an in-process cache until it is
    // restarted.
    pub async fn connect(redis_url: Option<&str>) -> Self {
        let Some(url) = redis_url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Self::Memory;
        };

        match connect_redis(url).await {
            Ok(connection) => {
                tracing::info!(
                    event.action = "cache-backend",
                    cache.backend = "redis",
                    "Fallback caches are kept in Redis"
                );
                Self::Redis(Box::new(connection))
            }
            Err(error) => {
                tracing::warn!(
                    event.action = "cache-backend",
                    cache.backend = "memory",
                    error.message = %error,
                    "Cannot reach Redis; fallback caches are kept in this process"
                );
                Self::Memory
            }
        }
    }

    /// `memory` or `redis`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis(_) => "redis",
        }
    }

    /// A cache of answers up to `max_age` old. In Redis its keys start with
    /// `lectern:<name>:`, so caches with different names never mix.
    pub fn store<V: Clone>(&self, name: &str, max_age: Duration) -> FallbackStore<V> {
        match self {
            Self::Memory => FallbackStore::Memory(MemoryCache::new(max_age, MEMORY_CAPACITY)),
            Self::Redis(connection) => {
                let prefix = format!("lectern:{name}:");
                FallbackStore::Redis(RedisCache::new((**connection).clone(), prefix, max_age))
            }
        }
    }
}

/// `REDIS_URL` from `lookup`, when set; a value that is not a Redis URL
/// is a configuration error (reachability is checked at start).
pub fn redis_url(lookup: Lookup<'_>) -> Result<Option<String>, ConfigError> {
    let name = "REDIS_URL";
    let Some(url) = lookup(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };

    match redis::Client::open(url.as_str()) {
        Ok(_) => Ok(Some(url)),
        // The value may hold a password: it is not repeated.
        Err(error) => Err(ConfigError::invalid(name, "<hidden>", &error.to_string())),
    }
}

/// A connection to Redis with short time limits and few reconnection
/// attempts: a cache must not make requests wait.
async fn connect_redis(url: &str) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(REDIS_CONNECT_TIMEOUT)
        .set_response_timeout(REDIS_RESPONSE_TIMEOUT)
        .set_number_of_retries(1)
        .set_max_delay(200);

    ConnectionManager::new_with_config(client, config).await
}

/// One fallback cache, in memory or in Redis.
#[derive(Debug)]
pub enum FallbackStore<V> {
    /// In this process.
    Memory(MemoryCache<V>),
    /// In Redis.
    Redis(RedisCache<V>),
}

impl<V> FallbackCache<V> for FallbackStore<V>
where
    V: Clone + Serialize + DeserializeOwned + Send + Sync,
{
    async fn put(&self, key: &str, value: &V) -> Result<(), CacheError> {
        match self {
            Self::Memory(cache) => cache.put(key, value).await,
            Self::Redis(cache) => limited(cache.put(key, value)).await?,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Cached<V>>, CacheError> {
        match self {
            Self::Memory(cache) => cache.get(key).await,
            Self::Redis(cache) => limited(cache.get(key)).await?,
        }
    }
}

/// `fut` within the Redis response limit (a backstop for the connection's
/// own limit, which does not cover reconnecting).
async fn limited<F: Future>(fut: F) -> Result<F::Output, CacheError> {
    tokio::time::timeout(REDIS_RESPONSE_TIMEOUT * 2, fut)
        .await
        .map_err(|_| CacheError::new("Redis did not answer in time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_url_caches_stay_in_memory() {
        let backend = CacheBackend::connect(None).await;
        assert_eq!(backend.name(), "memory");

        let store = backend.store::<u32>("test", Duration::from_secs(60));
        store.put("k", &7).await.unwrap();

        assert_eq!(store.get("k").await.unwrap().unwrap().value, 7);
    }

    #[test]
    fn redis_urls_are_checked_without_showing_them() {
        let url = |value: &'static str| move |_: &str| Some(value.to_owned());

        assert_eq!(redis_url(&|_| None).unwrap(), None);
        assert_eq!(
            redis_url(&url("redis://127.0.0.1:6379/"))
                .unwrap()
                .as_deref(),
            Some("redis://127.0.0.1:6379/")
        );
        let error = redis_url(&url("http://user:secret@x/")).unwrap_err();
        assert!(error.to_string().contains("REDIS_URL"), "{error}");
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[tokio::test]
    async fn an_unreachable_redis_falls_back_to_memory() {
        // Nothing listens on port 1 of the loopback interface.
        let backend = CacheBackend::connect(Some("redis://127.0.0.1:1/")).await;

        assert_eq!(backend.name(), "memory");
    }
}
