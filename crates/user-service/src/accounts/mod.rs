//! Staff accounts and sign-in.
//!
//! `POST /api/auth/login` checks a username and password and answers a
//! token; a refusal never says which of the two was wrong, and an unknown
//! username takes as long to refuse as a wrong password.
//! `POST /api/auth/staff` lets an admin create accounts.
//!
//! Limitation: accounts cannot yet be listed, disabled, deleted or given a
//! new password; the API has no routes for it.

pub(crate) mod store;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use lectern_platform::auth::{Caller, Role};
use lectern_platform::db::is_unique_violation;
use lectern_platform::idempotency::{IdempotencyKey, Prior};
use lectern_platform::ApiJson;
use serde::{Deserialize, Serialize};

use crate::error::{Invalid, ServiceError};
use crate::idempotent::{json_response, Idem, Recorded};
use crate::passwords::password_problem;
use crate::AppState;

/// The longest username accepted.
const MAX_USERNAME_CHARS: usize = 64;

/// The account routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/staff", post(create_staff))
}

/// The body of `POST /api/auth/login`.
#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

/// A signed-in caller's token.
#[derive(Debug, Serialize)]
struct LoginAnswer {
    token: String,
    role: Role,
    expires_at: String,
}

/// `POST /api/auth/login`. It changes nothing, so an `Idempotency-Key`
/// needs no record: a repeat signs in again.
///
/// Limitation: failed sign-ins are logged but not throttled or locked
/// out; guessing is slowed only by the hash cost and the hashing permits.
/// Limitation: a token stays valid until it expires; there is no
/// revocation, since every service checks tokens without asking here.
async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<LoginAnswer>, ServiceError> {
    let username = normalize_username(&body.username);
    let account = store::find(&state.db.pool, &username).await?;
    let stored = account.as_ref().map(|a| a.password_hash.clone());
    let matches = state.passwords.verify(body.password, stored).await?;
    let Some(account) = account.filter(|_| matches) else {
        tracing::info!(
            event.action = "login-failed",
            event.outcome = "failure",
            user.name = %shown(&username),
            "Sign-in refused"
        );
        return Err(ServiceError::BadCredentials);
    };

    let token = state
        .keys
        .issue(&account.username, account.role, state.token_ttl);
    let expires_at = expiry(&state, &token);
    tracing::info!(
        event.action = "login-succeeded",
        event.outcome = "success",
        user.name = %account.username,
        user.roles = account.role.as_str(),
        "Signed in"
    );
    Ok(Json(LoginAnswer {
        token,
        role: account.role,
        expires_at,
    }))
}

/// When `token` expires, RFC 3339, read from the token itself.
fn expiry(state: &AppState, token: &str) -> String {
    let now = chrono::Utc::now();
    let from_token = state
        .keys
        .verify(token)
        .ok()
        .and_then(|claims| i64::try_from(claims.exp).ok())
        .and_then(|exp| chrono::DateTime::from_timestamp(exp, 0));
    // A token just issued always verifies; the fallback is the same time.
    let ttl = chrono::Duration::from_std(state.token_ttl).unwrap_or_default();
    let at = from_token.unwrap_or(now + ttl);
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The body of `POST /api/auth/staff`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStaffRequest {
    username: String,
    password: String,
    role: String,
}

/// What makes two staff requests the same, less the password, whose
/// digest must not be stored; a replay checks the password instead.
#[derive(Serialize)]
struct SameStaff<'a> {
    username: &'a str,
    role: &'a str,
}

/// An account as the API shows it; never its hash.
#[derive(Debug, Serialize)]
struct AccountView {
    id: String,
    username: String,
    role: Role,
    created_at: String,
}

/// `POST /api/auth/staff` (admin): a new account, 201.
async fn create_staff(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<NewStaffRequest>,
) -> Result<Response, ServiceError> {
    let claims = caller.require(&[Role::Admin])?;
    let pool = &state.db.pool;
    let username = normalize_username(&body.username);
    let same = SameStaff {
        username: &username,
        role: &body.role,
    };
    let idem = Idem::new("create-staff", &claims.sub, key, &same);
    let prior = idem.prior(pool).await?;
    if let Some(earlier) = replay_if_same(&state, prior, &body).await? {
        return Ok(earlier);
    }
    let (username, role) = check_staff(&body)?;
    let hash = state.passwords.hash(body.password.clone()).await?;

    let mut tx = pool.begin().await?;
    let account = match store::insert(&mut tx, &username, &hash, role).await {
        Ok(account) => account,
        Err(e) if is_unique_violation(&e) => {
            tx.rollback().await?;
            let taken = ServiceError::UsernameTaken(username);
            return settle(&state, &idem, &body, taken).await;
        }
        Err(e) => return Err(e.into()),
    };
    let answer = serde_json::to_string(&AccountView {
        id: account.id,
        username: account.username,
        role: account.role,
        created_at: crate::members::rfc3339_millis(account.created_at),
    })?;
    let recorded = idem.record(&mut tx, StatusCode::CREATED, &answer).await?;
    if recorded == Recorded::Raced {
        tx.rollback().await?;
        return settle(&state, &idem, &body, ServiceError::KeyInFlight).await;
    }
    tx.commit().await?;

    tracing::info!(
        event.action = "staff-created",
        user.name = %claims.sub,
        user.target.name = %username,
        user.target.roles = role.as_str(),
        "Staff account created"
    );
    Ok(json_response(StatusCode::CREATED, answer))
}

/// After a rollback: a racing request's answer when it was this same
/// request, else `otherwise`.
async fn settle(
    state: &AppState,
    idem: &Idem,
    body: &NewStaffRequest,
    otherwise: ServiceError,
) -> Result<Response, ServiceError> {
    let prior = idem.prior(&state.db.pool).await?;
    replay_if_same(state, prior, body).await?.ok_or(otherwise)
}

/// The earlier answer if this key was used for this same request, the
/// password included (checked against the account it created); the 422
/// if it was used for another; `None` if it is fresh.
async fn replay_if_same(
    state: &AppState,
    prior: Prior,
    body: &NewStaffRequest,
) -> Result<Option<Response>, ServiceError> {
    let stored = match prior {
        Prior::Fresh => return Ok(None),
        Prior::Mismatch => return Err(ServiceError::KeyReused),
        Prior::Replay(stored) => stored,
    };
    let username = normalize_username(&body.username);
    let account = store::find(&state.db.pool, &username).await?;
    let hash = account.map(|a| a.password_hash);
    let password = body.password.clone();
    if state.passwords.verify(password, hash).await? {
        Ok(Some(stored.into_response()))
    } else {
        Err(ServiceError::KeyReused)
    }
}

/// The checked username and role of a new account.
fn check_staff(body: &NewStaffRequest) -> Result<(String, Role), Invalid> {
    let username = check_username(&body.username)?;
    if let Some(reason) = password_problem(&body.password) {
        return Err(Invalid::new("password", reason));
    }
    let role = match Role::parse(&body.role) {
        Some(role @ (Role::Admin | Role::Librarian | Role::Member)) => role,
        _ => {
            let reason = "must be admin, librarian or member";
            return Err(Invalid::new("role", reason));
        }
    };
    Ok((username, role))
}

/// Usernames are compared without case and surrounding spaces.
pub(crate) fn normalize_username(text: &str) -> String {
    text.trim().to_lowercase()
}

fn check_username(text: &str) -> Result<String, Invalid> {
    let username = normalize_username(text);
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-@".contains(c);
    let chars = username.chars().count();
    if chars == 0 || chars > MAX_USERNAME_CHARS || !username.chars().all(allowed) {
        let max = MAX_USERNAME_CHARS;
        let reason = format!("must be 1 to {max} letters, digits or . _ - @");
        return Err(Invalid::new("username", reason));
    }
    Ok(username)
}

/// A username as logged, shortened: it came from an unknown client.
fn shown(text: &str) -> String {
    text.chars().take(MAX_USERNAME_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(username: &str, password: &str, role: &str) -> NewStaffRequest {
        NewStaffRequest {
            username: username.into(),
            password: password.into(),
            role: role.into(),
        }
    }

    #[test]
    fn usernames_fold_case_and_refuse_odd_characters() {
        let body = request(" Ana ", "long enough", "librarian");
        let (name, role) = check_staff(&body).unwrap();
        assert_eq!((name.as_str(), role), ("ana", Role::Librarian));
        let spaced = check_staff(&request("an a", "long enough", "member"));
        assert_eq!(spaced.unwrap_err().field, "username");
    }

    #[test]
    fn the_service_role_cannot_be_given_to_an_account() {
        let body = request("bot", "long enough", "service");
        let err = check_staff(&body).unwrap_err();
        assert_eq!(err.field, "role");
    }

    #[test]
    fn short_passwords_are_refused() {
        let err = check_staff(&request("ana", "short", "member")).unwrap_err();
        assert_eq!(err.field, "password");
    }
}
