//! Starts user-service on 127.0.0.1 port 0 with its own database, and
//! talks HTTP to it.
//!
//! Every test app hashes passwords at the lightest Argon2 cost
//! (`PasswordCost::InsecureFastForTests`), set here in code: debug builds
//! would otherwise spend seconds on each hash.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lectern_platform::auth::{Role, TokenKeys};
use lectern_platform::db::Database;
use lectern_platform::testing::TestDb;
use lectern_user_service::{build, Config, PasswordCost};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use sqlx::Row;

pub const SECRET: &[u8] = b"user-service-test-secret";
pub const ADMIN_PASSWORD: &str = "first-admin-pass";

/// A running service and what a test needs to talk to it.
pub struct TestApp {
    pub base: String,
    pub keys: Arc<TokenKeys>,
    pub http: reqwest::Client,
    pub db_url: String,
    pub data_dir: PathBuf,
    /// The database and data directory, when this app made them.
    _owned: Option<(TestDb, tempfile::TempDir)>,
}

/// A config for `db` with a known admin password and fast hashing.
pub fn config(db: &TestDb, data_dir: &Path) -> Config {
    let keys = Arc::new(TokenKeys::from_secret(SECRET));
    let mut config = Config::new(db.url.clone(), keys);
    config.admin_password = Some(ADMIN_PASSWORD.to_owned());
    config.data_dir = data_dir.to_owned();
    config.password_cost = PasswordCost::InsecureFastForTests;
    config
}

/// Builds the service from `config` and serves it on a free port;
/// returns its base URL. The server stops with the test's runtime.
pub async fn serve(config: Config) -> String {
    let service = build(config).await.expect("service builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(service.serve(listener, std::future::pending()));
    format!("http://{addr}")
}

impl TestApp {
    /// A fresh service on a fresh database, admin password known.
    pub async fn start(name: &str) -> Self {
        let db = TestDb::new(name).await.expect("test database");
        let data_dir = tempfile::tempdir().expect("data dir");
        let mut app = Self::on(config(&db, data_dir.path())).await;
        app._owned = Some((db, data_dir));
        app
    }

    /// A service from `config`, whose database and directory the caller
    /// keeps.
    pub async fn on(config: Config) -> Self {
        let keys = config.keys.clone();
        let db_url = config.database_url.clone();
        let data_dir = config.data_dir.clone();
        let base = serve(config).await;
        Self {
            base,
            keys,
            http: reqwest::Client::new(),
            db_url,
            data_dir,
            _owned: None,
        }
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(30));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `body` and returns the status and the JSON answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.request(method, path, token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn login(&self, username: &str, password: &str) -> (StatusCode, Value) {
        let body = serde_json::json!({"username": username, "password": password});
        self.send(Method::POST, "/api/auth/login", None, Some(body))
            .await
    }

    /// A token from signing in as the bootstrap admin.
    pub async fn admin_token(&self) -> String {
        let (status, body) = self.login("admin", ADMIN_PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// A token made directly from the shared secret, as another service
    /// or a signed-in account would hold.
    pub fn token(&self, role: Role) -> String {
        self.keys.issue("tester", role, Duration::from_secs(600))
    }

    /// Every member, as a librarian sees the list.
    pub async fn all_members(&self) -> Vec<Value> {
        let librarian = self.token(Role::Librarian);
        let (status, body) = self.get("/api/members?limit=200", &librarian).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"].as_array().expect("items").clone()
    }

    /// A new member with `card`; panics unless it is created.
    pub async fn member(&self, card: &str, name: &str) -> Value {
        let librarian = self.token(Role::Librarian);
        let email = format!("{}@example.org", card.to_lowercase());
        let body = serde_json::json!({"card_number": card, "name": name, "email": email});
        let (status, member) = self.post("/api/members", &librarian, body).await;
        assert_eq!(status, StatusCode::CREATED, "{member}");
        member
    }
}

/// The status and JSON body of `response` (`Null` when empty).
pub async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Asserts `body` is a problem document with `status` and `slug`.
pub fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode, slug: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["status"], expected.as_u16(), "{body}");
    let kind = format!("https://lectern.dev/problems/{slug}");
    assert_eq!(body["type"], kind.as_str(), "{body}");
}

/// How many admin accounts the database at `url` holds.
pub async fn admin_count(url: &str) -> i64 {
    let db = Database::connect(url).await.expect("database");
    let row = sqlx::query("SELECT COUNT(*) AS n FROM staff WHERE role = 'admin'")
        .fetch_one(&db.pool)
        .await
        .expect("count admins");
    let n: i64 = row.try_get("n").expect("count");
    db.pool.close().await;
    n
}
