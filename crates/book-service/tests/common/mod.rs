//! What the integration tests share: book-service started on 127.0.0.1
//! port 0 with an isolated database, HTTP helpers, tokens, row counts,
//! and a MOCK of borrowing-service (a small axum server on port 0).

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use lectern_book_service::{build, Config};
use lectern_platform::auth::{Role, TokenKeys};
use lectern_platform::db::Database;
use lectern_platform::testing::TestDb;
use serde_json::{json, Value};
use sqlx::Row;

/// The secret every test service shares.
pub const SECRET: &[u8] = b"book-service-test-secret-0123456789";

/// book-service running for one test.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub keys: Arc<TokenKeys>,
    pub db: Database,
    pub test_db: Arc<TestDb>,
}

pub fn keys() -> Arc<TokenKeys> {
    Arc::new(TokenKeys::from_secret(SECRET))
}

/// A fresh database for `name`.
pub async fn test_db(name: &str) -> Arc<TestDb> {
    Arc::new(TestDb::new(name).await.expect("test database"))
}

/// book-service on a fresh database, configured by `tweak`.
pub async fn spawn_with(
    name: &str,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    spawn_on(test_db(name).await, tweak).await
}

/// book-service on a fresh database with the default test config (no
/// borrowing-service).
pub async fn spawn(name: &str) -> TestApp {
    spawn_with(name, |_| {}).await
}

/// book-service on `test_db`, which may already hold data.
pub async fn spawn_on(
    test_db: Arc<TestDb>,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    if std::env::var_os("RUST_LOG").is_some() {
        // Logs go to stdout, around the test harness's capture.
        lectern_platform::telemetry::init("book-service-test");
    }
    let keys = keys();
    let mut config = Config::new(test_db.url.clone(), keys.clone());
    tweak(&mut config);
    let service = build(config).await.expect("book-service builds");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(service.serve(listener, std::future::pending()));

    let db = Database::connect(&test_db.url).await.expect("connect");
    TestApp {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        keys,
        db,
        test_db,
    }
}

impl TestApp {
    pub fn token(&self, role: Role) -> String {
        self.keys.issue("tester", role, Duration::from_secs(3600))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn get_as(&self, path: &str, role: Role) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(self.token(role))
            .send()
            .await
            .expect("GET")
    }

    /// `GET path` expecting 200, as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("JSON")
    }

    /// `POST path` with `body` as a librarian.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.post_as(path, Some(Role::Librarian), body).await
    }

    pub async fn post_as(
        &self,
        path: &str,
        role: Option<Role>,
        body: &Value,
    ) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).json(body);
        if let Some(role) = role {
            request = request.bearer_auth(self.token(role));
        }
        request.send().await.expect("POST")
    }

    /// Creates a record, expecting 201; returns it.
    pub async fn create(&self, record: Value) -> Value {
        let response = self.post("/api/books", &record).await;
        assert_eq!(response.status(), 201, "create {record}");
        response.json().await.expect("JSON")
    }

    /// Imports `records`, expecting 200; returns the counts.
    pub async fn import(&self, records: Value) -> Value {
        let response = self
            .post("/api/books/import", &json!({ "records": records }))
            .await;
        let status = response.status();
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(status, 200, "import: {body}");
        body
    }

    /// Searches with `query` (already URL-safe), expecting 200.
    pub async fn search(&self, query: &str) -> Value {
        self.get_json(&format!("/api/books?{query}")).await
    }

    /// Titles found by `query`.
    pub async fn titles(&self, query: &str) -> Vec<String> {
        let page = self.search(query).await;
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|b| b["title"].as_str().expect("title").to_owned())
            .collect()
    }

    /// Rows in `table`, read from the database directly.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) AS n FROM {table}");
        let row = sqlx::query(&sql)
            .fetch_one(&self.db.pool)
            .await
            .expect("count");
        row.try_get("n").expect("n")
    }
}

/// Asserts a problem document with `status`.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem JSON");
    assert_eq!(body["status"], status);
    assert!(body["type"]
        .as_str()
        .unwrap_or_default()
        .starts_with("https://lectern.dev/problems/"));
    body
}

/// How the MOCK borrowing-service behaves.
#[derive(Debug, Default)]
pub struct MockState {
    /// Active loans per book id.
    pub counts: HashMap<String, i64>,
    /// Time to wait before answering.
    pub delay: Duration,
    /// Answer this status instead, when set.
    pub fail_with: Option<u16>,
    /// The `book_ids` of every call.
    pub calls: Vec<String>,
}

/// A MOCK of borrowing-service's `GET /internal/loans/active-counts`, on
/// 127.0.0.1 port 0. It checks for a service token like the real one.
pub struct MockBorrowing {
    pub url: String,
    pub state: Arc<Mutex<MockState>>,
}

impl MockBorrowing {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(MockState::default()));
        let app = Router::new()
            .route("/internal/loans/active-counts", get(mock_counts))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });

        Self { url, state }
    }

    pub fn set_loans(&self, book_id: &str, active: i64) {
        let mut state = self.state.lock().expect("mock state");
        state.counts.insert(book_id.to_owned(), active);
    }

    pub fn calls(&self) -> Vec<String> {
        self.state.lock().expect("mock state").calls.clone()
    }
}

async fn mock_counts(
    State(state): State<Arc<Mutex<MockState>>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    match keys().verify(token) {
        Ok(claims) if claims.role == Role::Service => {}
        _ => return StatusCode::UNAUTHORIZED.into_response(),
    }

    let ids = params.get("book_ids").cloned().unwrap_or_default();
    let (delay, fail, counts) = {
        let mut s = state.lock().expect("mock state");
        s.calls.push(ids.clone());
        let counts: HashMap<String, i64> = ids
            .split(',')
            .filter_map(|id| s.counts.get(id).map(|n| (id.to_owned(), *n)))
            .collect();
        (s.delay, s.fail_with, counts)
    };
    tokio::time::sleep(delay).await;
    if let Some(status) = fail {
        let status = StatusCode::from_u16(status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return status.into_response();
    }

    Json(json!({ "counts": counts })).into_response()
}

/// A URL where nothing listens (a port bound then released).
pub async fn closed_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// A record with `title` and `copies` barcodes, for quick setup.
pub fn record(title: &str, barcodes: &[&str]) -> Value {
    let copies: Vec<Value> =
        barcodes.iter().map(|b| json!({ "barcode": b })).collect();
    json!({ "title": title, "copies": copies })
}
