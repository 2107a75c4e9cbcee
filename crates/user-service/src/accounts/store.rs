//! Staff accounts in the database.

use lectern_platform::auth::Role;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};

/// An account as stored.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) id: String,
    pub(crate) username: String,
    pub(crate) password_hash: String,
    pub(crate) role: Role,
    /// Milliseconds since the epoch.
    pub(crate) created_at: i64,
}

/// A stored role that accounts may not have.
#[derive(Debug, thiserror::Error)]
#[error("stored account role {0:?} is unknown")]
struct UnknownRole(String);

fn account(row: &AnyRow) -> Result<Account, sqlx::Error> {
    let role: String = row.try_get("role")?;
    let role = Role::parse(&role)
        .filter(|r| *r != Role::Service)
        .ok_or_else(|| sqlx::Error::Decode(Box::new(UnknownRole(role))))?;
    Ok(Account {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        role,
        created_at: row.try_get("created_at")?,
    })
}

/// The account named `username` (already normalised).
pub(crate) async fn find(pool: &AnyPool, username: &str) -> Result<Option<Account>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, username, password_hash, role, created_at
         FROM staff WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(account).transpose()
}

/// Whether any admin account exists.
pub(crate) async fn admin_exists(pool: &AnyPool) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT id FROM staff WHERE role = $1 LIMIT 1")
        .bind(Role::Admin.as_str())
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

/// Stores a new account; a taken username is a unique violation.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    username: &str,
    password_hash: &str,
    role: Role,
) -> Result<Account, sqlx::Error> {
    let account = Account {
        id: uuid::Uuid::now_v7().to_string(),
        username: username.to_owned(),
        password_hash: password_hash.to_owned(),
        role,
        created_at: lectern_platform::db::now_millis(),
    };
    sqlx::query(
        "INSERT INTO staff (id, username, password_hash, role, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&account.id)
    .bind(&account.username)
    .bind(&account.password_hash)
    .bind(account.role.as_str())
    .bind(account.created_at)
    .execute(conn)
    .await?;
    Ok(account)
}
