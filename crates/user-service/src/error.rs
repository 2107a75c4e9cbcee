//! The service's failures and, in one place, the HTTP status of each.

use axum::response::{IntoResponse, Response};
use lectern_platform::ApiError;

use crate::passwords::HashError;

/// A field of a request that is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub(crate) struct Invalid {
    /// The field, as the request names it.
    pub(crate) field: &'static str,
    /// What is wrong with it.
    pub(crate) reason: String,
}

impl Invalid {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Why a request to user-service failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServiceError {
    /// Sign-in refused; never says whether the name or the password was
    /// wrong.
    #[error("invalid username or password")]
    BadCredentials,
    /// A field is missing or wrong.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The card number belongs to another member.
    #[error("a member with card number {0} already exists")]
    CardTaken(String),
    /// The username belongs to another account.
    #[error("an account named {0} already exists")]
    UsernameTaken(String),
    /// No member has this id or card number.
    #[error("no member has the id or card number {0}")]
    NoSuchMember(String),
    /// The Idempotency-Key was used with another request.
    #[error("idempotency key reused with a different request")]
    KeyReused,
    /// A request with the same Idempotency-Key is still being handled.
    #[error("a request with this Idempotency-Key is in progress; retry")]
    KeyInFlight,
    /// A check the platform made, already an HTTP problem (a role check).
    #[error(transparent)]
    Refused(#[from] ApiError),
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Hashing a password failed.
    #[error("password hashing failed")]
    Hashing(#[from] HashError),
    /// An answer could not be written as JSON.
    #[error("cannot encode the answer")]
    Encoding(#[from] serde_json::Error),
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        use ServiceError as E;

        let detail = error.to_string();
        match error {
            E::BadCredentials => ApiError::unauthorized(detail),
            E::Invalid(_) => ApiError::bad_request(detail),
            E::CardTaken(_) => ApiError::conflict("card-number-taken", detail),
            E::UsernameTaken(_) => ApiError::conflict("username-taken", detail),
            E::NoSuchMember(_) => ApiError::not_found(detail),
            E::KeyReused => lectern_platform::idempotency::reused_key(),
            E::KeyInFlight => ApiError::conflict("key-in-flight", detail),
            E::Refused(problem) => problem,
            E::Database(_) | E::Hashing(_) | E::Encoding(_) => ApiError::internal(&error),
        }
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
