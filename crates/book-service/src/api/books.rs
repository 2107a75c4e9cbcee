//! `GET /api/books` (search), `GET /api/books/{id}` and
//! `POST /api/books` (create a record).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use lectern_platform::auth::{Caller, Role};
use lectern_platform::idempotency::IdempotencyKey;
use lectern_platform::server::Deadline;
use lectern_platform::{ApiError, ApiJson};
use serde::Deserialize;

use super::idempotent::{stored, Answer, Idempotency};
use super::view::{BookView, CopyView, SearchPage};
use super::AppState;
use crate::availability::{self, Availability};
use crate::error::BookError;
use crate::fold::words;
use crate::record::{
    isbn_query_tokens, looks_like_isbn, Prepared, RecordInput,
};
use crate::store::{self, BookRow, SearchQuery, Stock};

/// The page size when `limit` is not given.
const DEFAULT_LIMIT: i64 = 20;
/// The largest page.
const MAX_LIMIT: i64 = 100;

/// The query string of a search, as text so that bad numbers get a
/// problem document naming the parameter.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchParams {
    q: Option<String>,
    title: Option<String>,
    author: Option<String>,
    subject: Option<String>,
    isbn: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

impl SearchParams {
    fn into_query(self) -> Result<SearchQuery, BookError> {
        let field =
            |v: Option<String>| v.as_deref().map(words).unwrap_or_default();

        Ok(SearchQuery {
            words: field(self.q),
            title: field(self.title),
            author: field(self.author),
            subject: field(self.subject),
            isbn: isbn_filter(self.isbn.as_deref())?,
            limit: number(
                "limit",
                self.limit.as_deref(),
                DEFAULT_LIMIT,
                1,
                MAX_LIMIT,
            )?,
            offset: number("offset", self.offset.as_deref(), 0, 0, i64::MAX)?,
        })
    }
}

fn isbn_filter(value: Option<&str>) -> Result<Option<Vec<String>>, BookError> {
    let Some(text) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if !looks_like_isbn(text) {
        return Err(BookError::Invalid(format!(
            "isbn {text:?} is not an ISBN-10 or ISBN-13"
        )));
    }

    Ok(Some(isbn_query_tokens(text)))
}

fn number(
    name: &str,
    value: Option<&str>,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, BookError> {
    let Some(text) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(default);
    };
    match text.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(BookError::Invalid(format!(
            "{name} must be a whole number from {min} to {max}, not {text:?}"
        ))),
    }
}

/// `GET /api/books`: anyone.
pub(crate) async fn search(
    State(app): State<AppState>,
    deadline: Option<Extension<Deadline>>,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<SearchPage>, ApiError> {
    let Query(params) =
        params.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let query = params.into_query()?;

    let (total, rows) = app.store.search(&query).await?;
    let items = app.listed(rows, deadline.map(|d| d.0)).await?;

    Ok(Json(SearchPage {
        total,
        limit: query.limit,
        offset: query.offset,
        items,
    }))
}

/// `GET /api/books/{id}`: anyone.
pub(crate) async fn show(
    State(app): State<AppState>,
    deadline: Option<Extension<Deadline>>,
    Path(id): Path<String>,
) -> Result<Json<BookView>, ApiError> {
    let row = app.store.book(&id).await?;
    let copies = app.store.copies_of(&id).await?;
    let stock = Stock {
        total: copies.len() as i64,
        loanable: copies.iter().filter(|c| c.loanable).count() as i64,
    };
    let ids: Vec<&str> = if stock.total > 0 { vec![&id] } else { vec![] };
    let loans = app.active_loans(&ids, deadline.map(|d| d.0)).await;

    let availability = availability::of(&id, stock, &loans);
    let copies = copies.into_iter().map(CopyView::from).collect();
    Ok(Json(BookView::new(row, Some(copies), availability)))
}

/// `POST /api/books`: librarian. 201 with the record.
pub(crate) async fn create(
    State(app): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    ApiJson(input): ApiJson<RecordInput>,
) -> Result<Answer<()>, ApiError> {
    let claims = caller.require(&[Role::Librarian])?;
    let idempotency =
        Idempotency::new(app.store.pool(), "create-book", claims, key, &input);
    let prepared = Prepared::new(input.into_bib().map_err(BookError::from)?);

    idempotency
        .run(move |conn| {
            Box::pin(async move {
                let id = store::create(conn, &prepared).await?;
                let view = created_view(id, prepared);
                Ok((stored(StatusCode::CREATED, &view), ()))
            })
        })
        .await
}

/// A record just created: all its copies are loanable and none is lent.
fn created_view(id: String, prepared: Prepared) -> BookView {
    let r = prepared.record;
    let n = r.copies.len() as i64;
    let copies = r
        .copies
        .into_iter()
        .map(|c| CopyView {
            barcode: c.barcode,
            location: c.location,
            library: c.library,
            loanable: true,
        })
        .collect();
    let row = BookRow {
        id,
        source_id: r.source_id,
        title: r.title,
        authors: r.authors,
        subjects: r.subjects,
        isbns: r.isbns,
        publisher: r.publisher,
        year: r.year,
        material: r.material,
        language: r.language,
    };
    let stock = Stock {
        total: n,
        loanable: n,
    };

    BookView::new(row, Some(copies), Availability::known(stock, 0))
}

impl AppState {
    /// Search results with their availability, from one stock query and
    /// at most one call to borrowing-service.
    async fn listed(
        &self,
        rows: Vec<BookRow>,
        deadline: Option<Deadline>,
    ) -> Result<Vec<BookView>, BookError> {
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let stock = self.store.stock(&ids).await?;
        let lent: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| stock.contains_key(*id))
            .collect();
        let loans = self.active_loans(&lent, deadline).await;

        Ok(rows
            .into_iter()
            .map(|row| {
                let s = stock.get(&row.id).copied().unwrap_or_default();
                let availability = availability::of(&row.id, s, &loans);
                BookView::new(row, None, availability)
            })
            .collect())
    }

    /// Active loans of `ids`, counted in the metrics when asked for.
    async fn active_loans(
        &self,
        ids: &[&str],
        deadline: Option<Deadline>,
    ) -> availability::ActiveLoans {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let loans = self.loans.active(ids, deadline).await;
        self.metrics.lookup(loans.is_ok());
        loans
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(limit: Option<&str>, offset: Option<&str>) -> SearchParams {
        SearchParams {
            limit: limit.map(str::to_owned),
            offset: offset.map(str::to_owned),
            ..SearchParams::default()
        }
    }

    #[test]
    fn limit_defaults_and_bounds() {
        assert_eq!(params(None, None).into_query().unwrap().limit, 20);
        assert_eq!(params(Some("100"), None).into_query().unwrap().limit, 100);
        for bad in ["0", "101", "-1", "ten", "1.5"] {
            assert!(params(Some(bad), None).into_query().is_err(), "{bad}");
        }
        assert!(params(None, Some("-1")).into_query().is_err());
        assert_eq!(params(None, Some("40")).into_query().unwrap().offset, 40);
    }

    #[test]
    fn isbn_filter_wants_an_isbn() {
        assert!(isbn_filter(Some("hugo")).is_err());
        assert_eq!(isbn_filter(Some(" ")).unwrap(), None);
        let tokens = isbn_filter(Some("0-14-143951-3")).unwrap().unwrap();
        assert!(tokens.contains(&"9780141439518".to_owned()));
    }
}
