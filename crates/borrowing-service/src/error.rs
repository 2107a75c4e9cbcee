//! Every way a loan operation fails, and the one place each becomes an
//! HTTP status.

use lectern_platform::client::CallError;
use lectern_platform::ApiError;

use crate::neighbours::LookupError;

/// Seconds a client is told to wait when a neighbour could not answer
/// and said nothing itself.
const RETRY_AFTER_SECS: u64 = 5;

/// Why a loan operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LoanError {
    /// A field of the request is wrong.
    #[error("{0}")]
    BadField(String),
    /// A neighbour did not know the member or copy, or could not answer.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The member is suspended.
    #[error("member suspended")]
    MemberSuspended,
    /// The member's status is neither active nor suspended.
    #[error("member status {0:?} does not allow borrowing")]
    MemberNotEligible(String),
    /// The copy may not leave the library.
    #[error("copy {0:?} is not loanable")]
    CopyNotLoanable(String),
    /// The copy has an open loan.
    #[error("copy already on loan")]
    CopyOnLoan,
    /// The member has as many open loans as allowed.
    #[error("loan limit reached: {0} open loans allowed")]
    LoanLimit(i64),
    /// The loan was renewed as often as allowed.
    #[error("renewal limit reached: {0} renewals allowed")]
    RenewalLimit(u32),
    /// The loan is already returned.
    #[error("loan {0} is already returned")]
    AlreadyReturned(String),
    /// No loan has this id.
    #[error("no loan {0:?}")]
    LoanNotFound(String),
    /// The database failed.
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

impl From<LoanError> for ApiError {
    fn from(error: LoanError) -> Self {
        let detail = error.to_string();
        match error {
            LoanError::BadField(_) => Self::bad_request(detail),
            LoanError::Lookup(LookupError::NotFound { .. })
            | LoanError::LoanNotFound(_) => Self::not_found(detail),
            LoanError::Lookup(LookupError::Unavailable(cause)) => {
                unavailable(&cause)
            }
            LoanError::MemberSuspended => {
                Self::unprocessable("member-suspended", detail)
            }
            LoanError::MemberNotEligible(_) => {
                Self::unprocessable("member-not-eligible", detail)
            }
            LoanError::CopyNotLoanable(_) => {
                Self::unprocessable("copy-not-loanable", detail)
            }
            LoanError::CopyOnLoan => Self::conflict("copy-on-loan", detail),
            LoanError::LoanLimit(_) => {
                Self::unprocessable("loan-limit-reached", detail)
            }
            LoanError::RenewalLimit(_) => {
                Self::unprocessable("renewal-limit-reached", detail)
            }
            LoanError::AlreadyReturned(_) => {
                Self::conflict("loan-returned", detail)
            }
            LoanError::Db(cause) => Self::internal(&cause),
        }
    }
}

/// 503 for a neighbour that could not answer, after logging why. The
/// client waits as long as the neighbour asked, or until its breaker lets
/// a trial call through (whole seconds, rounded up), else 5 s.
fn unavailable(cause: &CallError) -> ApiError {
    let retry_after = cause.retry_after().map_or(RETRY_AFTER_SECS, |wait| {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        secs.max(1)
    });
    tracing::warn!(
        event.action = "neighbour-unavailable",
        error.message = %lectern_platform::problem::error_chain(cause),
        "A neighbour could not answer"
    );

    ApiError::unavailable(format!("{cause}; nothing was changed"), retry_after)
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn each_failure_has_its_status() {
        let cases = [
            (LoanError::BadField("x".into()), StatusCode::BAD_REQUEST),
            (LoanError::MemberSuspended, StatusCode::UNPROCESSABLE_ENTITY),
            (LoanError::CopyOnLoan, StatusCode::CONFLICT),
            (LoanError::LoanLimit(2), StatusCode::UNPROCESSABLE_ENTITY),
            (LoanError::RenewalLimit(2), StatusCode::UNPROCESSABLE_ENTITY),
            (LoanError::AlreadyReturned("l".into()), StatusCode::CONFLICT),
            (LoanError::LoanNotFound("l".into()), StatusCode::NOT_FOUND),
        ];
        for (error, status) in cases {
            assert_eq!(ApiError::from(error).status, status);
        }
    }

    #[test]
    fn a_neighbour_that_cannot_answer_is_a_503_with_retry_after() {
        let timeout = CallError::Timeout {
            dependency: "user-service",
            millis: 3000,
        };
        let api = ApiError::from(LoanError::Lookup(LookupError::Unavailable(
            timeout,
        )));
        assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(api.retry_after, Some(RETRY_AFTER_SECS));

        let busy = CallError::Status {
            dependency: "book-service",
            status: 503,
            retry_after: Some(9),
        };
        let api =
            ApiError::from(LoanError::Lookup(LookupError::Unavailable(busy)));
        assert_eq!(api.retry_after, Some(9));

        let open = CallError::CircuitOpen {
            dependency: "book-service",
            retry_after: Some(std::time::Duration::from_millis(1200)),
        };
        let api =
            ApiError::from(LoanError::Lookup(LookupError::Unavailable(open)));
        assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(api.retry_after, Some(2), "rounded up");
    }
}
