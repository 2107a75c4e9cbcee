//! How many copies of a record can be lent now.
//!
//! The catalogue knows the copies; borrowing-service knows which are on
//! loan. [`LoanCounts`] asks it for the active loans of a page of
//! records in one call (`GET /internal/loans/active-counts`). When it is
//! not configured, down, slow or answers nonsense, the answer is
//! [`Availability::unknown`] with the reason, never a guessed number,
//! and the catalogue request still succeeds.
//!
//! The call goes through the platform client's stack: retries, a
//! bulkhead, and a circuit breaker whose state is on `/metrics`. Once the
//! breaker is open a catalogue read answers "unknown" at once instead of
//! waiting for a dead neighbour. Counts are never cached: an old count
//! would be a guess.

use std::collections::HashMap;

use lectern_platform::client::ServiceClient;
use lectern_platform::metrics::Metrics;
use lectern_platform::problem::error_chain;
use lectern_platform::server::Deadline;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::store::Stock;

/// The neighbour asked, as logs and errors name it.
const DEPENDENCY: &str = "borrowing-service";

/// The availability of one record, as answers show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Availability {
    /// Copies of the record.
    pub(crate) total: i64,
    /// Copies that can be lent now; `null` when unknown.
    pub(crate) available: Option<i64>,
    /// Present and `true` when the count could not be had.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) unknown: bool,
    /// Why it is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

impl Availability {
    /// Loanable copies minus active loans, never below zero.
    pub(crate) fn known(stock: Stock, active: i64) -> Self {
        Self {
            total: stock.total,
            available: Some((stock.loanable - active).max(0)),
            unknown: false,
            reason: None,
        }
    }

    /// The count could not be had, for `reason`.
    pub(crate) fn unknown(stock: Stock, reason: &str) -> Self {
        Self {
            total: stock.total,
            available: None,
            unknown: true,
            reason: Some(reason.to_owned()),
        }
    }
}

/// The active loans per record id, or why they are unknown.
pub(crate) type ActiveLoans = Result<HashMap<String, i64>, String>;

/// The answer of `GET /internal/loans/active-counts`.
#[derive(Debug, Deserialize)]
struct CountsBody {
    counts: HashMap<String, i64>,
}

/// Asks borrowing-service for active loan counts.
#[derive(Debug, Clone)]
pub(crate) struct LoanCounts {
    client: Option<ServiceClient>,
}

impl LoanCounts {
    /// A client for `BORROWING_SERVICE_URL`, or none when unset; its
    /// breaker, retries and bulkhead are reported in `metrics`.
    pub(crate) fn new(config: &Config, metrics: &Metrics) -> Self {
        let client = config.borrowing_url.as_deref().map(|url| {
            ServiceClient::with_policy(
                DEPENDENCY,
                crate::SERVICE_NAME,
                url,
                config.keys.clone(),
                config.call_timeout,
                &config.calls,
            )
            .observed_by(metrics)
        });

        Self { client }
    }

    /// The active loans of each of `ids` (ids without loans may be
    /// missing). No call is made for no ids.
    pub(crate) async fn active(
        &self,
        ids: &[&str],
        deadline: Option<Deadline>,
    ) -> ActiveLoans {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let Some(client) = &self.client else {
            return Err(
                "BORROWING_SERVICE_URL is not set, so loans cannot be counted"
                    .into(),
            );
        };

        let path =
            format!("/internal/loans/active-counts?book_ids={}", ids.join(","));
        match client.get_json::<CountsBody>(&path, deadline).await {
            Ok(body) => Ok(body.counts),
            Err(error) => {
                tracing::warn!(
                    event.action = "availability-unknown",
                    error.message = %error_chain(&error),
                    "Cannot count active loans; availability is unknown"
                );
                // The client sees the failure, not the neighbour's address.
                Err(error.to_string())
            }
        }
    }
}

/// The availability of record `id` given its stock and the loans.
pub(crate) fn of(id: &str, stock: Stock, loans: &ActiveLoans) -> Availability {
    if stock.total == 0 {
        return Availability::known(stock, 0);
    }

    match loans {
        Ok(counts) => {
            Availability::known(stock, counts.get(id).copied().unwrap_or(0))
        }
        Err(reason) => Availability::unknown(stock, reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stock(total: i64, loanable: i64) -> Stock {
        Stock { total, loanable }
    }

    #[test]
    fn available_is_loanable_minus_loans_never_negative() {
        let loans: ActiveLoans = Ok(HashMap::from([("a".to_owned(), 1)]));

        assert_eq!(of("a", stock(3, 3), &loans).available, Some(2));
        assert_eq!(of("a", stock(3, 1), &loans).available, Some(0));
        assert_eq!(of("b", stock(2, 1), &loans).available, Some(1));
        let over: ActiveLoans = Ok(HashMap::from([("a".to_owned(), 5)]));
        assert_eq!(of("a", stock(3, 3), &over).available, Some(0));
    }

    #[test]
    fn unknown_says_why_and_serializes_as_documented() {
        let loans: ActiveLoans = Err("down".into());
        let json = serde_json::to_value(of("a", stock(3, 3), &loans)).unwrap();

        assert_eq!(
            json,
            serde_json::json!({
                "total": 3, "available": null, "unknown": true, "reason": "down"
            })
        );
        let known =
            serde_json::to_value(Availability::known(stock(3, 3), 1)).unwrap();
        assert_eq!(known, serde_json::json!({"total": 3, "available": 2}));
    }

    #[test]
    fn a_record_without_copies_needs_no_answer() {
        let loans: ActiveLoans = Err("down".into());
        assert_eq!(of("a", stock(0, 0), &loans).available, Some(0));
    }
}
