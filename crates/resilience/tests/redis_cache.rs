//! The Redis fallback cache against the real Redis at 127.0.0.1:6379.
//!
//! When Redis cannot be reached the tests say so and pass, except under
//! `CI=true`, where an unreachable Redis is a failure.

#![cfg(feature = "redis")]

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use lectern_resilience::fallback::RedisCache;
use lectern_resilience::FallbackCache;
use redis::aio::ConnectionManager;

const REDIS: &str = "127.0.0.1:6379";

/// A connection, or `None` (with the reason printed) when Redis is down
/// outside CI.
async fn connect() -> Option<ConnectionManager> {
    let addr: SocketAddr = REDIS.parse().unwrap();
    if let Err(err) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!ci, "Redis at {REDIS} is unreachable under CI: {err}");
        println!("skipped: Redis at {REDIS} is unreachable: {err}");
        return None;
    }

    let client = redis::Client::open(format!("redis://{REDIS}/")).unwrap();
    Some(ConnectionManager::new(client).await.unwrap())
}

/// A key prefix no other run shares.
fn prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("lectern-test:{}:{nanos}:{test}:", std::process::id())
}

async fn remove(connection: &mut ConnectionManager, key: &str) {
    let _: () = redis::cmd("DEL")
        .arg(key)
        .query_async(connection)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_answer_comes_back_with_its_age() {
    let Some(mut connection) = connect().await else {
        return;
    };
    let prefix = prefix("age");
    let cache = RedisCache::new(connection.clone(), prefix.clone(), Duration::from_secs(60));

    cache.put("book:1", &vec!["Dune".to_owned()]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let cached = cache.get("book:1").await.unwrap().expect("stored");

    assert_eq!(cached.value, vec!["Dune".to_owned()]);
    assert!(
        cached.age >= Duration::from_millis(29),
        "age {:?}",
        cached.age
    );
    assert!(cached.age <= Duration::from_secs(60));
    remove(&mut connection, &format!("{prefix}book:1")).await;
}

#[tokio::test]
async fn a_missing_key_is_none() {
    let Some(connection) = connect().await else {
        return;
    };
    let cache = RedisCache::<u32>::new(connection, prefix("missing"), Duration::from_secs(60));

    assert_eq!(cache.get("nothing").await.unwrap(), None);
}

#[tokio::test]
async fn redis_expires_answers_at_the_age_limit() {
    let Some(connection) = connect().await else {
        return;
    };
    let cache = RedisCache::new(connection, prefix("expiry"), Duration::from_millis(50));

    cache.put("book:2", &7u32).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;

    assert_eq!(cache.get("book:2").await.unwrap(), None);
}

#[tokio::test]
async fn a_newer_answer_replaces_the_old_one() {
    let Some(mut connection) = connect().await else {
        return;
    };
    let prefix = prefix("replace");
    let cache = RedisCache::new(connection.clone(), prefix.clone(), Duration::from_secs(60));

    cache.put("k", &1u32).await.unwrap();
    cache.put("k", &2u32).await.unwrap();

    assert_eq!(cache.get("k").await.unwrap().unwrap().value, 2);
    remove(&mut connection, &format!("{prefix}k")).await;
}
