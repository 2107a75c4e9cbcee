//! The catalogue's tables, as migrations that run on SQLite and
//! PostgreSQL alike.
//!
//! `books` keeps each record as it was given (lists as JSON text) plus
//! folded copies of the searched fields, so search is a `LIKE` on plain
//! lower-case text. `record_key` is what an import matches records by.
//! `copies` hangs off `books`; a barcode is unique across the catalogue.

/// The scripts, in order; never edit one that has shipped, add another.
pub(crate) const MIGRATIONS: &[&str] =
    &[BOOKS, COPIES, lectern_platform::idempotency::MIGRATION];

const BOOKS: &str = "
CREATE TABLE books (
    id TEXT PRIMARY KEY,
    record_key TEXT NOT NULL UNIQUE,
    source_id TEXT,
    title TEXT NOT NULL,
    authors TEXT NOT NULL,
    subjects TEXT NOT NULL,
    isbns TEXT NOT NULL,
    publisher TEXT,
    year TEXT,
    material TEXT NOT NULL,
    language TEXT,
    warnings TEXT NOT NULL,
    title_fold TEXT NOT NULL,
    authors_fold TEXT NOT NULL,
    subjects_fold TEXT NOT NULL,
    isbn_keys TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX books_title_order ON books (title_fold, id);
";

const COPIES: &str = "
CREATE TABLE copies (
    barcode TEXT PRIMARY KEY,
    book_id TEXT NOT NULL REFERENCES books (id),
    location TEXT,
    library TEXT,
    loanable BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX copies_book ON copies (book_id);
";
