//! book-service: Lectern's catalogue.
//!
//! It owns the bibliographic records of every kind of material (books,
//! scores, sound recordings...) and their copies (barcode, location,
//! library, loanable or not). It answers catalogue searches that ignore
//! case and accents, imports records in batches, and tells how many
//! copies of a record are available by asking borrowing-service for the
//! active loans; when that neighbour cannot answer, availability is
//! reported as unknown rather than guessed.
//!
//! It knows nothing of members or loans beyond those counts. The HTTP
//! contract is `docs/api.md`; the variables it reads are in its README.

mod api;
mod availability;
mod config;
mod error;
mod fold;
mod metrics;
mod record;
mod sample;
mod schema;
mod store;

use anyhow::Context;
use lectern_platform::db::Database;
use lectern_platform::health::Health;
use lectern_platform::server::Service;

pub use config::Config;

/// The name the service logs and calls its neighbours with.
pub const SERVICE_NAME: &str = "book-service";

/// The port used when `LECTERN_BIND` is unset.
pub const DEFAULT_PORT: u16 = 8081;

/// Connects the database, migrates, loads the sample catalogue when asked
/// and the catalogue is empty, and returns the service ready to serve.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    let db = Database::connect(&config.database_url)
        .await
        .context("cannot open the catalogue database")?;
    db.migrate(schema::MIGRATIONS)
        .await
        .context("cannot migrate the catalogue database")?;
    if config.sample_catalogue {
        sample::load_if_empty(&db)
            .await
            .context("cannot load the sample catalogue")?;
    }

    let metrics = lectern_platform::metrics::Metrics::new();
    let state = api::AppState {
        store: store::Store::new(db.clone()),
        loans: availability::LoanCounts::new(&config, &metrics),
        metrics: metrics::BookMetrics::register(&metrics),
    };
    let router = api::router(state).layer(axum::Extension(config.keys.clone()));
    let health = Health::new().with_check("database", move || {
        let db = db.clone();
        async move { db.ping().await }
    });

    Ok(Service::new(SERVICE_NAME, router)
        .health(health)
        .metrics(metrics))
}
