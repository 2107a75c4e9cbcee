//! Check out, return and renew: the rules and the one transaction each.
//!
//! A checkout is a single local transaction: the member's counter row,
//! the loan row (the database refuses a second open loan of a copy), a
//! conditional take of one of the member's loan slots, and the
//! idempotency record. A return closes the loan and gives the slot back;
//! a renewal moves the due time and counts itself. Each writes before it
//! reads, so SQLite takes its write lock at the first statement.

use std::sync::Arc;

use axum::http::StatusCode;
use lectern_platform::db::{self, Database};
use lectern_platform::idempotency::StoredResponse;

use crate::clock::Clock;
use crate::error::LoanError;
use crate::idem::{json_answer, Idem};
use crate::loan::Loan;
use crate::neighbours::{CopyDetails, Eligibility, Neighbours};
use crate::policy::Policy;
use crate::store;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The loans database.
    pub db: Database,
    /// user-service and book-service.
    pub neighbours: Arc<Neighbours>,
    /// Loan length, renewals, time zone.
    pub policy: Policy,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
}

/// Refuses a member user-service says may not borrow.
pub fn check_member(member: &Eligibility) -> Result<(), LoanError> {
    match member.status.as_str() {
        "active" => Ok(()),
        "suspended" => Err(LoanError::MemberSuspended),
        other => Err(LoanError::MemberNotEligible(other.to_owned())),
    }
}

/// Refuses a copy that may not leave the library.
pub fn check_copy(copy: &CopyDetails) -> Result<(), LoanError> {
    if copy.loanable {
        Ok(())
    } else {
        Err(LoanError::CopyNotLoanable(copy.barcode.clone()))
    }
}

/// Lends `copy` to `member` in one transaction; answers 201 with the loan.
pub async fn check_out(
    state: &AppState,
    member: &Eligibility,
    copy: &CopyDetails,
    idem: &Idem,
) -> Result<StoredResponse, LoanError> {
    let now = state.clock.now();
    let loan = Loan::new(member, copy, now, state.policy.due_at(now));
    let mut tx = state.db.pool.begin().await?;

    store::ensure_counter(&mut tx, &loan.member_id).await?;
    store::insert_loan(&mut tx, &loan)
        .await
        .map_err(|e| on_loan_insert(e, &loan))?;
    if !store::take_slot(&mut tx, &loan.member_id, member.loan_limit).await? {
        return Err(LoanError::LoanLimit(member.loan_limit));
    }

    let answer = json_answer(StatusCode::CREATED, &loan.view(now));
    idem.record(&mut tx, &answer).await?;
    tx.commit().await?;

    tracing::info!(
        event.action = "loan-checked-out",
        loan.id = %loan.id,
        member.id = %loan.member_id,
        copy.barcode = %loan.barcode,
        "Loan created"
    );
    Ok(answer)
}

fn on_loan_insert(error: sqlx::Error, loan: &Loan) -> LoanError {
    if db::is_unique_violation(&error) {
        tracing::debug!(copy.barcode = %loan.barcode, "Copy already on loan");
        return LoanError::CopyOnLoan;
    }
    LoanError::Db(error)
}

/// Closes loan `id` and frees the member's slot; answers 200 with it.
pub async fn return_loan(
    state: &AppState,
    id: &str,
    idem: &Idem,
) -> Result<StoredResponse, LoanError> {
    let now = state.clock.now();
    let mut tx = state.db.pool.begin().await?;

    let closed =
        store::mark_returned(&mut tx, id, now.timestamp_millis()).await?;
    let loan = store::get(&mut *tx, id)
        .await?
        .ok_or_else(|| LoanError::LoanNotFound(id.to_owned()))?;
    if !closed {
        return Err(LoanError::AlreadyReturned(id.to_owned()));
    }
    store::release_slot(&mut tx, &loan.member_id).await?;

    let answer = json_answer(StatusCode::OK, &loan.view(now));
    idem.record(&mut tx, &answer).await?;
    tx.commit().await?;

    tracing::info!(
        event.action = "loan-returned",
        loan.id = %loan.id,
        copy.barcode = %loan.barcode,
        "Loan returned"
    );
    Ok(answer)
}

/// Renews loan `id` for a fresh loan period from today, never shortening
/// it; answers 200 with the loan.
pub async fn renew(
    state: &AppState,
    id: &str,
    idem: &Idem,
) -> Result<StoredResponse, LoanError> {
    let now = state.clock.now();
    let fresh_due = state.policy.due_at(now).timestamp_millis();
    let max = state.policy.max_renewals;
    let mut tx = state.db.pool.begin().await?;

    let renewed = store::renew(&mut tx, id, fresh_due, i64::from(max)).await?;
    let loan = store::get(&mut *tx, id)
        .await?
        .ok_or_else(|| LoanError::LoanNotFound(id.to_owned()))?;
    if !renewed && !loan.is_open() {
        return Err(LoanError::AlreadyReturned(id.to_owned()));
    }
    if !renewed {
        return Err(LoanError::RenewalLimit(max));
    }

    let answer = json_answer(StatusCode::OK, &loan.view(now));
    idem.record(&mut tx, &answer).await?;
    tx.commit().await?;

    tracing::info!(
        event.action = "loan-renewed",
        loan.id = %loan.id,
        loan.renewals = loan.renewals,
        "Loan renewed"
    );
    Ok(answer)
}
