//! Helpers for tests: isolated databases and servers that may be absent.
//!
//! Tests run on SQLite by default. With `LECTERN_TEST_POSTGRES` set to a
//! server URL (for example `postgres://postgres@127.0.0.1:5432/postgres`),
//! every [`TestDb`] is a fresh database on that server instead, so the same
//! suite runs on both.

use sqlx::Executor;

use crate::db::{Database, DbError};

/// A database of its own for one test, removed when dropped (SQLite) or
/// left for the server to hold (PostgreSQL; names are unique).
#[derive(Debug)]
pub struct TestDb {
    /// The URL a service under test connects to.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A new empty database for `name` (a label for the test).
    pub async fn new(name: &str) -> Result<Self, DbError> {
        match std::env::var("LECTERN_TEST_POSTGRES") {
            Ok(server) if !server.is_empty() => Self::postgres(&server, name).await,
            _ => Ok(Self::sqlite(name)),
        }
    }

    fn sqlite(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let url = format!("sqlite://{}/{name}.db", dir.path().display());
        Self {
            url,
            _dir: Some(dir),
        }
    }

    async fn postgres(server: &str, name: &str) -> Result<Self, DbError> {
        let admin = Database::connect(server).await?;
        let db = format!(
            "lectern_t_{}_{}",
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            uuid::Uuid::new_v4().simple()
        );
        admin
            .pool
            .execute(format!("CREATE DATABASE {db}").as_str())
            .await?;
        admin.pool.close().await;
        let base = server.rsplit_once('/').map_or(server, |(b, _)| b);
        Ok(Self {
            url: format!("{base}/{db}"),
            _dir: None,
        })
    }

    /// Whether this run uses PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }
}

/// Whether a real server a test needs is there. When it is not, the test
/// should return early: this prints why, and under `CI=true` it panics
/// instead, because CI must install what its tests need.
pub fn server_available(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(!ci, "{what} is required under CI=true but is not available");
    eprintln!("skipped: {what} is not available here");
    false
}
