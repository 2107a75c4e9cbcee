//! The portable SQL subset every service relies on, on SQLite and (with
//! `LECTERN_TEST_POSTGRES`) PostgreSQL.

use lectern_platform::db::{is_unique_violation, now_millis, Database};
use lectern_platform::idempotency::{self, Prior, StoredResponse};
use lectern_platform::testing::TestDb;
use sqlx::Row;

const SCHEMA: &str = "CREATE TABLE things (
    id TEXT PRIMARY KEY,
    name TEXT,
    count BIGINT NOT NULL,
    flag BIGINT NOT NULL,
    closed_at BIGINT
);
CREATE UNIQUE INDEX one_open_thing ON things (name) WHERE closed_at IS NULL;";

async fn open(name: &str) -> Database {
    let test = TestDb::new(name).await.expect("test database");
    let db = Database::connect(&test.url).await.expect("connect");
    db.migrate(&[SCHEMA, idempotency::MIGRATION])
        .await
        .expect("migrate");
    std::mem::forget(test);
    db
}

#[tokio::test]
async fn numbered_placeholders_nulls_and_flags_round_trip() {
    let db = open("portable").await;
    sqlx::query("INSERT INTO things VALUES ($1, $2, $3, $4, $5)")
        .bind("a")
        .bind(None::<String>)
        .bind(7_i64)
        .bind(1_i64)
        .bind(None::<i64>)
        .execute(&db.pool)
        .await
        .unwrap();

    let row = sqlx::query("SELECT name, count, flag, closed_at FROM things WHERE id = $1")
        .bind("a")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(row.try_get::<Option<String>, _>("name").unwrap(), None);
    assert_eq!(row.try_get::<i64, _>("count").unwrap(), 7);
    assert_eq!(row.try_get::<i64, _>("flag").unwrap(), 1);
    assert_eq!(row.try_get::<Option<i64>, _>("closed_at").unwrap(), None);
}

#[tokio::test]
async fn partial_unique_index_refuses_a_second_open_row_only() {
    let db = open("partial").await;
    let insert = |id: &'static str, closed: Option<i64>| {
        sqlx::query("INSERT INTO things VALUES ($1, 'x', 0, 0, $2)")
            .bind(id)
            .bind(closed)
            .execute(&db.pool)
    };
    insert("1", None).await.unwrap();
    let err = insert("2", None).await.unwrap_err();
    assert!(is_unique_violation(&err), "{err:?}");
    insert("3", Some(now_millis())).await.unwrap();
}

#[tokio::test]
async fn migrations_apply_once() {
    let test = TestDb::new("migrate").await.unwrap();
    let db = Database::connect(&test.url).await.unwrap();
    db.migrate(&[SCHEMA]).await.unwrap();
    db.migrate(&[SCHEMA]).await.unwrap();
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM lectern_migrations")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn idempotency_replays_refuses_mismatch_and_detects_races() {
    let db = open("idem").await;
    let print = idempotency::fingerprint("op", &serde_json::json!({"a": 1}));
    let other = idempotency::fingerprint("op", &serde_json::json!({"a": 2}));
    let lookup = |p: String| {
        let pool = db.pool.clone();
        async move { idempotency::lookup(&pool, "s", "k", &p).await.unwrap() }
    };
    assert_eq!(lookup(print.clone()).await, Prior::Fresh);

    let answer = StoredResponse {
        status: 201,
        body: "{\"id\":1}".into(),
    };
    let mut tx = db.pool.begin().await.unwrap();
    idempotency::record(&mut tx, "s", "k", &print, &answer)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(lookup(print.clone()).await, Prior::Replay(answer.clone()));
    assert_eq!(lookup(other).await, Prior::Mismatch);

    let mut tx = db.pool.begin().await.unwrap();
    let err = idempotency::record(&mut tx, "s", "k", &print, &answer)
        .await
        .unwrap_err();
    assert!(is_unique_violation(&err), "{err:?}");
}

#[tokio::test]
async fn replicas_migrating_together_all_succeed() {
    let test = TestDb::new("race").await.unwrap();
    let runs = (0..6).map(|_| {
        let url = test.url.clone();
        tokio::spawn(async move {
            let db = Database::connect(&url).await?;
            db.migrate(&[SCHEMA]).await
        })
    });
    for run in futures::future::join_all(runs).await {
        run.unwrap().unwrap();
    }
}
