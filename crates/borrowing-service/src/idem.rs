//! The platform's idempotency flow, bound to one request.
//!
//! Keys are scoped by the caller, so two clients that happen to pick the
//! same key never see each other's answers. A request first looks for an
//! earlier answer ([`Idem::earlier`]); a fresh one records its answer in
//! the transaction that did the work ([`Idem::record`]); and a failure in
//! that transaction is checked against a racing twin that may have
//! committed first ([`Idem::settle`]).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lectern_platform::idempotency::{self, IdempotencyKey, StoredResponse};
use lectern_platform::ApiError;
use serde::Serialize;
use sqlx::{AnyConnection, AnyPool};

use crate::error::LoanError;

// Limitation: stored answers are never purged, so the idempotency table
// grows with every keyed POST until an operator prunes old rows.

/// One request's key, scope and fingerprint.
#[derive(Debug, Clone)]
pub struct Idem {
    scope: String,
    key: Option<String>,
    fingerprint: String,
}

impl Idem {
    /// The flow for `operation` with `body`, sent by `caller` with `key`.
    pub fn new<T: Serialize>(
        caller: &str,
        key: IdempotencyKey,
        operation: &str,
        body: &T,
    ) -> Self {
        Self {
            scope: format!("loans:{caller}"),
            key: key.0,
            fingerprint: idempotency::fingerprint(operation, body),
        }
    }

    /// The earlier answer to give again, or the 422 for a key used with
    /// another request; `None` when there is no key or it is fresh.
    pub async fn earlier(
        &self,
        pool: &AnyPool,
    ) -> Result<Option<Response>, ApiError> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        let prior =
            idempotency::lookup(pool, &self.scope, key, &self.fingerprint)
                .await?;

        prior.into_early_answer().transpose()
    }

    /// Records `answer` in the transaction on `conn`, when there is a key.
    pub async fn record(
        &self,
        conn: &mut AnyConnection,
        answer: &StoredResponse,
    ) -> Result<(), sqlx::Error> {
        match &self.key {
            Some(key) => {
                idempotency::record(
                    conn,
                    &self.scope,
                    key,
                    &self.fingerprint,
                    answer,
                )
                .await
            }
            None => Ok(()),
        }
    }

    /// The response for the outcome of the work's transaction. When it
    /// failed and a request with the same key committed meanwhile, that
    /// request's answer is given instead of the failure.
    pub async fn settle(
        &self,
        pool: &AnyPool,
        outcome: Result<StoredResponse, LoanError>,
    ) -> Result<Response, ApiError> {
        match outcome {
            Ok(answer) => Ok(first_answer(answer)),
            Err(error) => match self.earlier(pool).await? {
                Some(replay) => Ok(replay),
                None => Err(error.into()),
            },
        }
    }
}

/// A JSON answer, as it is stored for replays.
pub fn json_answer<T: Serialize>(
    status: StatusCode,
    body: &T,
) -> StoredResponse {
    StoredResponse {
        status: status.as_u16(),
        body: serde_json::to_string(body).unwrap_or_default(),
    }
}

/// The first time an answer is given: no replay marker.
fn first_answer(answer: StoredResponse) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
