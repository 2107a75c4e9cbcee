//! The catalogue's storage: reading records and copies, searching, and
//! the writes (in [`write`]) that handlers run inside their transaction.
//!
//! Every query is portable SQL for sqlx's `Any` driver: `$n`
//! placeholders, text ids, `BIGINT` times, lists stored as JSON text.

mod search;
mod write;

use std::collections::HashMap;

use lectern_marc::bib::Isbn;
use lectern_platform::db::Database;
use serde::de::DeserializeOwned;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::BookError;

pub(crate) use search::SearchQuery;
pub(crate) use write::{add_copy, create, import, ImportCounts, NewCopy};

/// The columns a [`BookRow`] is read from.
const BOOK_COLUMNS: &str = "id, source_id, title, authors, subjects, isbns, \
                            publisher, year, material, language";

/// The columns a [`CopyRow`] is read from (`copies c` joined with
/// `books b`). sqlx's `Any` driver cannot decode SQLite's `BOOLEAN`, so
/// the flag is read as an integer on both backends.
const COPY_COLUMNS: &str = "c.barcode, c.book_id, b.title, c.location, \
    c.library, CASE WHEN c.loanable THEN 1 ELSE 0 END AS loanable";

/// A record as stored.
#[derive(Debug, Clone)]
pub(crate) struct BookRow {
    pub(crate) id: String,
    pub(crate) source_id: Option<String>,
    pub(crate) title: String,
    pub(crate) authors: Vec<String>,
    pub(crate) subjects: Vec<String>,
    pub(crate) isbns: Vec<Isbn>,
    pub(crate) publisher: Option<String>,
    pub(crate) year: Option<String>,
    pub(crate) material: String,
    pub(crate) language: Option<String>,
}

/// A copy as stored, with its record's title.
#[derive(Debug, Clone)]
pub(crate) struct CopyRow {
    pub(crate) barcode: String,
    pub(crate) book_id: String,
    pub(crate) title: String,
    pub(crate) location: Option<String>,
    pub(crate) library: Option<String>,
    pub(crate) loanable: bool,
}

/// How many copies a record has, and how many of them may be lent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stock {
    pub(crate) total: i64,
    pub(crate) loanable: i64,
}

/// The catalogue's database.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    db: Database,
}

impl Store {
    pub(crate) fn new(db: Database) -> Self {
        Self { db }
    }

    pub(crate) fn pool(&self) -> &sqlx::AnyPool {
        &self.db.pool
    }

    /// The record with `id`.
    pub(crate) async fn book(&self, id: &str) -> Result<BookRow, BookError> {
        let sql = format!("SELECT {BOOK_COLUMNS} FROM books WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| BookError::BookNotFound(id.to_owned()))?;

        book_from_row(&row)
    }

    /// The copies of record `id`, by barcode.
    pub(crate) async fn copies_of(
        &self,
        id: &str,
    ) -> Result<Vec<CopyRow>, BookError> {
        let sql = format!(
            "SELECT {COPY_COLUMNS}
             FROM copies c JOIN books b ON b.id = c.book_id
             WHERE c.book_id = $1 ORDER BY c.barcode"
        );
        let rows = sqlx::query(&sql).bind(id).fetch_all(&self.db.pool).await?;

        rows.iter().map(copy_from_row).collect()
    }

    /// The copy with `barcode`.
    pub(crate) async fn copy(
        &self,
        barcode: &str,
    ) -> Result<CopyRow, BookError> {
        let sql = format!(
            "SELECT {COPY_COLUMNS}
             FROM copies c JOIN books b ON b.id = c.book_id
             WHERE c.barcode = $1"
        );
        let row = sqlx::query(&sql)
            .bind(barcode)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| BookError::CopyNotFound(barcode.to_owned()))?;

        copy_from_row(&row)
    }

    /// The stock of each record in `ids` that has copies.
    pub(crate) async fn stock(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, Stock>, BookError> {
        let mut stock = HashMap::new();
        if ids.is_empty() {
            return Ok(stock);
        }

        let sql = format!(
            "SELECT book_id, COUNT(*) AS total,
                    COUNT(CASE WHEN loanable THEN 1 END) AS loanable
             FROM copies WHERE book_id IN ({}) GROUP BY book_id",
            placeholders(1, ids.len())
        );
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&self.db.pool).await? {
            let counts = Stock {
                total: row.try_get("total")?,
                loanable: row.try_get("loanable")?,
            };
            stock.insert(row.try_get("book_id")?, counts);
        }

        Ok(stock)
    }

    /// How many records the catalogue holds.
    pub(crate) async fn count_books(&self) -> Result<i64, BookError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM books")
            .fetch_one(&self.db.pool)
            .await?;

        Ok(row.try_get("n")?)
    }
}

/// `$first, $first+1, ...`, `count` of them.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, ..., $cols), ($cols+1, ...)`, `rows` groups.
pub(crate) fn value_rows(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(r * cols + 1, cols)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn book_from_row(row: &AnyRow) -> Result<BookRow, BookError> {
    let id: String = row.try_get("id")?;

    Ok(BookRow {
        source_id: row.try_get("source_id")?,
        title: row.try_get("title")?,
        authors: json_column(row, &id, "authors")?,
        subjects: json_column(row, &id, "subjects")?,
        isbns: json_column(row, &id, "isbns")?,
        publisher: row.try_get("publisher")?,
        year: row.try_get("year")?,
        material: row.try_get("material")?,
        language: row.try_get("language")?,
        id,
    })
}

fn json_column<T: DeserializeOwned>(
    row: &AnyRow,
    id: &str,
    column: &'static str,
) -> Result<T, BookError> {
    let text: String = row.try_get(column)?;

    serde_json::from_str(&text).map_err(|source| BookError::Corrupt {
        id: id.to_owned(),
        column,
        source,
    })
}

fn copy_from_row(row: &AnyRow) -> Result<CopyRow, BookError> {
    Ok(CopyRow {
        barcode: row.try_get("barcode")?,
        book_id: row.try_get("book_id")?,
        title: row.try_get("title")?,
        location: row.try_get("location")?,
        library: row.try_get("library")?,
        loanable: row.try_get::<i64, _>("loanable")? != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_in_order() {
        assert_eq!(placeholders(3, 2), "$3, $4");
        assert_eq!(value_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }
}
