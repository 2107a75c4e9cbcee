//! The shapes answers take (`docs/api.md`), built from stored rows.

use lectern_marc::bib::Isbn;
use serde::Serialize;

use crate::availability::Availability;
use crate::store::{BookRow, CopyRow};

/// A record in answers; search results leave `copies` out.
#[derive(Debug, Serialize)]
pub(crate) struct BookView {
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) copies: Option<Vec<CopyView>>,
    pub(crate) availability: Availability,
}

impl BookView {
    pub(crate) fn new(
        row: BookRow,
        copies: Option<Vec<CopyView>>,
        availability: Availability,
    ) -> Self {
        Self {
            id: row.id,
            source_id: row.source_id,
            title: row.title,
            authors: row.authors,
            subjects: row.subjects,
            isbns: row.isbns,
            publisher: row.publisher,
            year: row.year,
            material: row.material,
            language: row.language,
            copies,
            availability,
        }
    }
}

/// A copy inside a record.
#[derive(Debug, Serialize)]
pub(crate) struct CopyView {
    pub(crate) barcode: String,
    pub(crate) location: Option<String>,
    pub(crate) library: Option<String>,
    pub(crate) loanable: bool,
}

impl From<CopyRow> for CopyView {
    fn from(row: CopyRow) -> Self {
        Self {
            barcode: row.barcode,
            location: row.location,
            library: row.library,
            loanable: row.loanable,
        }
    }
}

/// A copy on its own, with its record's id and title.
#[derive(Debug, Serialize)]
pub(crate) struct CopyDetail {
    pub(crate) barcode: String,
    pub(crate) book_id: String,
    pub(crate) title: String,
    pub(crate) location: Option<String>,
    pub(crate) library: Option<String>,
    pub(crate) loanable: bool,
}

impl From<CopyRow> for CopyDetail {
    fn from(row: CopyRow) -> Self {
        Self {
            barcode: row.barcode,
            book_id: row.book_id,
            title: row.title,
            location: row.location,
            library: row.library,
            loanable: row.loanable,
        }
    }
}

/// What borrowing-service needs to lend a copy.
#[derive(Debug, Serialize)]
pub(crate) struct InternalCopy {
    pub(crate) barcode: String,
    pub(crate) book_id: String,
    pub(crate) title: String,
    pub(crate) loanable: bool,
}

impl From<CopyRow> for InternalCopy {
    fn from(row: CopyRow) -> Self {
        Self {
            barcode: row.barcode,
            book_id: row.book_id,
            title: row.title,
            loanable: row.loanable,
        }
    }
}

/// A page of search results.
#[derive(Debug, Serialize)]
pub(crate) struct SearchPage {
    /// Matches in all pages.
    pub(crate) total: i64,
    pub(crate) limit: i64,
    pub(crate) offset: i64,
    pub(crate) items: Vec<BookView>,
}
