//! `POST /api/books/import`: a batch of records upserted in one
//! transaction, by record key, with their copies upserted by barcode.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use lectern_platform::auth::{Caller, Role};
use lectern_platform::idempotency::IdempotencyKey;
use lectern_platform::{ApiError, ApiJson};
use serde::{Deserialize, Serialize};

use super::idempotent::{stored, Answer, Idempotency};
use super::AppState;
use crate::error::BookError;
use crate::record::{Prepared, RecordInput};
use crate::store::{self, ImportCounts};

/// The most records one call may carry.
pub(crate) const MAX_RECORDS: usize = 1000;

/// The body of an import.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ImportBody {
    records: Vec<RecordInput>,
}

/// Checks every record; the first bad one refuses the whole batch.
pub(crate) fn prepare(
    records: Vec<RecordInput>,
) -> Result<Vec<Prepared>, BookError> {
    if records.len() > MAX_RECORDS {
        return Err(BookError::Invalid(format!(
            "{} records in one import; send at most {MAX_RECORDS} per call",
            records.len()
        )));
    }

    records
        .into_iter()
        .enumerate()
        .map(|(i, input)| {
            input.into_bib().map(Prepared::new).map_err(|why| {
                BookError::Invalid(format!("records[{i}]: {why}"))
            })
        })
        .collect()
}

/// `POST /api/books/import`: librarian.
pub(crate) async fn import(
    State(app): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<ImportBody>,
) -> Result<Answer<ImportCounts>, ApiError> {
    let claims = caller.require(&[Role::Librarian])?;
    let start = Instant::now();
    let idempotency =
        Idempotency::new(app.store.pool(), "import-books", claims, key, &body);
    let prepared = prepare(body.records)?;
    let received = prepared.len();

    let answer = idempotency
        .run(move |conn| {
            Box::pin(async move {
                let counts = store::import(conn, prepared).await?;
                Ok((stored(StatusCode::OK, &counts), counts))
            })
        })
        .await?;

    if let Answer::Done(_, counts) = &answer {
        app.metrics.imported(counts.imported, counts.updated);
        tracing::info!(
            event.action = "catalogue-import",
            records = received,
            imported = counts.imported,
            updated = counts.updated,
            copies = counts.copies,
            event.duration =
                u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            "Imported {received} records"
        );
    }
    Ok(answer)
}
