//! A fallback cache in Redis, shared by every replica.
//!
//! Ages are measured on the Redis server's clock (its `TIME`, read inside
//! a Lua script on both store and read), so replicas with skewed clocks
//! still agree on how old an answer is. Redis expires entries at the age
//! limit. The scripts go by `EVAL`, which needs no extra `redis` feature.

use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{CacheError, Cached, FallbackCache};

const PUT: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('SET', KEYS[1], string.format('%d', now) .. ':' .. ARGV[1], 'PX', ARGV[2])
return 1
";

const GET: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local t = redis.call('TIME')
return {v, string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000))}
";

/// The last good answer per key, in Redis as JSON, for at most `max_age`.
#[derive(Clone)]
pub struct RedisCache<V> {
    connection: ConnectionManager,
    prefix: String,
    max_age: Duration,
    _value: PhantomData<fn() -> V>,
}

impl<V> RedisCache<V> {
    /// A cache over `connection`, its keys starting with `prefix`.
    pub fn new(
        connection: ConnectionManager,
        prefix: impl Into<String>,
        max_age: Duration,
    ) -> Self {
        Self {
            connection,
            prefix: prefix.into(),
            max_age,
            _value: PhantomData,
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    fn max_age_ms(&self) -> u64 {
        u64::try_from(self.max_age.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

impl<V> FallbackCache<V> for RedisCache<V>
where
    V: Serialize + DeserializeOwned + Send + Sync,
{
    fn put(&self, key: &str, value: &V) -> impl Future<Output = Result<(), CacheError>> + Send {
        let payload = serde_json::to_string(value);
        let key = self.key(key);
        let mut connection = self.connection.clone();

        async move {
            let payload = payload.map_err(CacheError::new)?;
            let _: i64 = redis::cmd("EVAL")
                .arg(PUT)
                .arg(1)
                .arg(key)
                .arg(payload)
                .arg(self.max_age_ms())
                .query_async(&mut connection)
                .await
                .map_err(CacheError::new)?;
            Ok(())
        }
    }

    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Cached<V>>, CacheError>> + Send {
        let key = self.key(key);
        let mut connection = self.connection.clone();

        async move {
            let stored: Option<(Vec<u8>, String)> = redis::cmd("EVAL")
                .arg(GET)
                .arg(1)
                .arg(key)
                .query_async(&mut connection)
                .await
                .map_err(CacheError::new)?;
            let Some((entry, now)) = stored else {
                return Ok(None);
            };

            decode(&entry, &now, self.max_age)
        }
    }
}

/// `entry` is `<stored ms>:<json>`; `now` is the server's time in ms.
fn decode<V: DeserializeOwned>(
    entry: &[u8],
    now: &str,
    max_age: Duration,
) -> Result<Option<Cached<V>>, CacheError> {
    let colon = entry
        .iter()
        .position(|b| *b == b':')
        .ok_or_else(|| CacheError::new("cache entry has no timestamp"))?;
    let stored = std::str::from_utf8(&entry[..colon])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| CacheError::new("cache entry timestamp is not a number"))?;
    let now: u64 = now.parse().map_err(CacheError::new)?;

    let age = Duration::from_millis(now.saturating_sub(stored));
    if age > max_age {
        return Ok(None);
    }

    let value = serde_json::from_slice(&entry[colon + 1..]).map_err(CacheError::new)?;
    Ok(Some(Cached { value, age }))
}

impl<V> std::fmt::Debug for RedisCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.prefix)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_decode_with_their_age() {
        let cached: Cached<Vec<u32>> = decode(b"1000:[1,2]", "4500", Duration::from_secs(10))
            .unwrap()
            .unwrap();

        assert_eq!(cached.value, vec![1, 2]);
        assert_eq!(cached.age, Duration::from_millis(3500));
    }

    #[test]
    fn entries_past_the_age_limit_are_not_served() {
        let cached: Option<Cached<u32>> =
            decode(b"1000:5", "20000", Duration::from_secs(10)).unwrap();

        assert!(cached.is_none());
    }

    #[test]
    fn malformed_entries_are_errors() {
        let no_colon = decode::<u32>(b"12345", "1", Duration::MAX);
        let bad_time = decode::<u32>(b"x:1", "1", Duration::MAX);

        assert!(no_colon.is_err());
        assert!(bad_time.is_err());
    }
}
