//! Sign-in and staff accounts over HTTP.

mod common;

use common::{assert_problem, TestApp, ADMIN_PASSWORD, SECRET};
use lectern_platform::auth::{Role, TokenKeys};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn signing_in_answers_a_token_with_role_and_expiry() {
    let app = TestApp::start("auth_ok").await;

    let (status, body) = app.login(" Admin ", ADMIN_PASSWORD).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "admin");
    let token = body["token"].as_str().unwrap();
    let claims = TokenKeys::from_secret(SECRET).verify(token).unwrap();
    assert_eq!((claims.sub.as_str(), claims.role), ("admin", Role::Admin));
    let expires = body["expires_at"].as_str().unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(expires).unwrap();
    assert_eq!(expires.timestamp(), i64::try_from(claims.exp).unwrap());
    let ttl = expires.timestamp() - chrono::Utc::now().timestamp();
    assert!((28_700..=28_800).contains(&ttl), "eight hours, got {ttl} s");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_look_the_same() {
    let app = TestApp::start("auth_bad").await;

    let (wrong_status, wrong) = app.login("admin", "not the password").await;
    let (unknown_status, unknown) = app.login("nobody", ADMIN_PASSWORD).await;

    assert_problem(
        wrong_status,
        &wrong,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_eq!(wrong["detail"], "invalid username or password");
    assert_eq!(unknown_status, wrong_status);
    assert_eq!(unknown, wrong);
}

#[tokio::test]
async fn a_malformed_sign_in_is_a_bad_request() {
    let app = TestApp::start("auth_malformed").await;

    let response = app
        .request(Method::POST, "/api/auth/login", None)
        .header("content-type", "application/json")
        .body("{\"username\": \"admin\"")
        .send()
        .await
        .unwrap();
    let (status, body) = common::answer(response).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "bad-request");

    let missing = json!({"username": "admin"});
    let (status, body) = app
        .send(Method::POST, "/api/auth/login", None, Some(missing))
        .await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "bad-request");
}

#[tokio::test]
async fn an_admin_creates_staff_who_can_then_sign_in() {
    let app = TestApp::start("auth_staff").await;
    let admin = app.admin_token().await;

    let body = json!({"username": "Lena", "password": "shelves-42", "role": "librarian"});
    let (status, created) = app.post("/api/auth/staff", &admin, body).await;

    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["username"], "lena");
    assert_eq!(created["role"], "librarian");
    assert!(created.get("password").is_none() && created.get("password_hash").is_none());
    let (status, login) = app.login("lena", "shelves-42").await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["role"], "librarian");
}

#[tokio::test]
async fn a_taken_username_is_a_conflict_whatever_its_case() {
    let app = TestApp::start("auth_dup").await;
    let admin = app.admin_token().await;
    let body = json!({"username": "lena", "password": "shelves-42", "role": "member"});
    let (status, _) = app.post("/api/auth/staff", &admin, body).await;
    assert_eq!(status, StatusCode::CREATED);

    let again = json!({"username": "LENA", "password": "other-pass", "role": "admin"});
    let (status, body) = app.post("/api/auth/staff", &admin, again).await;

    assert_problem(status, &body, StatusCode::CONFLICT, "username-taken");
    let (status, _) = app.login("lena", "other-pass").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the first account stays");
}

#[tokio::test]
async fn bad_staff_fields_are_refused_and_create_nothing() {
    let app = TestApp::start("auth_bad_staff").await;
    let admin = app.admin_token().await;
    let cases = [
        json!({"username": "shorty", "password": "seven77", "role": "member"}),
        json!({"username": "robot", "password": "long enough", "role": "service"}),
        json!({"username": "bad name", "password": "long enough", "role": "member"}),
        json!({"username": "extra", "password": "long enough", "role": "member", "x": 1}),
    ];

    for body in cases {
        let username = body["username"].as_str().unwrap().to_owned();
        let password = body["password"].as_str().unwrap().to_owned();
        let (status, problem) = app.post("/api/auth/staff", &admin, body).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "bad-request");
        let (status, _) = app.login(&username, &password).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{username} was not created"
        );
    }
}

#[tokio::test]
async fn only_admins_create_staff() {
    let app = TestApp::start("auth_roles").await;
    let body = json!({"username": "eve", "password": "long enough", "role": "admin"});

    let librarian = app.token(Role::Librarian);
    let (status, problem) = app.post("/api/auth/staff", &librarian, body.clone()).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "forbidden");

    let (status, problem) = app
        .send(Method::POST, "/api/auth/staff", None, Some(body.clone()))
        .await;
    assert_problem(status, &problem, StatusCode::UNAUTHORIZED, "unauthorized");

    let forged = TokenKeys::from_secret(b"another-secret-entirely").issue(
        "eve",
        Role::Admin,
        std::time::Duration::from_secs(60),
    );
    let (status, problem) = app.post("/api/auth/staff", &forged, body).await;
    assert_problem(status, &problem, StatusCode::UNAUTHORIZED, "unauthorized");

    let (status, _) = app.login("eve", "long enough").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no account was made");
}

#[tokio::test]
async fn staff_creation_replays_for_the_same_key_and_refuses_another_body() {
    let app = TestApp::start("auth_idem").await;
    let admin = app.admin_token().await;
    let post = |body: serde_json::Value| {
        app.request(Method::POST, "/api/auth/staff", Some(&admin))
            .header("idempotency-key", "staff-1")
            .json(&body)
            .send()
    };
    let body = json!({"username": "lena", "password": "shelves-42", "role": "librarian"});

    let (first_status, first) = common::answer(post(body.clone()).await.unwrap()).await;
    let replay = post(body).await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let (replay_status, replayed) = common::answer(replay).await;

    assert_eq!(first_status, StatusCode::CREATED, "{first}");
    assert_eq!((replay_status, &replayed), (first_status, &first));

    let other_password = json!({"username": "lena", "password": "other-pass", "role": "librarian"});
    let (status, problem) = common::answer(post(other_password).await.unwrap()).await;
    assert_problem(
        status,
        &problem,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
    );
    let other_role = json!({"username": "lena", "password": "shelves-42", "role": "admin"});
    let (status, problem) = common::answer(post(other_role).await.unwrap()).await;
    assert_problem(
        status,
        &problem,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
    );

    let (status, login) = app.login("lena", "shelves-42").await;
    assert_eq!(
        (status, &login["role"]),
        (StatusCode::OK, &json!("librarian"))
    );
}

#[tokio::test]
async fn health_reports_the_database() {
    let app = TestApp::start("auth_health").await;

    let (status, body) = app.send(Method::GET, "/health", None, None).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["database"]["status"], "UP");
}
