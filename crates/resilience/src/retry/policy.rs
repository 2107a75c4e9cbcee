//! The decisions a caller can replace: which requests may be sent twice,
//! and which results are worth another attempt.

use crate::error::{hint_of, BoxError, RetryHint};

/// Says whether a request may be sent more than once: it is idempotent, or
/// it carries an idempotency key the receiver deduplicates on.
///
/// Any `Fn(&Req) -> bool` is one, for example
/// `|req: &http::Request<B>| req.method().is_idempotent()
///  || req.headers().contains_key("idempotency-key")`.
pub trait RetrySafe<Req> {
    /// True when sending `req` again cannot do a thing twice.
    fn is_retry_safe(&self, req: &Req) -> bool;
}

impl<Req, F> RetrySafe<Req> for F
where
    F: Fn(&Req) -> bool,
{
    fn is_retry_safe(&self, req: &Req) -> bool {
        self(req)
    }
}

/// Reads what one attempt's result says about trying again, for the tower
/// layer (whose errors are boxed).
///
/// Any `Fn(&Result<T, BoxError>) -> RetryHint` is one; an answer can ask
/// for a retry too (a 503 with `Retry-After`, say).
pub trait RetryClassify<T> {
    /// What `result` says about another attempt.
    fn hint(&self, result: &Result<T, BoxError>) -> RetryHint;
}

impl<T, F> RetryClassify<T> for F
where
    F: Fn(&Result<T, BoxError>) -> RetryHint,
{
    fn hint(&self, result: &Result<T, BoxError>) -> RetryHint {
        self(result)
    }
}

/// Answers are final; an error is retried when this crate's errors or an
/// `std::io::Error` in its source chain say it may help. Errors this crate
/// cannot read are not retried.
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorHints;

impl<T> RetryClassify<T> for ErrorHints {
    fn hint(&self, result: &Result<T, BoxError>) -> RetryHint {
        match result {
            Ok(_) => RetryHint::FINAL,
            Err(e) => hint_of(e.as_ref()).unwrap_or(RetryHint::FINAL),
        }
    }
}
