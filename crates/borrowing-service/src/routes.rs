//! The HTTP routes of borrowing-service and their handlers.
//!
//! Handlers check the caller's role first, then the request, then call
//! the neighbours or [`crate::circulation`]; failures become problem
//! documents through [`LoanError`] and the platform's [`ApiError`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use lectern_platform::auth::{Caller, Role, TokenKeys};
use lectern_platform::idempotency::IdempotencyKey;
use lectern_platform::server::Deadline;
use lectern_platform::{ApiError, ApiJson};
use serde::{Deserialize, Serialize};

use crate::circulation::{self, AppState};
use crate::error::LoanError;
use crate::idem::Idem;
use crate::loan::LoanView;
use crate::neighbours::Stale;
use crate::store::{self, MemberRef, OpenFilter, Page};

/// The header giving the age, in whole seconds, of the oldest cached
/// answer a response was decided on.
pub const STALE_AGE_HEADER: &str = "x-lectern-stale-age";

/// The header the platform puts on a replayed idempotent answer.
const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The longest member reference or barcode accepted.
const MAX_FIELD_LEN: usize = 128;

/// Loans per page when `limit` is not given.
const DEFAULT_PAGE: i64 = 100;

/// The largest `limit` accepted.
const MAX_PAGE: i64 = 500;

/// The most book ids one active-counts request may name.
pub const MAX_BOOK_IDS: usize = 500;

/// The service's routes, with `keys` for checking tokens.
pub fn router(state: AppState, keys: Arc<TokenKeys>) -> Router {
    Router::new()
        .route("/api/loans", post(check_out).get(member_loans))
        .route("/api/loans/overdue", get(overdue))
        .route("/api/loans/{id}", get(one_loan))
        .route("/api/loans/{id}/return", post(return_loan))
        .route("/api/loans/{id}/renew", post(renew))
        .route("/internal/loans/active-counts", get(active_counts))
        .with_state(state)
        .layer(Extension(keys))
}

/// The body of `POST /api/loans`.
#[derive(Debug, Deserialize)]
struct CheckoutBody {
    member: String,
    barcode: String,
}

/// A checked checkout request; also what its idempotency fingerprint is
/// made of.
#[derive(Debug, Serialize)]
struct CheckoutRequest {
    member: String,
    barcode: String,
}

impl CheckoutRequest {
    fn parse(body: CheckoutBody) -> Result<Self, LoanError> {
        Ok(Self {
            member: field("member", &body.member)?,
            barcode: field("barcode", &body.barcode)?,
        })
    }
}

/// `value` trimmed, when it is a usable identifier.
fn field(name: &str, value: &str) -> Result<String, LoanError> {
    let value = value.trim();
    let bad = |why: &str| Err(LoanError::BadField(format!("{name} {why}")));

    if value.is_empty() {
        return bad("must not be empty");
    }
    if value.len() > MAX_FIELD_LEN {
        return bad(&format!("must be at most {MAX_FIELD_LEN} bytes"));
    }
    if value.chars().any(char::is_control) {
        return bad("must not contain control characters");
    }
    if value == "." || value == ".." {
        return bad("must not be a dot segment");
    }
    Ok(value.to_owned())
}

/// `POST /api/loans`.
async fn check_out(
    State(state): State<AppState>,
    caller: Caller,
    key: Result<IdempotencyKey, ApiError>,
    deadline: Option<Extension<Deadline>>,
    body: Result<ApiJson<CheckoutBody>, ApiError>,
) -> Result<Response, ApiError> {
    let claims = caller.require(&[Role::Librarian])?;
    let request = CheckoutRequest::parse(body?.0)?;
    let idem = Idem::new(&claims.sub, key?, "checkout", &request);
    if let Some(earlier) = idem.earlier(&state.db.pool).await? {
        return Ok(earlier);
    }

    let deadline = deadline.map(|Extension(d)| d);
    let mut stale = Vec::new();
    let answer = lend(&state, &request, &idem, deadline, &mut stale).await;

    Ok(mark_stale(answer.into_response(), &stale))
}

/// Asks the neighbours, checks their answers and lends; `stale` collects
/// the cached answers the decision was made on.
async fn lend(
    state: &AppState,
    request: &CheckoutRequest,
    idem: &Idem,
    deadline: Option<Deadline>,
    stale: &mut Vec<Stale>,
) -> Result<Response, ApiError> {
    let neighbours = &state.neighbours;
    let (member, copy) = tokio::join!(
        neighbours.member_eligibility(&request.member, deadline),
        neighbours.copy_details(&request.barcode, deadline),
    );

    let member = member.map_err(LoanError::from)?;
    stale.extend(member.stale.clone());
    circulation::check_member(&member.value)?;
    let copy = copy.map_err(LoanError::from)?;
    stale.extend(copy.stale.clone());
    circulation::check_copy(&copy.value)?;

    let outcome =
        circulation::check_out(state, &member.value, &copy.value, idem).await;
    idem.settle(&state.db.pool, outcome).await
}

/// Says on a response that it was decided on cached answers: one
/// `Warning: 110` per answer (what, and how old) and the age of the
/// oldest in `X-Lectern-Stale-Age`, whole seconds. Failures of the
/// service itself (5xx) and replays of an earlier answer are left alone.
fn mark_stale(mut response: Response, stale: &[Stale]) -> Response {
    let replay = response.headers().contains_key(REPLAYED_HEADER);
    if stale.is_empty() || replay || response.status().is_server_error() {
        return response;
    }

    let headers = response.headers_mut();
    for answer in stale {
        let secs = answer.age.as_secs();
        let text = format!("110 - \"stale: {}, {secs} s old\"", answer.what);
        if let Ok(value) = HeaderValue::from_str(&text) {
            headers.append(header::WARNING, value);
        }
    }
    let oldest = stale.iter().map(|s| s.age.as_secs()).max().unwrap_or(0);
    headers.insert(STALE_AGE_HEADER, HeaderValue::from(oldest));
    response
}

/// `POST /api/loans/{id}/return`.
async fn return_loan(
    State(state): State<AppState>,
    caller: Caller,
    key: Result<IdempotencyKey, ApiError>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let claims = caller.require(&[Role::Librarian])?;
    let idem = Idem::new(&claims.sub, key?, "return", &id);
    if let Some(earlier) = idem.earlier(&state.db.pool).await? {
        return Ok(earlier);
    }

    let outcome = circulation::return_loan(&state, &id, &idem).await;
    idem.settle(&state.db.pool, outcome).await
}

/// `POST /api/loans/{id}/renew`.
async fn renew(
    State(state): State<AppState>,
    caller: Caller,
    key: Result<IdempotencyKey, ApiError>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let claims = caller.require(&[Role::Librarian])?;
    let idem = Idem::new(&claims.sub, key?, "renew", &id);
    if let Some(earlier) = idem.earlier(&state.db.pool).await? {
        return Ok(earlier);
    }

    let outcome = circulation::renew(&state, &id, &idem).await;
    idem.settle(&state.db.pool, outcome).await
}

/// `GET /api/loans/{id}`: staff see any loan, a member their own.
async fn one_loan(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<LoanView>, ApiError> {
    let claims = caller.require(&[Role::Librarian, Role::Member])?;
    let loan = store::get(&state.db.pool, &id)
        .await?
        .ok_or(LoanError::LoanNotFound(id))?;
    if claims.role == Role::Member && loan.member_id != claims.sub {
        return Err(ApiError::forbidden(
            "members may see only their own loans",
        ));
    }

    Ok(Json(loan.view(state.clock.now())))
}

/// `(limit, offset)` of a listing, checked, with their defaults.
fn page_bounds(
    limit: Option<i64>,
    offset: Option<i64>,
) -> Result<(i64, i64), ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    let offset = offset.unwrap_or(0);

    if !(1..=MAX_PAGE).contains(&limit) {
        let detail = format!("limit must be 1 to {MAX_PAGE}");
        return Err(ApiError::bad_request(detail));
    }
    if offset < 0 {
        return Err(ApiError::bad_request("offset must not be negative"));
    }
    Ok((limit, offset))
}

/// The query of `GET /api/loans`.
#[derive(Debug, Deserialize)]
struct MemberQuery {
    member: Option<String>,
    open: Option<bool>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// The query of `GET /api/loans/overdue`.
#[derive(Debug, Deserialize)]
struct PageQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// A listing's answer.
#[derive(Debug, Serialize)]
struct LoanList {
    total: i64,
    items: Vec<LoanView>,
}

impl LoanList {
    fn new(page: Page, state: &AppState) -> Self {
        let now = state.clock.now();
        let items = page.items.iter().map(|loan| loan.view(now)).collect();
        Self {
            total: page.total,
            items,
        }
    }
}

/// `GET /api/loans?member=&open=`: staff list anyone's loans by member id
/// or card number, a member their own by member id.
async fn member_loans(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<MemberQuery>, QueryRejection>,
) -> Result<Json<LoanList>, ApiError> {
    let claims = caller.require(&[Role::Librarian, Role::Member])?;
    let Query(query) = query.map_err(bad_query)?;
    let (limit, offset) = page_bounds(query.limit, query.offset)?;
    let member = field("member", query.member.as_deref().unwrap_or_default())?;

    let member = if claims.role == Role::Member {
        if member != claims.sub {
            return Err(ApiError::forbidden(
                "members may see only their own loans",
            ));
        }
        MemberRef::Id(&member)
    } else {
        MemberRef::IdOrCard(&member)
    };
    let filter = match query.open {
        None => OpenFilter::All,
        Some(true) => OpenFilter::Open,
        Some(false) => OpenFilter::Returned,
    };

    let page =
        store::member_loans(&state.db.pool, member, filter, limit, offset)
            .await?;
    Ok(Json(LoanList::new(page, &state)))
}

/// `GET /api/loans/overdue`: open loans past due, soonest due first.
async fn overdue(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<LoanList>, ApiError> {
    caller.require(&[Role::Librarian])?;
    let Query(query) = query.map_err(bad_query)?;
    let (limit, offset) = page_bounds(query.limit, query.offset)?;

    let now = state.clock.now().timestamp_millis();
    let page = store::overdue(&state.db.pool, now, limit, offset).await?;
    Ok(Json(LoanList::new(page, &state)))
}

/// The query of `GET /internal/loans/active-counts`.
#[derive(Debug, Deserialize)]
struct CountsQuery {
    book_ids: Option<String>,
}

/// The answer of `GET /internal/loans/active-counts`.
#[derive(Debug, Serialize)]
struct Counts {
    counts: BTreeMap<String, i64>,
}

/// `GET /internal/loans/active-counts?book_ids=a,b`: open loans per
/// book; books with none are absent.
async fn active_counts(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<CountsQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Service])?;
    let Query(query) = query.map_err(bad_query)?;
    let ids = book_ids(query.book_ids.as_deref())?;

    let counts = store::active_counts(&state.db.pool, &ids).await?;
    Ok(Json(Counts {
        counts: counts.into_iter().collect(),
    }))
}

/// The distinct ids of a comma-separated list, at most [`MAX_BOOK_IDS`].
fn book_ids(list: Option<&str>) -> Result<Vec<String>, ApiError> {
    let list =
        list.ok_or_else(|| ApiError::bad_request("book_ids is required"))?;
    let ids: BTreeSet<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .collect();

    if ids.len() > MAX_BOOK_IDS {
        let detail = format!("book_ids may name at most {MAX_BOOK_IDS} ids");
        return Err(ApiError::bad_request(detail));
    }
    Ok(ids.into_iter().map(str::to_owned).collect())
}

fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request(rejection.body_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_trimmed_and_checked() {
        assert_eq!(field("barcode", "  B-1 ").unwrap(), "B-1");
        for bad in ["", "   ", "a\nb", "..", &"x".repeat(129)] {
            assert!(field("barcode", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn book_ids_are_deduplicated_and_capped() {
        let ids = book_ids(Some("b, a,,b ,")).unwrap();
        assert_eq!(ids, ["a", "b"]);
        assert!(book_ids(Some("")).unwrap().is_empty());
        assert!(book_ids(None).is_err());

        let many: Vec<String> =
            (0..=MAX_BOOK_IDS).map(|i| i.to_string()).collect();
        assert!(book_ids(Some(&many.join(","))).is_err());
        assert!(book_ids(Some(&many[1..].join(","))).is_ok());
    }
}
