//! The loans database: schema and every query.
//!
//! Two rules live in the schema rather than in code: a copy has at most
//! one open loan (a partial unique index on `barcode` where `returned_at`
//! is null), and a member's open loans are counted in `member_counters`,
//! whose slot is taken with a conditional `UPDATE` so the limit holds
//! under concurrency on SQLite and PostgreSQL alike.
//!
//! Functions that change loans take the transaction's connection; the
//! caller decides what commits together.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Row};

use crate::loan::{Loan, COLUMNS};

/// Loans, counters and their indexes.
const SCHEMA: &str = "
CREATE TABLE loans (
    id TEXT PRIMARY KEY,
    member_id TEXT NOT NULL,
    card_number TEXT NOT NULL,
    barcode TEXT NOT NULL,
    book_id TEXT NOT NULL,
    title TEXT NOT NULL,
    checked_out_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    returned_at BIGINT,
    renewals BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX loans_one_open_per_copy
    ON loans (barcode) WHERE returned_at IS NULL;
CREATE INDEX loans_by_member ON loans (member_id, checked_out_at);
CREATE INDEX loans_by_card ON loans (card_number, checked_out_at);
CREATE INDEX loans_open_by_due ON loans (due_at) WHERE returned_at IS NULL;
CREATE INDEX loans_open_by_book ON loans (book_id) WHERE returned_at IS NULL;
CREATE TABLE member_counters (
    member_id TEXT PRIMARY KEY,
    open_loans BIGINT NOT NULL
);
";

/// The migrations, in order.
pub const MIGRATIONS: [&str; 2] =
    [SCHEMA, lectern_platform::idempotency::MIGRATION];

/// Which loans of a member to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFilter {
    /// Open and returned.
    All,
    /// Not returned yet.
    Open,
    /// Returned.
    Returned,
}

impl OpenFilter {
    fn sql(self) -> &'static str {
        match self {
            Self::All => "",
            Self::Open => " AND returned_at IS NULL",
            Self::Returned => " AND returned_at IS NOT NULL",
        }
    }
}

/// How a member is named in a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberRef<'a> {
    /// By member id or card number, whichever matches.
    IdOrCard(&'a str),
    /// By member id only.
    Id(&'a str),
}

impl MemberRef<'_> {
    fn sql(self) -> &'static str {
        match self {
            Self::IdOrCard(_) => "(member_id = $1 OR card_number = $1)",
            Self::Id(_) => "member_id = $1",
        }
    }

    fn value(&self) -> &str {
        match self {
            Self::IdOrCard(v) | Self::Id(v) => v,
        }
    }
}

/// A page of loans and how many there are in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Loans matching, in all pages.
    pub total: i64,
    /// This page.
    pub items: Vec<Loan>,
}

/// Makes sure `member_id` has a counter row, at zero if new.
pub async fn ensure_counter(
    conn: &mut AnyConnection,
    member_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO member_counters (member_id, open_loans) VALUES ($1, 0)
         ON CONFLICT (member_id) DO NOTHING",
    )
    .bind(member_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes one of `limit` loan slots; false when all are taken.
pub async fn take_slot(
    conn: &mut AnyConnection,
    member_id: &str,
    limit: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE member_counters SET open_loans = open_loans + 1
         WHERE member_id = $1 AND open_loans < $2",
    )
    .bind(member_id)
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives a loan slot back.
pub async fn release_slot(
    conn: &mut AnyConnection,
    member_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE member_counters SET open_loans = open_loans - 1
         WHERE member_id = $1 AND open_loans > 0",
    )
    .bind(member_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts an open loan. A unique violation means the copy is on loan.
pub async fn insert_loan(
    conn: &mut AnyConnection,
    loan: &Loan,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO loans (id, member_id, card_number, barcode, book_id,
             title, checked_out_at, due_at, returned_at, renewals)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9)",
    )
    .bind(&loan.id)
    .bind(&loan.member_id)
    .bind(&loan.card_number)
    .bind(&loan.barcode)
    .bind(&loan.book_id)
    .bind(&loan.title)
    .bind(loan.checked_out_at)
    .bind(loan.due_at)
    .bind(loan.renewals)
    .execute(conn)
    .await?;
    Ok(())
}

/// Closes open loan `id` at `at`; false when it is unknown or closed.
pub async fn mark_returned(
    conn: &mut AnyConnection,
    id: &str,
    at: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE loans SET returned_at = $1
         WHERE id = $2 AND returned_at IS NULL",
    )
    .bind(at)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Renews open loan `id` while it has had fewer than `max_renewals`: the
/// due time becomes `fresh_due` unless it is already later. False when
/// the loan is unknown, closed or renewed to the limit.
pub async fn renew(
    conn: &mut AnyConnection,
    id: &str,
    fresh_due: i64,
    max_renewals: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE loans
         SET due_at = CASE WHEN due_at > $1 THEN due_at ELSE $1 END,
             renewals = renewals + 1
         WHERE id = $2 AND returned_at IS NULL AND renewals < $3",
    )
    .bind(fresh_due)
    .bind(id)
    .bind(max_renewals)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Loan `id`, if it exists.
pub async fn get<'c, E>(executor: E, id: &str) -> sqlx::Result<Option<Loan>>
where
    E: Executor<'c, Database = Any>,
{
    let sql = format!("SELECT {COLUMNS} FROM loans WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(executor).await?;

    row.as_ref().map(Loan::from_row).transpose()
}

/// A member's loans, newest first.
// Limitation: the total and the page come from two queries, so under
// concurrent writes they may disagree by the loans changed in between.
pub async fn member_loans(
    pool: &AnyPool,
    member: MemberRef<'_>,
    filter: OpenFilter,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Page> {
    let condition = format!("{}{}", member.sql(), filter.sql());
    let count = format!("SELECT COUNT(*) AS n FROM loans WHERE {condition}");
    let total: i64 = sqlx::query(&count)
        .bind(member.value())
        .fetch_one(pool)
        .await?
        .try_get("n")?;

    let select = format!(
        "SELECT {COLUMNS} FROM loans WHERE {condition}
         ORDER BY checked_out_at DESC, id DESC LIMIT $2 OFFSET $3"
    );
    let rows = sqlx::query(&select)
        .bind(member.value())
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?;

    Ok(Page {
        total,
        items: loans(&rows)?,
    })
}

/// Open loans due before `now` (milliseconds), soonest due first.
pub async fn overdue(
    pool: &AnyPool,
    now: i64,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Page> {
    let condition = "returned_at IS NULL AND due_at < $1";
    let count = format!("SELECT COUNT(*) AS n FROM loans WHERE {condition}");
    let total: i64 = sqlx::query(&count)
        .bind(now)
        .fetch_one(pool)
        .await?
        .try_get("n")?;

    let select = format!(
        "SELECT {COLUMNS} FROM loans WHERE {condition}
         ORDER BY due_at, id LIMIT $2 OFFSET $3"
    );
    let rows = sqlx::query(&select)
        .bind(now)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?;

    Ok(Page {
        total,
        items: loans(&rows)?,
    })
}

/// How many open loans each of `book_ids` has; books with none are left
/// out.
pub async fn active_counts(
    pool: &AnyPool,
    book_ids: &[String],
) -> sqlx::Result<Vec<(String, i64)>> {
    if book_ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> =
        (1..=book_ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT book_id, COUNT(*) AS n FROM loans
         WHERE returned_at IS NULL AND book_id IN ({})
         GROUP BY book_id",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for id in book_ids {
        query = query.bind(id);
    }

    let rows = query.fetch_all(pool).await?;
    rows.iter()
        .map(|row| Ok((row.try_get("book_id")?, row.try_get("n")?)))
        .collect()
}

fn loans(rows: &[AnyRow]) -> sqlx::Result<Vec<Loan>> {
    rows.iter().map(Loan::from_row).collect()
}
