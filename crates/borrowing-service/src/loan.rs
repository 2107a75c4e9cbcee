//! A loan as stored, and as the API shows it.
//!
//! Rows keep times as milliseconds since the epoch; answers show them as
//! RFC 3339 in UTC and add `overdue`, which depends on "now".

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::neighbours::{CopyDetails, Eligibility};

/// One loan row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loan {
    /// UUID v7.
    pub id: String,
    /// The borrower's member id.
    pub member_id: String,
    /// The borrower's card number at checkout.
    // Limitation: card number, book id and title are copied at checkout
    // and not refreshed, so a later change in user-service or
    // book-service does not show in listings, and listing by a new card
    // number misses loans made under the old one.
    pub card_number: String,
    /// The copy lent.
    pub barcode: String,
    /// The record the copy belongs to, at checkout.
    pub book_id: String,
    /// The record's title at checkout, for listings.
    pub title: String,
    /// When it was checked out, in milliseconds.
    pub checked_out_at: i64,
    /// When it is due, in milliseconds.
    pub due_at: i64,
    /// When it came back, in milliseconds; `None` while open.
    pub returned_at: Option<i64>,
    /// How many times it was renewed.
    pub renewals: i64,
}

/// The columns [`Loan::from_row`] reads, in a `SELECT`.
pub const COLUMNS: &str =
    "id, member_id, card_number, barcode, book_id, title, \
     checked_out_at, due_at, returned_at, renewals";

/// A loan as answers show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LoanView {
    /// UUID v7.
    pub id: String,
    /// The borrower's member id.
    pub member_id: String,
    /// The borrower's card number at checkout.
    pub card_number: String,
    /// The copy lent.
    pub barcode: String,
    /// The record the copy belongs to.
    pub book_id: String,
    /// The record's title.
    pub title: String,
    /// RFC 3339, UTC.
    pub checked_out_at: String,
    /// RFC 3339, UTC: the end of the due day in the library's zone.
    pub due_at: String,
    /// RFC 3339, UTC, or null while open.
    pub returned_at: Option<String>,
    /// How many times it was renewed.
    pub renewals: i64,
    /// Open and past due.
    pub overdue: bool,
}

impl Loan {
    /// A new open loan of `copy` to `member`.
    pub fn new(
        member: &Eligibility,
        copy: &CopyDetails,
        now: DateTime<Utc>,
        due: DateTime<Utc>,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            member_id: member.member_id.clone(),
            card_number: member.card_number.clone(),
            barcode: copy.barcode.clone(),
            book_id: copy.book_id.clone(),
            title: copy.title.clone(),
            checked_out_at: now.timestamp_millis(),
            due_at: due.timestamp_millis(),
            returned_at: None,
            renewals: 0,
        }
    }

    /// Reads a row selected with [`COLUMNS`].
    pub fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            member_id: row.try_get("member_id")?,
            card_number: row.try_get("card_number")?,
            barcode: row.try_get("barcode")?,
            book_id: row.try_get("book_id")?,
            title: row.try_get("title")?,
            checked_out_at: row.try_get("checked_out_at")?,
            due_at: row.try_get("due_at")?,
            returned_at: row.try_get("returned_at")?,
            renewals: row.try_get("renewals")?,
        })
    }

    /// Whether the loan is open.
    pub fn is_open(&self) -> bool {
        self.returned_at.is_none()
    }

    /// Open and due before `now`.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.is_open() && self.due_at < now.timestamp_millis()
    }

    /// The loan as answers show it at `now`.
    pub fn view(&self, now: DateTime<Utc>) -> LoanView {
        LoanView {
            id: self.id.clone(),
            member_id: self.member_id.clone(),
            card_number: self.card_number.clone(),
            barcode: self.barcode.clone(),
            book_id: self.book_id.clone(),
            title: self.title.clone(),
            checked_out_at: rfc3339(self.checked_out_at),
            due_at: rfc3339(self.due_at),
            returned_at: self.returned_at.map(rfc3339),
            renewals: self.renewals,
            overdue: self.is_overdue(now),
        }
    }
}

/// Milliseconds since the epoch as RFC 3339 in UTC, fractions only when
/// there are some.
pub fn rfc3339(millis: i64) -> String {
    DateTime::from_timestamp_millis(millis)
        .unwrap_or(DateTime::UNIX_EPOCH)
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_show_as_utc_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_500), "1970-01-01T00:00:01.500Z");
    }

    #[test]
    fn overdue_means_open_and_past_due() {
        let mut loan = Loan {
            id: "l".into(),
            member_id: "m".into(),
            card_number: "c".into(),
            barcode: "b".into(),
            book_id: "k".into(),
            title: "t".into(),
            checked_out_at: 0,
            due_at: 1_000,
            returned_at: None,
            renewals: 0,
        };
        let at = |ms| DateTime::from_timestamp_millis(ms).unwrap();

        assert!(!loan.is_overdue(at(1_000)));
        assert!(loan.is_overdue(at(1_001)));
        loan.returned_at = Some(5);
        assert!(!loan.is_overdue(at(2_000)));
    }
}
