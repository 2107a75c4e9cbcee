//! Members: create, read, search and change them (librarians), and tell
//! borrowing-service whether one may borrow (services).
//!
//! A member is named in routes by id or by card number.

mod model;
mod store;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use lectern_platform::auth::{Caller, Role};
use lectern_platform::db::is_unique_violation;
use lectern_platform::idempotency::IdempotencyKey;
use lectern_platform::{ApiError, ApiJson};
use serde::{Deserialize, Serialize};

use crate::error::{Invalid, ServiceError};
use crate::idempotent::{json_response, Idem, Recorded};
use crate::AppState;
pub(crate) use model::rfc3339_millis;
use model::{Eligibility, Member, MemberPatchRequest, MemberView, NewMemberRequest};

/// Search answers hold at most this many members unless asked for fewer.
const DEFAULT_PAGE: i64 = 50;

/// The most members one search answer holds.
const MAX_PAGE: i64 = 200;

/// The member routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/members", get(search).post(create))
        .route("/api/members/{id}", get(show).patch(change))
        .route(
            "/internal/members/{id_or_card}/eligibility",
            get(eligibility),
        )
}

/// `POST /api/members`: a new active member, 201.
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<NewMemberRequest>,
) -> Result<Response, ServiceError> {
    let claims = caller.require(&[Role::Librarian])?;
    let pool = &state.db.pool;
    let idem = Idem::new("create-member", &claims.sub, key, &body);
    if let Some(earlier) = idem.early(pool).await? {
        return Ok(earlier);
    }
    let new = body.check(state.default_loan_limit)?;

    let mut tx = pool.begin().await?;
    let member = match store::insert(&mut tx, &new).await {
        Ok(member) => member,
        Err(e) if is_unique_violation(&e) => {
            tx.rollback().await?;
            let taken = ServiceError::CardTaken(new.card_number);
            return idem.settle(pool, taken).await;
        }
        Err(e) => return Err(e.into()),
    };
    let id = member.id.clone();
    let answer = serde_json::to_string(&MemberView::from(member))?;
    let recorded = idem.record(&mut tx, StatusCode::CREATED, &answer).await?;
    if recorded == Recorded::Raced {
        tx.rollback().await?;
        return idem.settle(pool, ServiceError::KeyInFlight).await;
    }
    tx.commit().await?;

    tracing::info!(
        event.action = "member-created",
        user.name = %claims.sub,
        lectern.member.id = %id,
        "Member created"
    );
    Ok(json_response(StatusCode::CREATED, answer))
}

/// The query of `GET /api/members`.
#[derive(Debug, Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

/// A page of search results.
#[derive(Debug, Serialize)]
struct SearchAnswer {
    total: i64,
    items: Vec<MemberView>,
}

/// `GET /api/members?q=&limit=&offset=`: members whose card number, name
/// or e-mail hold every word of `q`, case folded; all members without it.
async fn search(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<SearchAnswer>, ServiceError> {
    caller.require(&[Role::Librarian])?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let words = search_words(query.q.as_deref().unwrap_or_default())?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        let reason = format!("must be between 1 and {MAX_PAGE}");
        return Err(Invalid::new("limit", reason).into());
    }
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        return Err(Invalid::new("offset", "must not be negative").into());
    }

    let pool = &state.db.pool;
    let (total, members) = store::search(pool, &words, limit, offset).await?;
    let items = members.into_iter().map(MemberView::from).collect();
    Ok(Json(SearchAnswer { total, items }))
}

fn search_words(q: &str) -> Result<Vec<String>, Invalid> {
    let words: Vec<String> = model::fold(q)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if words.len() > store::MAX_SEARCH_WORDS {
        let max = store::MAX_SEARCH_WORDS;
        return Err(Invalid::new("q", format!("may hold at most {max} words")));
    }
    Ok(words)
}

/// `GET /api/members/{id}`: one member, by id or card number.
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MemberView>, ServiceError> {
    caller.require(&[Role::Librarian])?;
    let member = existing(&state, &id).await?;
    Ok(Json(member.into()))
}

/// `PATCH /api/members/{id}`: changes name, e-mail, status or loan limit;
/// every field is checked before anything changes.
async fn change(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MemberPatchRequest>,
) -> Result<Json<MemberView>, ServiceError> {
    let claims = caller.require(&[Role::Librarian])?;
    let changes = body.check()?;
    let member = existing(&state, &id).await?;
    if changes.is_empty() {
        return Ok(Json(member.into()));
    }

    let mut tx = state.db.pool.begin().await?;
    let updated = store::update(&mut tx, &member.id, &changes).await?;
    let updated = updated.ok_or_else(|| ServiceError::NoSuchMember(shown(&id)))?;
    tx.commit().await?;

    tracing::info!(
        event.action = "member-updated",
        user.name = %claims.sub,
        lectern.member.id = %updated.id,
        lectern.member.status = updated.status.as_str(),
        "Member changed"
    );
    Ok(Json(updated.into()))
}

/// `GET /internal/members/{id_or_card}/eligibility`, for services only.
async fn eligibility(
    State(state): State<AppState>,
    caller: Caller,
    Path(id_or_card): Path<String>,
) -> Result<Json<Eligibility>, ServiceError> {
    caller.require(&[Role::Service])?;
    let member = existing(&state, &id_or_card).await?;
    Ok(Json(member.into()))
}

/// The member named by id or card number, or 404.
async fn existing(state: &AppState, id_or_card: &str) -> Result<Member, ServiceError> {
    store::find(&state.db.pool, id_or_card)
        .await?
        .ok_or_else(|| ServiceError::NoSuchMember(shown(id_or_card)))
}

/// A client's identifier, shortened for a problem detail.
fn shown(text: &str) -> String {
    text.chars().take(64).collect()
}
