//! `POST /api/books/{id}/copies`, `GET /api/copies/{barcode}` and the
//! service-only `GET /internal/copies/{barcode}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use lectern_platform::auth::{Caller, Role};
use lectern_platform::idempotency::IdempotencyKey;
use lectern_platform::{ApiError, ApiJson};
use serde::{Deserialize, Serialize};

use super::idempotent::{stored, Answer, Idempotency};
use super::view::{CopyDetail, InternalCopy};
use super::AppState;
use crate::error::BookError;
use crate::record::{checked_barcode, non_empty};
use crate::store::{self, NewCopy};

/// The body of `POST /api/books/{id}/copies`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CopyBody {
    barcode: String,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    library: Option<String>,
    /// `true` when left out.
    #[serde(default)]
    loanable: Option<bool>,
}

impl CopyBody {
    fn checked(&self) -> Result<NewCopy, BookError> {
        Ok(NewCopy {
            barcode: checked_barcode(&self.barcode)?,
            location: non_empty(self.location.clone()),
            library: non_empty(self.library.clone()),
            loanable: self.loanable.unwrap_or(true),
        })
    }
}

/// What makes two add-copy requests the same: the record and the body.
#[derive(Serialize)]
struct AddCopyRequest<'a> {
    book_id: &'a str,
    copy: &'a CopyBody,
}

/// `POST /api/books/{id}/copies`: librarian. 201 with the copy.
pub(crate) async fn add(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<CopyBody>,
) -> Result<Answer<()>, ApiError> {
    let claims = caller.require(&[Role::Librarian])?;
    let copy = body.checked()?;

    let request = AddCopyRequest {
        book_id: &id,
        copy: &body,
    };
    let idempotency =
        Idempotency::new(app.store.pool(), "add-copy", claims, key, &request);

    idempotency
        .run(move |conn| {
            Box::pin(async move {
                let row = store::add_copy(conn, &id, &copy).await?;
                let detail = CopyDetail::from(row);
                Ok((stored(StatusCode::CREATED, &detail), ()))
            })
        })
        .await
}

/// `GET /api/copies/{barcode}`: anyone.
pub(crate) async fn show(
    State(app): State<AppState>,
    Path(barcode): Path<String>,
) -> Result<Json<CopyDetail>, ApiError> {
    let row = app.store.copy(&barcode).await?;

    Ok(Json(row.into()))
}

/// `GET /internal/copies/{barcode}`: services only.
pub(crate) async fn internal(
    State(app): State<AppState>,
    caller: Caller,
    Path(barcode): Path<String>,
) -> Result<Json<InternalCopy>, ApiError> {
    caller.require(&[Role::Service])?;
    let row = app.store.copy(&barcode).await?;

    Ok(Json(row.into()))
}
