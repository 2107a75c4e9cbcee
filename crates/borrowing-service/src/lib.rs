//! borrowing-service: loans and circulation policy.
//!
//! It owns loans (check out, return, renew, due dates, overdue) and asks
//! user-service whether a member may borrow and book-service what a copy
//! is. A copy being on loan is this service's own fact, so a checkout is
//! one local transaction; the database keeps at most one open loan per
//! copy and a member's open loans under their limit.
//!
//! It does not own members or the catalogue, and never reads their
//! tables. Calls to them go through the resilience stack; when a
//! neighbour cannot answer, checkout uses its last answer if it is young
//! enough (and says so), else answers 503 with `Retry-After` and changes
//! nothing; reads keep working.
//!
//! The `lectern` binary uses [`Config::from_env`] and [`build`].

pub mod circulation;
pub mod clock;
pub mod config;
pub mod error;
pub mod idem;
pub mod loan;
pub mod neighbours;
pub mod policy;
pub mod routes;
pub mod store;

use std::sync::Arc;

use anyhow::Context;
use lectern_platform::cache::CacheBackend;
use lectern_platform::db::Database;
use lectern_platform::health::Health;
use lectern_platform::metrics::Metrics;
use lectern_platform::server::Service;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use policy::Policy;

/// The service's name in logs, metrics and service tokens.
pub const SERVICE_NAME: &str = "borrowing-service";

/// Connects the database, migrates, and returns the service ready to
/// serve.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    let db = Database::connect(&config.common.database_url)
        .await
        .context("cannot open the loans database")?;
    db.migrate(&store::MIGRATIONS)
        .await
        .context("cannot migrate the loans database")?;

    let keys = config.common.keys.clone();
    let metrics = Metrics::new();
    let backend = CacheBackend::connect(config.redis_url.as_deref()).await;
    let neighbours = neighbours::Neighbours::new(&config, &metrics, &backend);
    let state = circulation::AppState {
        db: db.clone(),
        neighbours: Arc::new(neighbours),
        policy: config.policy,
        clock: config.clock,
    };

    tracing::info!(
        event.action = "policy-loaded",
        loan_days = config.policy.loan_days,
        max_renewals = config.policy.max_renewals,
        timezone = %config.policy.timezone,
        "Circulation policy loaded"
    );
    let health = Health::new().with_check("database", move || {
        let db = db.clone();
        async move { db.ping().await }
    });
    Ok(Service::new(SERVICE_NAME, routes::router(state, keys))
        .health(health)
        .metrics(metrics))
}
