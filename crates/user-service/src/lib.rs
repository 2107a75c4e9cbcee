//! user-service: members, staff accounts and their roles, and sign-in.
//!
//! It owns the members a library lends to (card number, name, e-mail,
//! status, loan limit) and the staff accounts that sign in (admin,
//! librarian, member roles). Signing in returns a token signed with the
//! secret every service shares, so the other services check tokens
//! themselves. It asks no other service anything.
//!
//! The `lectern` binary reads a [`Config`] from the environment and
//! serves what [`build`] returns; tests build a [`Config`] by hand.

mod accounts;
mod bootstrap;
mod config;
mod error;
mod idempotent;
mod members;
mod passwords;
mod schema;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use lectern_platform::auth::TokenKeys;
use lectern_platform::db::Database;
use lectern_platform::health::Health;
use lectern_platform::server::Service;

pub use config::Config;
pub use passwords::PasswordCost;

use passwords::Passwords;

/// The name the service logs and reports under.
pub const SERVICE_NAME: &str = "user-service";

/// The port used when `LECTERN_BIND` is unset.
pub const DEFAULT_PORT: u16 = 8082;

/// The largest request body accepted; every body here is small.
const BODY_LIMIT: usize = 64 * 1024;

/// What every handler shares.
#[derive(Clone)]
struct AppState {
    db: Database,
    keys: Arc<TokenKeys>,
    passwords: Arc<Passwords>,
    token_ttl: Duration,
    default_loan_limit: i64,
}

/// Connects the database, migrates, makes the first admin account when
/// there is none, and returns the service ready to serve.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    let db = Database::connect(&config.database_url)
        .await
        .context("cannot open the user-service database")?;
    schema::migrate(&db)
        .await
        .context("cannot migrate the user-service database")?;

    let passwords = Passwords::new(config.password_cost)
        .await
        .context("cannot prepare password hashing")?;
    bootstrap::ensure_admin(&db, &passwords, &config)
        .await
        .context("cannot create the first admin account")?;

    let state = AppState {
        db: db.clone(),
        keys: config.keys.clone(),
        passwords,
        token_ttl: config.token_ttl,
        default_loan_limit: config.default_loan_limit,
    };
    let service = Service::new(SERVICE_NAME, api(state, config.keys))
        .health(health(db))
        .body_limit(BODY_LIMIT);
    Ok(service)
}

/// Every route of the service, with its state and token keys applied.
fn api(state: AppState, keys: Arc<TokenKeys>) -> Router {
    Router::new()
        .merge(accounts::routes())
        .merge(members::routes())
        .with_state(state)
        .layer(axum::Extension(keys))
}

/// Readiness: the database answers.
fn health(db: Database) -> Health {
    Health::new().with_check("database", move || {
        let db = db.clone();
        async move { db.ping().await }
    })
}
