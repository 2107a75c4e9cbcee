//! What can go wrong in book-service, and the one place where each
//! failure becomes an HTTP status.

use lectern_platform::ApiError;

use crate::record::InvalidRecord;

/// A failure of a catalogue operation.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BookError {
    /// A field or parameter is wrong.
    #[error("{0}")]
    Invalid(String),
    /// No record has this id.
    #[error("no book has id {0:?}")]
    BookNotFound(String),
    /// No copy has this barcode.
    #[error("no copy has barcode {0:?}")]
    CopyNotFound(String),
    /// The barcode already belongs to a copy.
    #[error("barcode {0:?} is already in the catalogue")]
    DuplicateBarcode(String),
    /// A record with the same key exists (create only; import updates).
    #[error("a record with key {key:?} already exists: book {id}")]
    RecordExists {
        /// The record key.
        key: String,
        /// The existing record's id.
        id: String,
    },
    /// A stored column does not decode.
    #[error("book {id} has a corrupt {column} column")]
    Corrupt {
        /// The record.
        id: String,
        /// The column.
        column: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl From<InvalidRecord> for BookError {
    fn from(why: InvalidRecord) -> Self {
        Self::Invalid(why.0)
    }
}

impl From<BookError> for ApiError {
    fn from(error: BookError) -> Self {
        let detail = error.to_string();
        match error {
            BookError::Invalid(_) => ApiError::bad_request(detail),
            BookError::BookNotFound(_) | BookError::CopyNotFound(_) => {
                ApiError::not_found(detail)
            }
            BookError::DuplicateBarcode(_) => {
                ApiError::conflict("duplicate-barcode", detail)
            }
            BookError::RecordExists { .. } => {
                ApiError::conflict("record-exists", detail)
            }
            BookError::Corrupt { .. } | BookError::Database(_) => {
                ApiError::internal(&error)
            }
        }
    }
}
