//! Test harness: borrowing-service on 127.0.0.1 port 0 with its own
//! database, and MOCKS of user-service and book-service.
//!
//! The mocks are small axum servers on port 0 that stand in for the real
//! neighbours, which are other crates: they answer the two internal routes
//! borrowing-service calls, check the service token, count calls, and can
//! be told to fail or to be slow.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use lectern_borrowing_service::{build, Config, ManualClock, Policy};
use lectern_platform::auth::{Role, TokenKeys};
use lectern_platform::client::CallPolicy;
use lectern_platform::config::CommonConfig;
use lectern_platform::db::Database;
use lectern_platform::testing::TestDb;
use parking_lot::Mutex;
use serde_json::{json, Value};
use sqlx::Row;

pub const SECRET: &[u8] = b"test-secret-for-borrowing-service";

/// How a mock neighbour behaves.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Answers from its records, 404 for unknown keys.
    Normal,
    /// Answers every request with this status and optional Retry-After.
    Fail(u16, Option<u64>),
    /// Waits this long before answering normally.
    Slow(Duration),
}

/// A MOCK neighbour: records by key, a mode, a call counter.
#[derive(Clone)]
pub struct Mock {
    pub addr: SocketAddr,
    records: Arc<Mutex<HashMap<String, Value>>>,
    mode: Arc<Mutex<Mode>>,
    calls: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct MockState {
    keys: Arc<TokenKeys>,
    records: Arc<Mutex<HashMap<String, Value>>>,
    mode: Arc<Mutex<Mode>>,
    calls: Arc<AtomicUsize>,
}

impl Mock {
    /// Starts a mock answering `GET {prefix}/{key}{suffix}`.
    async fn start(keys: Arc<TokenKeys>) -> Self {
        let records = Arc::new(Mutex::new(HashMap::new()));
        let mode = Arc::new(Mutex::new(Mode::Normal));
        let calls = Arc::new(AtomicUsize::new(0));
        let state = MockState {
            keys,
            records: records.clone(),
            mode: mode.clone(),
            calls: calls.clone(),
        };
        let app = Router::new()
            .route("/internal/members/{key}/eligibility", get(mock_answer))
            .route("/internal/copies/{key}", get(mock_answer))
            .with_state(state);
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            addr,
            records,
            mode,
            calls,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn insert(&self, key: &str, value: Value) {
        self.records.lock().insert(key.to_owned(), value);
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock() = mode;
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn mock_answer(
    State(state): State<MockState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let is_service = token
        .and_then(|t| state.keys.verify(t).ok())
        .is_some_and(|c| c.role == Role::Service);
    if !is_service {
        return StatusCode::UNAUTHORIZED.into_response();
    }

    let mode = *state.mode.lock();
    match mode {
        Mode::Normal => {}
        Mode::Fail(status, retry_after) => {
            let status = StatusCode::from_u16(status).unwrap();
            let mut response = (status, "mock failure").into_response();
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, secs.into());
            }
            return response;
        }
        Mode::Slow(delay) => tokio::time::sleep(delay).await,
    }
    let record = state.records.lock().get(&key).cloned();
    match record {
        Some(value) => Json(value).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// borrowing-service under test, its database and its mock neighbours.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub keys: Arc<TokenKeys>,
    pub clock: Arc<ManualClock>,
    pub users: Mock,
    pub books: Mock,
    pub db: Database,
    _testdb: TestDb,
}

/// What a test may change before the service starts.
pub struct Options {
    pub policy: Policy,
    pub call_timeout: Duration,
    pub now: DateTime<Utc>,
    /// Point user-service at an address nobody listens on.
    pub users_unreachable: bool,
    /// Retries, breaker and bulkhead of the calls to the mocks.
    pub calls: CallPolicy,
    /// `ELIGIBILITY_CACHE_MAX_AGE_SECS`.
    pub eligibility_max_age: Duration,
    /// `COPY_CACHE_MAX_AGE_SECS`.
    pub copy_max_age: Duration,
    /// `REDIS_URL`.
    pub redis_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            call_timeout: Duration::from_millis(3000),
            now: at("2025-05-01T10:00:00Z"),
            users_unreachable: false,
            calls: CallPolicy::default(),
            eligibility_max_age: Duration::from_secs(900),
            copy_max_age: Duration::from_secs(86_400),
            redis_url: None,
        }
    }
}

/// An instant from RFC 3339 text.
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// An address with nothing listening: bound, then released.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

impl TestApp {
    pub async fn start(name: &str) -> Self {
        Self::with(name, Options::default()).await
    }

    pub async fn with(name: &str, options: Options) -> Self {
        let testdb = TestDb::new(name).await.unwrap();
        let keys = Arc::new(TokenKeys::from_secret(SECRET));
        let users = Mock::start(keys.clone()).await;
        let books = Mock::start(keys.clone()).await;
        let clock = Arc::new(ManualClock::new(options.now));

        let common = CommonConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            database_url: testdb.url.clone(),
            keys: keys.clone(),
        };
        let mut config = Config::new(common);
        config.user_service_url = if options.users_unreachable {
            format!("http://{}", closed_port().await)
        } else {
            users.url()
        };
        config.book_service_url = books.url();
        config.call_timeout = options.call_timeout;
        config.calls = options.calls;
        config.eligibility_max_age = options.eligibility_max_age;
        config.copy_max_age = options.copy_max_age;
        config.redis_url = options.redis_url;
        config.policy = options.policy;
        config.clock = clock.clone();

        let service = build(config).await.unwrap();
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(service.serve(listener, std::future::pending()));

        let db = Database::connect(&testdb.url).await.unwrap();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Self {
            base: format!("http://{addr}"),
            http,
            keys,
            clock,
            users,
            books,
            db,
            _testdb: testdb,
        }
    }

    pub fn token(&self, sub: &str, role: Role) -> String {
        self.keys.issue(sub, role, Duration::from_secs(600))
    }

    pub fn librarian(&self) -> String {
        self.token("libby", Role::Librarian)
    }

    /// Registers a member with user-service's mock, by id and by card.
    pub fn add_member(&self, id: &str, card: &str, status: &str, limit: i64) {
        let value = json!({
            "member_id": id,
            "card_number": card,
            "status": status,
            "loan_limit": limit,
        });
        self.users.insert(id, value.clone());
        self.users.insert(card, value);
    }

    /// Registers a copy with book-service's mock.
    pub fn add_copy(&self, barcode: &str, book_id: &str, loanable: bool) {
        let value = json!({
            "barcode": barcode,
            "book_id": book_id,
            "title": format!("Title of {book_id}"),
            "loanable": loanable,
        });
        self.books.insert(barcode, value);
    }

    pub async fn post(
        &self,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
        key: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.http.post(format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap()
    }

    pub async fn get(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// Status and JSON body of `GET path` with `token`.
    pub async fn get_json(&self, path: &str, token: &str) -> (u16, Value) {
        answer(self.get(path, Some(token)).await).await
    }

    /// `POST /api/loans` as a librarian.
    pub async fn checkout(
        &self,
        member: &str,
        barcode: &str,
    ) -> reqwest::Response {
        let body = json!({ "member": member, "barcode": barcode });
        self.post("/api/loans", Some(body), Some(&self.librarian()), None)
            .await
    }

    /// `POST /api/loans/{id}/{action}` as a librarian.
    pub async fn act(&self, id: &str, action: &str) -> reqwest::Response {
        let path = format!("/api/loans/{id}/{action}");
        self.post(&path, None, Some(&self.librarian()), None).await
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query(sql)
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
            .try_get(0)
            .unwrap()
    }

    /// Loan rows in all.
    pub async fn loan_rows(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM loans").await
    }

    /// Open loan rows.
    pub async fn open_rows(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM loans WHERE returned_at IS NULL")
            .await
    }

    /// A member's counter, 0 when it has no row.
    pub async fn counter(&self, member_id: &str) -> i64 {
        let row = sqlx::query(
            "SELECT open_loans FROM member_counters WHERE member_id = $1",
        )
        .bind(member_id)
        .fetch_optional(&self.db.pool)
        .await
        .unwrap();
        row.map_or(0, |r| r.try_get(0).unwrap())
    }
}

/// Status and JSON body of a response.
pub async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// The problem `type` slug of a problem document.
pub fn slug(problem: &Value) -> &str {
    problem["type"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("https://lectern.dev/problems/")
}
