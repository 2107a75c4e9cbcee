//! A fallback cache in this process's memory.

use std::collections::HashMap;
use std::future::{ready, Future};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::{CacheError, Cached, FallbackCache};

/// The last good answer per key, in memory, for at most `max_age`, at most
/// `capacity` keys.
// Limitation: the cache is per process, so two replicas can serve
// different stale copies for up to its age limit; use `RedisCache` to
// share one.
#[derive(Debug)]
pub struct MemoryCache<V> {
    entries: Mutex<HashMap<String, Entry<V>>>,
    max_age: Duration,
    capacity: usize,
}

#[derive(Debug)]
struct Entry<V> {
    stored: Instant,
    value: V,
}

impl<V: Clone> MemoryCache<V> {
    /// An empty cache serving answers up to `max_age` old, for at most
    /// `capacity` keys (at least one).
    pub fn new(max_age: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_age,
            capacity: capacity.max(1),
        }
    }

    /// Keys stored now, expired ones included until they are evicted.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn store(&self, key: &str, value: &V) {
        let now = Instant::now();
        let mut entries = self.entries.lock();

        if !entries.contains_key(key) && entries.len() >= self.capacity {
            self.evict(&mut entries, now);
        }
        let entry = Entry {
            stored: now,
            value: value.clone(),
        };
        entries.insert(key.to_owned(), entry);
    }

    fn lookup(&self, key: &str) -> Option<Cached<V>> {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        let age = now.saturating_duration_since(entries.get(key)?.stored);

        if age > self.max_age {
            entries.remove(key);
            return None;
        }

        let value = entries.get(key)?.value.clone();
        Some(Cached { value, age })
    }

    /// Makes room: drops expired entries, or else the oldest.
    // Limitation: eviction scans every entry, so inserting into a full
    // cache costs time linear in its capacity.
    fn evict(&self, entries: &mut HashMap<String, Entry<V>>, now: Instant) {
        entries.retain(|_, e| now.saturating_duration_since(e.stored) <= self.max_age);
        if entries.len() < self.capacity {
            return;
        }

        let oldest = entries
            .iter()
            .min_by_key(|(_, e)| e.stored)
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            entries.remove(&key);
        }
    }
}

impl<V: Clone + Send + Sync> FallbackCache<V> for MemoryCache<V> {
    fn put(&self, key: &str, value: &V) -> impl Future<Output = Result<(), CacheError>> + Send {
        self.store(key, value);
        ready(Ok(()))
    }

    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Cached<V>>, CacheError>> + Send {
        ready(Ok(self.lookup(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_answer_says_how_old_it_is() {
        let cache = MemoryCache::new(Duration::from_secs(60), 10);
        cache.put("book:1", &"Dune").await.unwrap();

        tokio::time::advance(Duration::from_secs(42)).await;
        let cached = cache.get("book:1").await.unwrap().unwrap();

        assert_eq!(cached.value, "Dune");
        assert_eq!(cached.age, Duration::from_secs(42));
    }

    #[tokio::test(start_paused = true)]
    async fn answers_past_the_age_limit_are_not_served() {
        let cache = MemoryCache::new(Duration::from_secs(60), 10);
        cache.put("book:1", &1).await.unwrap();

        tokio::time::advance(Duration::from_secs(61)).await;

        assert_eq!(cache.get("book:1").await.unwrap(), None);
        assert!(cache.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cache_drops_its_oldest_entry() {
        let cache = MemoryCache::new(Duration::from_secs(60), 2);
        cache.put("a", &1).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        cache.put("b", &2).await.unwrap();

        cache.put("c", &3).await.unwrap();

        assert_eq!(cache.len(), 2);
        assert!(cache.get("a").await.unwrap().is_none());
        assert_eq!(cache.get("c").await.unwrap().unwrap().value, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_answer_replaces_the_old_one() {
        let cache = MemoryCache::new(Duration::from_secs(60), 2);
        cache.put("a", &1).await.unwrap();
        tokio::time::advance(Duration::from_secs(30)).await;

        cache.put("a", &2).await.unwrap();

        let cached = cache.get("a").await.unwrap().unwrap();
        assert_eq!((cached.value, cached.age), (2, Duration::ZERO));
    }
}
