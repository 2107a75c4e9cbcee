//! Storage: SQLite for `lectern up`, PostgreSQL in production.
//!
//! Both go through sqlx's `Any` driver, so a service writes its queries
//! once. To stay portable, queries use `$1` placeholders (SQLite accepts
//! them), ids are text, times are `BIGINT` milliseconds since the epoch,
//! integers are `BIGINT` and read as `i64`, and flags are `BIGINT` 0 or 1
//! (the `Any` driver cannot decode SQLite's `BOOLEAN`, so no column is one).
//!
//! Migrations are a service's list of SQL scripts, applied in order once
//! each and recorded in `lectern_migrations`.

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};

/// Which server a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported database.
    /// Holds only the URL's scheme: the rest may carry a password.
    #[error("DATABASE_URL must start with sqlite: or postgres:, not {0:?}")]
    UnsupportedUrl(String),
    /// The database refused or failed.
    #[error("database error")]
    Sqlx(#[from] sqlx::Error),
    /// The directory for a SQLite file could not be made.
    #[error("cannot create the directory for {path}")]
    Directory {
        /// The SQLite file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A pool and the backend it talks to.
#[derive(Debug, Clone)]
pub struct Database {
    /// The connection pool.
    pub pool: AnyPool,
    /// The backend behind it.
    pub backend: Backend,
}

impl Database {
    /// Opens `url` (`sqlite://path/file.db` or `postgres://...`); a SQLite
    /// file and its directory are created when missing.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url)?;
        let pool = match backend {
            Backend::Sqlite => open_sqlite(url).await?,
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect(url)
                    .await?
            }
        };
        Ok(Self { pool, backend })
    }

    /// Applies the scripts not applied yet, in order; script `i` is
    /// version `i + 1`. Safe to run from several processes at once.
    pub async fn migrate(&self, scripts: &[&str]) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;
        self.lock_migrations(&mut tx).await?;
        tx.execute(
            "CREATE TABLE IF NOT EXISTS lectern_migrations (
                version BIGINT PRIMARY KEY,
                applied_at BIGINT NOT NULL)",
        )
        .await?;
        tx.commit().await?;
        for (i, script) in scripts.iter().enumerate() {
            self.apply(i as i64 + 1, script).await?;
        }
        Ok(())
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// `BEGIN` (waiting up to the busy timeout), because a transaction that
    /// reads first and writes later fails at once with "database is
    /// locked" when another connection wrote in between.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// On PostgreSQL, serialises migrators (replicas starting together)
    /// until the transaction ends; SQLite's write lock already does.
    async fn lock_migrations(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(), DbError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7316)")
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn apply(&self, version: i64, script: &str) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;
        self.lock_migrations(&mut tx).await?;
        let done: Option<AnyRow> =
            sqlx::query("SELECT version FROM lectern_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            return Ok(());
        }
        tx.execute(script).await?;
        sqlx::query(
            "INSERT INTO lectern_migrations (version, applied_at)
             VALUES ($1, $2)",
        )
        .bind(version)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<(), String> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

fn backend_of(url: &str) -> Result<Backend, DbError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Backend::Postgres)
    } else {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        Err(DbError::UnsupportedUrl(format!("{scheme}:")))
    }
}

async fn open_sqlite(url: &str) -> Result<AnyPool, DbError> {
    let path = url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    if let Some(dir) = std::path::Path::new(&path).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|source| DbError::Directory {
                path: path.clone(),
                source,
            })?;
        }
    }
    let url = format!("sqlite://{path}?mode=rwc");
    let pool = AnyPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // WAL lets replicas read while one writes; FULL sync keeps
                // every acknowledged write through a power cut.
                conn.execute(
                    "PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = FULL;
                     PRAGMA busy_timeout = 10000;
                     PRAGMA foreign_keys = ON;",
                )
                .await?;
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    Ok(pool)
}

/// Milliseconds since the Unix epoch, the unit every stored time uses.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Whether `error` is a unique-constraint violation, on either backend.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || db
                    .code()
                    .is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsupported_url_is_named_by_its_scheme_only() {
        let url = "mysql://user:SuperSecret1@127.0.0.1/db";

        let message = backend_of(url).unwrap_err().to_string();

        assert!(message.contains("\"mysql:\""), "{message}");
        assert!(!message.contains("SuperSecret1"), "{message}");
    }
}
