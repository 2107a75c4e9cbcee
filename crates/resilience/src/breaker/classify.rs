//! Which outcomes count against a dependency: a policy the caller can
//! replace.
//!
//! The default counts every error as a failure. A caller whose errors
//! include its own mistakes (an HTTP 4xx from a neighbour is the caller's
//! fault, not the neighbour's) supplies a classifier that says so.

use crate::error::Retryable;

/// What one finished call says about the dependency's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The dependency did its job (possibly telling the caller "no").
    Success,
    /// The dependency failed; this counts towards opening the breaker.
    Failure,
    /// Says nothing about the dependency (for example a call the caller
    /// cancelled); counts neither way.
    Ignored,
}

/// Decides the [`Outcome`] of a call from its result.
pub trait Classify<T, E> {
    /// The outcome `result` stands for.
    fn classify(&self, result: &Result<T, E>) -> Outcome;
}

impl<T, E, F> Classify<T, E> for F
where
    F: Fn(&Result<T, E>) -> Outcome,
{
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self(result)
    }
}

/// Every error is a failure, every answer a success.
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorsAreFailures;

impl<T, E> Classify<T, E> for ErrorsAreFailures {
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// Only errors that a retry might cure are failures; an error that says
/// retrying cannot help (a rejected request, an unknown record) means the
/// dependency worked and the caller was wrong.
#[derive(Clone, Copy, Debug, Default)]
pub struct RetryableErrorsAreFailures;

impl<T, E: Retryable> Classify<T, E> for RetryableErrorsAreFailures {
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        match result {
            Err(e) if e.is_retryable() => Outcome::Failure,
            _ => Outcome::Success,
        }
    }
}
