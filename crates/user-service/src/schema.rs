//! The service's tables, as portable SQL migrations applied in order.
//!
//! Usernames and card numbers are unique in the database itself, so two
//! replicas racing to create the same one cannot both succeed.

use lectern_platform::db::{is_unique_violation, Database, DbError};

/// How often [`migrate`] tries when replicas race on a fresh database.
const MIGRATE_TRIES: usize = 3;

/// The scripts, in order; never edit one that has shipped, add another.
pub(crate) const MIGRATIONS: &[&str] = &[
    lectern_platform::idempotency::MIGRATION,
    "CREATE TABLE IF NOT EXISTS staff (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS members (
        id TEXT PRIMARY KEY,
        card_number TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        email TEXT NOT NULL,
        status TEXT NOT NULL,
        loan_limit BIGINT NOT NULL,
        search_text TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
];

/// Applies [`MIGRATIONS`], trying again when a replica starting at the
/// same moment created a table first.
///
/// Limitation: this works around a race in the platform's migrator, which
/// creates its `lectern_migrations` table before taking its lock; two
/// PostgreSQL replicas doing so at once collide on a unique index of the
/// catalogue. A second try finds the table made and goes on.
pub(crate) async fn migrate(db: &Database) -> Result<(), DbError> {
    let mut tries = 1;
    loop {
        match db.migrate(MIGRATIONS).await {
            Err(DbError::Sqlx(e)) if is_unique_violation(&e) && tries < MIGRATE_TRIES => {
                tries += 1;
            }
            other => return other,
        }
    }
}
