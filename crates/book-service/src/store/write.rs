//! Writes to the catalogue, each run on a connection inside the caller's
//! transaction so that the idempotency record commits with the work.
//!
//! Every write starts with a write statement: on SQLite that takes the
//! write lock at once (waiting for it), instead of reading first and
//! failing to upgrade when another writer got in between.
//!
//! The import is batched: one multi-row upsert per chunk of records,
//! one select for their ids, one multi-row upsert per chunk of copies.

use std::collections::HashMap;

use lectern_platform::db::{is_unique_violation, now_millis};
use sqlx::{AnyConnection, Row};

use super::{placeholders, value_rows, CopyRow};
use crate::error::BookError;
use crate::record::Prepared;

/// The columns of `books` a record is written to, in bind order.
const BOOK_INSERT: &str = "INSERT INTO books (id, record_key, source_id, \
    title, authors, subjects, isbns, publisher, year, material, language, \
    warnings, title_fold, authors_fold, subjects_fold, isbn_keys, \
    created_at, updated_at) VALUES";
const BOOK_COLS: usize = 18;

/// What an import overwrites on a record that exists.
const BOOK_UPSERT: &str = "ON CONFLICT (record_key) DO UPDATE SET \
    source_id = excluded.source_id, title = excluded.title, \
    authors = excluded.authors, subjects = excluded.subjects, \
    isbns = excluded.isbns, publisher = excluded.publisher, \
    year = excluded.year, material = excluded.material, \
    language = excluded.language, warnings = excluded.warnings, \
    title_fold = excluded.title_fold, authors_fold = excluded.authors_fold, \
    subjects_fold = excluded.subjects_fold, isbn_keys = excluded.isbn_keys, \
    updated_at = excluded.updated_at";

const COPY_INSERT: &str = "INSERT INTO copies (barcode, book_id, location, \
    library, loanable, created_at, updated_at) VALUES";
const COPY_COLS: usize = 7;

/// A copy that moves keeps what the import does not say; `loanable` is
/// never changed by an import.
// Limitation: an import only adds and moves copies. A copy that a record
// no longer lists stays where it is (it may be on loan), and copies made
// by an import are loanable (`CopySpec` carries no flag); withdrawing a
// copy or marking it not loanable is done through the copies route.
const COPY_UPSERT: &str = "ON CONFLICT (barcode) DO UPDATE SET \
    book_id = excluded.book_id, \
    location = COALESCE(excluded.location, copies.location), \
    library = COALESCE(excluded.library, copies.library), \
    updated_at = excluded.updated_at";

/// Records per multi-row statement (18 values each).
const BOOK_CHUNK: usize = 200;
/// Copies per multi-row statement (7 values each).
const COPY_CHUNK: usize = 400;
/// Keys per `IN (...)` lookup.
const KEY_CHUNK: usize = 500;

/// The values of one `books` row, owned so queries can borrow them.
struct BookValues {
    id: String,
    key: String,
    source_id: Option<String>,
    title: String,
    authors: String,
    subjects: String,
    isbns: String,
    publisher: Option<String>,
    year: Option<String>,
    material: String,
    language: Option<String>,
    warnings: String,
    title_fold: String,
    authors_fold: String,
    subjects_fold: String,
    isbn_keys: String,
}

impl BookValues {
    fn new(id: String, p: &Prepared) -> Self {
        let r = &p.record;
        Self {
            id,
            key: p.key.clone(),
            source_id: r.source_id.clone(),
            title: r.title.clone(),
            authors: to_json(&r.authors),
            subjects: to_json(&r.subjects),
            isbns: to_json(&r.isbns),
            publisher: r.publisher.clone(),
            year: r.year.clone(),
            material: r.material.clone(),
            language: r.language.clone(),
            warnings: to_json(&r.warnings),
            title_fold: p.title_fold.clone(),
            authors_fold: p.authors_fold.clone(),
            subjects_fold: p.subjects_fold.clone(),
            isbn_keys: p.isbn_keys.clone(),
        }
    }
}

/// Lists of strings and ISBNs always serialize.
fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_owned())
}

type AnyQuery<'q> =
    sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind_book<'q>(
    query: AnyQuery<'q>,
    v: &'q BookValues,
    now: i64,
) -> AnyQuery<'q> {
    query
        .bind(v.id.as_str())
        .bind(v.key.as_str())
        .bind(v.source_id.as_deref())
        .bind(v.title.as_str())
        .bind(v.authors.as_str())
        .bind(v.subjects.as_str())
        .bind(v.isbns.as_str())
        .bind(v.publisher.as_deref())
        .bind(v.year.as_deref())
        .bind(v.material.as_str())
        .bind(v.language.as_deref())
        .bind(v.warnings.as_str())
        .bind(v.title_fold.as_str())
        .bind(v.authors_fold.as_str())
        .bind(v.subjects_fold.as_str())
        .bind(v.isbn_keys.as_str())
        .bind(now)
        .bind(now)
}

/// One copy to write.
#[derive(Debug, Clone)]
pub(crate) struct NewCopy {
    pub(crate) barcode: String,
    pub(crate) location: Option<String>,
    pub(crate) library: Option<String>,
    pub(crate) loanable: bool,
}

fn bind_copy<'q>(
    query: AnyQuery<'q>,
    book_id: &'q str,
    c: &'q NewCopy,
    now: i64,
) -> AnyQuery<'q> {
    query
        .bind(c.barcode.as_str())
        .bind(book_id)
        .bind(c.location.as_deref())
        .bind(c.library.as_deref())
        .bind(c.loanable)
        .bind(now)
        .bind(now)
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Creates a record with its copies; returns its id. A record with the
/// same key, or a copy whose barcode exists, is a conflict.
pub(crate) async fn create(
    conn: &mut AnyConnection,
    record: &Prepared,
) -> Result<String, BookError> {
    let now = now_millis();
    let values = BookValues::new(new_id(), record);
    let sql = format!(
        "{BOOK_INSERT} {} ON CONFLICT (record_key) DO NOTHING",
        value_rows(1, BOOK_COLS)
    );
    let done = bind_book(sqlx::query(&sql), &values, now)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(existing(conn, &record.key).await);
    }

    let copies: Vec<NewCopy> = record
        .record
        .copies
        .iter()
        .map(|c| NewCopy {
            barcode: c.barcode.clone(),
            location: c.location.clone(),
            library: c.library.clone(),
            loanable: true,
        })
        .collect();
    if let Some(taken) = taken_barcode(conn, &copies).await? {
        return Err(BookError::DuplicateBarcode(taken));
    }
    insert_copies(conn, &values.id, &copies).await?;

    Ok(values.id)
}

/// The conflict for a record whose key is taken.
async fn existing(conn: &mut AnyConnection, key: &str) -> BookError {
    let row = sqlx::query("SELECT id FROM books WHERE record_key = $1")
        .bind(key)
        .fetch_optional(&mut *conn)
        .await;
    match row {
        Ok(Some(row)) => match row.try_get::<String, _>("id") {
            Ok(id) => BookError::RecordExists {
                key: key.to_owned(),
                id,
            },
            Err(e) => e.into(),
        },
        Ok(None) => BookError::RecordExists {
            key: key.to_owned(),
            id: "(being written)".to_owned(),
        },
        Err(e) => e.into(),
    }
}

/// The first of `copies`' barcodes already in the catalogue.
async fn taken_barcode(
    conn: &mut AnyConnection,
    copies: &[NewCopy],
) -> Result<Option<String>, BookError> {
    if copies.is_empty() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT barcode FROM copies WHERE barcode IN ({}) ORDER BY barcode",
        placeholders(1, copies.len())
    );
    let mut query = sqlx::query(&sql);
    for copy in copies {
        query = query.bind(copy.barcode.as_str());
    }
    let row = query.fetch_optional(&mut *conn).await?;

    Ok(row.map(|r| r.try_get("barcode")).transpose()?)
}

/// Inserts new copies of one record; a barcode taken meanwhile is a
/// conflict.
async fn insert_copies(
    conn: &mut AnyConnection,
    book_id: &str,
    copies: &[NewCopy],
) -> Result<(), BookError> {
    let now = now_millis();
    for chunk in copies.chunks(COPY_CHUNK) {
        let sql =
            format!("{COPY_INSERT} {}", value_rows(chunk.len(), COPY_COLS));
        let mut query = sqlx::query(&sql);
        for copy in chunk {
            query = bind_copy(query, book_id, copy, now);
        }
        query
            .execute(&mut *conn)
            .await
            .map_err(|e| barcode_conflict(e, chunk))?;
    }

    Ok(())
}

fn barcode_conflict(error: sqlx::Error, copies: &[NewCopy]) -> BookError {
    if !is_unique_violation(&error) {
        return error.into();
    }
    let barcode = match copies {
        [one] => one.barcode.clone(),
        _ => "one of the barcodes".to_owned(),
    };

    BookError::DuplicateBarcode(barcode)
}

/// Adds a copy to record `book_id`.
pub(crate) async fn add_copy(
    conn: &mut AnyConnection,
    book_id: &str,
    copy: &NewCopy,
) -> Result<CopyRow, BookError> {
    let now = now_millis();
    let done = sqlx::query(
        "INSERT INTO copies (barcode, book_id, location, library, loanable,
                             created_at, updated_at)
         SELECT $1, id, $2, $3, $4, $5, $6 FROM books WHERE id = $7",
    )
    .bind(copy.barcode.as_str())
    .bind(copy.location.as_deref())
    .bind(copy.library.as_deref())
    .bind(copy.loanable)
    .bind(now)
    .bind(now)
    .bind(book_id)
    .execute(&mut *conn)
    .await
    .map_err(|e| barcode_conflict(e, std::slice::from_ref(copy)))?;
    if done.rows_affected() == 0 {
        return Err(BookError::BookNotFound(book_id.to_owned()));
    }

    let title: String = sqlx::query("SELECT title FROM books WHERE id = $1")
        .bind(book_id)
        .fetch_one(&mut *conn)
        .await?
        .try_get("title")?;

    Ok(CopyRow {
        barcode: copy.barcode.clone(),
        book_id: book_id.to_owned(),
        title,
        location: copy.location.clone(),
        library: copy.library.clone(),
        loanable: copy.loanable,
    })
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ImportCounts {
    /// Records that were new.
    pub(crate) imported: u64,
    /// Records that existed and were overwritten.
    pub(crate) updated: u64,
    /// Copies written (new or moved).
    pub(crate) copies: u64,
}

/// Upserts `records` by key and their copies by barcode. A key or a
/// barcode given twice counts once, the last one winning.
pub(crate) async fn import(
    conn: &mut AnyConnection,
    records: Vec<Prepared>,
) -> Result<ImportCounts, BookError> {
    let records = last_per_key(records);
    let now = now_millis();
    let values: Vec<BookValues> = records
        .iter()
        .map(|p| BookValues::new(new_id(), p))
        .collect();

    for chunk in values.chunks(BOOK_CHUNK) {
        let sql = format!(
            "{BOOK_INSERT} {} {BOOK_UPSERT}",
            value_rows(chunk.len(), BOOK_COLS)
        );
        let mut query = sqlx::query(&sql);
        for v in chunk {
            query = bind_book(query, v, now);
        }
        query.execute(&mut *conn).await?;
    }

    let ids = ids_of(conn, &values).await?;
    let imported = values
        .iter()
        .filter(|v| ids.get(&v.key) == Some(&v.id))
        .count();
    let copies = copies_by_barcode(&records, &ids);
    upsert_copies(conn, &copies, now).await?;

    Ok(ImportCounts {
        imported: imported as u64,
        updated: (values.len() - imported) as u64,
        copies: copies.len() as u64,
    })
}

/// One record per key, in first-seen order, each the last given.
fn last_per_key(records: Vec<Prepared>) -> Vec<Prepared> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Prepared> = Vec::with_capacity(records.len());

    for record in records {
        match index.get(&record.key) {
            Some(&i) => out[i] = record,
            None => {
                index.insert(record.key.clone(), out.len());
                out.push(record);
            }
        }
    }

    out
}

/// The id each record key has now: the one just written when the record
/// was new, the existing one otherwise.
async fn ids_of(
    conn: &mut AnyConnection,
    values: &[BookValues],
) -> Result<HashMap<String, String>, BookError> {
    let mut ids = HashMap::with_capacity(values.len());

    for chunk in values.chunks(KEY_CHUNK) {
        let sql = format!(
            "SELECT id, record_key FROM books WHERE record_key IN ({})",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for v in chunk {
            query = query.bind(v.key.as_str());
        }
        for row in query.fetch_all(&mut *conn).await? {
            ids.insert(row.try_get("record_key")?, row.try_get("id")?);
        }
    }

    Ok(ids)
}

/// Every copy of `records` with its record's id, one per barcode (the
/// last record naming a barcode gets it).
fn copies_by_barcode(
    records: &[Prepared],
    ids: &HashMap<String, String>,
) -> Vec<(String, NewCopy)> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<(String, NewCopy)> = Vec::new();

    for record in records {
        let Some(book_id) = ids.get(&record.key) else {
            continue;
        };
        for spec in &record.record.copies {
            let copy = NewCopy {
                barcode: spec.barcode.clone(),
                location: spec.location.clone(),
                library: spec.library.clone(),
                loanable: true,
            };
            let entry = (book_id.clone(), copy);
            match index.get(&spec.barcode) {
                Some(&i) => out[i] = entry,
                None => {
                    index.insert(spec.barcode.clone(), out.len());
                    out.push(entry);
                }
            }
        }
    }

    out
}

async fn upsert_copies(
    conn: &mut AnyConnection,
    copies: &[(String, NewCopy)],
    now: i64,
) -> Result<(), BookError> {
    for chunk in copies.chunks(COPY_CHUNK) {
        let sql = format!(
            "{COPY_INSERT} {} {COPY_UPSERT}",
            value_rows(chunk.len(), COPY_COLS)
        );
        let mut query = sqlx::query(&sql);
        for (book_id, copy) in chunk {
            query = bind_copy(query, book_id, copy, now);
        }
        query.execute(&mut *conn).await?;
    }

    Ok(())
}
