//! Running a write with an optional `Idempotency-Key`.
//!
//! The flow of `lectern_platform::idempotency`: look the key up; when
//! fresh, do the work in a transaction and record the answer in the same
//! transaction; if a racing request with the same key recorded first,
//! roll back and answer what it answered.
//!
//! Keys are scoped by operation and caller (`create-book:ana`), so two
//! staff members who happen to pick the same key do not collide.

use std::future::Future;
use std::pin::Pin;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lectern_platform::auth::Claims;
use lectern_platform::db::is_unique_violation;
use lectern_platform::idempotency::{
    fingerprint, lookup, record, IdempotencyKey, StoredResponse,
};
use lectern_platform::ApiError;
use serde::Serialize;
use sqlx::{AnyConnection, AnyPool};

use crate::error::BookError;

/// The future of a write run on the transaction's connection.
pub(crate) type WorkFuture<'c, T> = Pin<
    Box<
        dyn Future<Output = Result<(StoredResponse, T), BookError>> + Send + 'c,
    >,
>;

/// How a write was answered.
#[derive(Debug)]
pub(crate) enum Answer<T> {
    /// The work was done and committed now; `T` says what it did.
    Done(Response, T),
    /// An earlier request with the key was answered again, or the key
    /// was reused with another body (422).
    Replayed(Response),
}

impl<T> IntoResponse for Answer<T> {
    fn into_response(self) -> Response {
        match self {
            Self::Done(response, _) | Self::Replayed(response) => response,
        }
    }
}

/// One request's scope and, when it sent a key, the key and the
/// fingerprint of its body.
#[derive(Debug)]
pub(crate) struct Idempotency<'a> {
    pool: &'a AnyPool,
    scope: String,
    keyed: Option<(String, String)>,
}

impl<'a> Idempotency<'a> {
    /// Reads the key; the body is fingerprinted only when there is one.
    pub(crate) fn new<B: Serialize>(
        pool: &'a AnyPool,
        operation: &str,
        caller: &Claims,
        key: IdempotencyKey,
        body: &B,
    ) -> Self {
        let scope = format!("{operation}:{}", caller.sub);
        let keyed = key.0.map(|k| (k, fingerprint(operation, body)));

        Self { pool, scope, keyed }
    }

    /// Runs `work` once per key, in a transaction that also records the
    /// answer.
    pub(crate) async fn run<T, W>(self, work: W) -> Result<Answer<T>, ApiError>
    where
        W: for<'c> FnOnce(&'c mut AnyConnection) -> WorkFuture<'c, T>,
    {
        if let Some((key, print)) = &self.keyed {
            if let Some(early) = self.early(key, print).await? {
                return Ok(Answer::Replayed(early));
            }
        }

        let mut tx = self.pool.begin().await?;
        let (answer, done) = work(&mut tx).await?;
        if let Some((key, print)) = &self.keyed {
            if let Err(error) =
                record(&mut tx, &self.scope, key, print, &answer).await
            {
                if !is_unique_violation(&error) {
                    return Err(error.into());
                }
                tx.rollback().await?;
                return self.raced(key, print).await.map(Answer::Replayed);
            }
        }
        tx.commit().await?;

        Ok(Answer::Done(fresh(answer), done))
    }

    async fn early(
        &self,
        key: &str,
        print: &str,
    ) -> Result<Option<Response>, ApiError> {
        let prior = lookup(self.pool, &self.scope, key, print).await?;

        prior.into_early_answer().transpose()
    }

    /// The answer of the request that recorded `key` first.
    async fn raced(
        &self,
        key: &str,
        print: &str,
    ) -> Result<Response, ApiError> {
        self.early(key, print).await?.ok_or_else(|| {
            ApiError::conflict(
                "idempotency-race",
                "another request with this Idempotency-Key is in progress",
            )
        })
    }
}

/// A JSON answer to store and send.
pub(crate) fn stored<T: Serialize>(
    status: StatusCode,
    body: &T,
) -> StoredResponse {
    StoredResponse {
        status: status.as_u16(),
        body: serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned()),
    }
}

fn fresh(answer: StoredResponse) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
