//! The HTTP routes of book-service (see `docs/api.md`) and what they
//! share: the state, the answer shapes and idempotent writes.

mod books;
mod copies;
mod idempotent;
mod import;
mod view;

pub(crate) use import::prepare;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::availability::LoanCounts;
use crate::metrics::BookMetrics;
use crate::store::Store;

/// The largest import body accepted; other routes keep the default.
pub(crate) const IMPORT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) loans: LoanCounts,
    pub(crate) metrics: BookMetrics,
}

/// The service's own routes, with their state applied.
pub(crate) fn router(state: AppState) -> Router {
    let import =
        post(import::import).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT));

    Router::new()
        .route("/api/books", get(books::search).post(books::create))
        .route("/api/books/import", import)
        .route("/api/books/{id}", get(books::show))
        .route("/api/books/{id}/copies", post(copies::add))
        .route("/api/copies/{barcode}", get(copies::show))
        .route("/internal/copies/{barcode}", get(copies::internal))
        .with_state(state)
}
