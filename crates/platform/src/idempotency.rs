//! Idempotent POSTs: the same `Idempotency-Key` and body answer the first
//! answer again and change nothing; the same key with another body is
//! refused with 422.
//!
//! A handler looks the key up first ([`lookup`]); when it is fresh it does
//! its work and records the answer ([`record`]) in the same transaction as
//! the work, so an answer is stored if and only if the work committed. Two
//! racing requests with one key cannot both commit: the second one's
//! [`record`] hits the primary key, and it replays the first one's answer.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::problem::ApiError;

/// The table every service that takes keys adds to its migrations.
pub const MIGRATION: &str = "CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (scope, idem_key)
)";

/// The request header that carries the key.
pub const HEADER: &str = "idempotency-key";

/// The longest key accepted.
const MAX_KEY_LEN: usize = 255;

/// The `Idempotency-Key` of a request, if it has one.
#[derive(Debug, Clone, Default)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(HEADER) else {
            return Ok(Self(None));
        };
        let key = value
            .to_str()
            .map_err(|_| ApiError::bad_request("Idempotency-Key is not text"))?
            .trim();
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(ApiError::bad_request(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} characters"
            )));
        }
        Ok(Self(Some(key.to_owned())))
    }
}

/// A stored answer, replayed as it was first given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// Its status code.
    pub status: u16,
    /// Its JSON body.
    pub body: String,
}

impl IntoResponse for StoredResponse {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut response = (status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        response
    }
}

/// What an earlier request with the same key left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prior {
    /// Nothing: do the work.
    Fresh,
    /// The same request was answered: answer this again.
    Replay(StoredResponse),
    /// The key was used with another body.
    Mismatch,
}

impl Prior {
    /// The replay, or the 422 for a reused key; `None` when fresh.
    pub fn into_early_answer(self) -> Option<Result<Response, ApiError>> {
        match self {
            Self::Fresh => None,
            Self::Replay(stored) => Some(Ok(stored.into_response())),
            Self::Mismatch => Some(Err(reused_key())),
        }
    }
}

/// The 422 for a key reused with another body.
pub fn reused_key() -> ApiError {
    ApiError::unprocessable(
        "idempotency-key-reused",
        "this Idempotency-Key was already used with a different request",
    )
}

/// A digest of what makes two requests the same: operation and body.
pub fn fingerprint<T: Serialize>(operation: &str, body: &T) -> String {
    let json = serde_json::to_vec(body).unwrap_or_default();
    let mut hash = Sha256::new();
    hash.update(operation.as_bytes());
    hash.update([0]);
    hash.update(&json);
    format!("{:x}", hash.finalize())
}

/// What an earlier request with `key` in `scope` left.
pub async fn lookup(
    pool: &AnyPool,
    scope: &str,
    key: &str,
    fingerprint: &str,
) -> Result<Prior, sqlx::Error> {
    let row = sqlx::query(
        "SELECT fingerprint, status, body FROM idempotency_keys
         WHERE scope = $1 AND idem_key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(Prior::Fresh);
    };

    let stored: String = row.try_get("fingerprint")?;
    if stored != fingerprint {
        return Ok(Prior::Mismatch);
    }
    let status: i64 = row.try_get("status")?;
    Ok(Prior::Replay(StoredResponse {
        status: u16::try_from(status).unwrap_or(200),
        body: row.try_get("body")?,
    }))
}

/// Records the answer inside the transaction that did the work. A unique
/// violation here means a racing request with the same key committed
/// first: roll back and [`lookup`] again.
pub async fn record(
    conn: &mut AnyConnection,
    scope: &str,
    key: &str,
    fingerprint: &str,
    answer: &StoredResponse,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO idempotency_keys
         (scope, idem_key, fingerprint, status, body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(scope)
    .bind(key)
    .bind(fingerprint)
    .bind(i64::from(answer.status))
    .bind(&answer.body)
    .bind(crate::db::now_millis())
    .execute(conn)
    .await?;
    Ok(())
}
