//! The platform's idempotency flow as user-service's POSTs follow it.
//!
//! A POST with an `Idempotency-Key` first looks for an earlier answer; a
//! fresh one does its work and records its answer in the same
//! transaction. If recording hits a racing request's record, or the work
//! hits a unique constraint that a racing request with the same key may
//! have caused, the handler rolls back and looks again ([`Idem::settle`]).
//!
//! Keys are scoped by operation and caller, so two clients can never
//! collide on one key.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lectern_platform::db::is_unique_violation;
use lectern_platform::idempotency::{self, IdempotencyKey, Prior, StoredResponse};
use serde::Serialize;
use sqlx::{AnyConnection, AnyPool};

use crate::error::ServiceError;

/// One POST's key, scope and fingerprint.
#[derive(Debug)]
pub(crate) struct Idem {
    scope: String,
    key: Option<String>,
    fingerprint: String,
}

/// Whether an answer was recorded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// Recorded, or there was no key to record it under.
    Done,
    /// A racing request with the same key recorded first.
    Raced,
}

impl Idem {
    /// The flow for `operation` by `caller` with what identifies the
    /// request (`same`, which must not hold secrets: its digest is stored).
    pub(crate) fn new<T: Serialize>(
        operation: &str,
        caller: &str,
        key: IdempotencyKey,
        same: &T,
    ) -> Self {
        Self {
            scope: format!("{operation}:{caller}"),
            key: key.0,
            fingerprint: idempotency::fingerprint(operation, same),
        }
    }

    /// What an earlier request with this key left; fresh without a key.
    pub(crate) async fn prior(&self, pool: &AnyPool) -> Result<Prior, sqlx::Error> {
        let Some(key) = &self.key else {
            return Ok(Prior::Fresh);
        };
        idempotency::lookup(pool, &self.scope, key, &self.fingerprint).await
    }

    /// The earlier answer to give again, or the 422 for a reused key;
    /// `None` when the work is still to do.
    pub(crate) async fn early(&self, pool: &AnyPool) -> Result<Option<Response>, ServiceError> {
        answer(self.prior(pool).await?)
    }

    /// After a rollback caused by a possible race: the racing request's
    /// answer if it used this key, else `otherwise`.
    pub(crate) async fn settle(
        &self,
        pool: &AnyPool,
        otherwise: ServiceError,
    ) -> Result<Response, ServiceError> {
        match self.early(pool).await? {
            Some(response) => Ok(response),
            None => Err(otherwise),
        }
    }

    /// Records `body` as the answer, inside the work's transaction.
    pub(crate) async fn record(
        &self,
        conn: &mut AnyConnection,
        status: StatusCode,
        body: &str,
    ) -> Result<Recorded, sqlx::Error> {
        let Some(key) = &self.key else {
            return Ok(Recorded::Done);
        };
        let stored = StoredResponse {
            status: status.as_u16(),
            body: body.to_owned(),
        };
        let scope = &self.scope;
        let fingerprint = &self.fingerprint;
        match idempotency::record(conn, scope, key, fingerprint, &stored).await {
            Ok(()) => Ok(Recorded::Done),
            Err(e) if is_unique_violation(&e) => Ok(Recorded::Raced),
            Err(e) => Err(e),
        }
    }
}

fn answer(prior: Prior) -> Result<Option<Response>, ServiceError> {
    match prior {
        Prior::Fresh => Ok(None),
        Prior::Replay(stored) => Ok(Some(stored.into_response())),
        Prior::Mismatch => Err(ServiceError::KeyReused),
    }
}

/// A JSON answer with `status`, as it is sent and as it is recorded.
pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}
