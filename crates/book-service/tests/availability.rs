//! Availability from borrowing-service. borrowing-service here is a MOCK
//! (see `common::MockBorrowing`): an axum server on 127.0.0.1 port 0 that
//! answers `GET /internal/loans/active-counts` from counts the test sets,
//! slowly or with an error when the test asks it to.

mod common;

use std::time::Duration;

use common::{closed_url, record, spawn, spawn_with, MockBorrowing, TestApp};
use lectern_platform::auth::Role;
use lectern_platform::client::CallPolicy;
use serde_json::{json, Value};

async fn with_mock(name: &str, mock: &MockBorrowing) -> TestApp {
    let url = mock.url.clone();
    spawn_with(name, |c| {
        c.borrowing_url = Some(url);
        c.call_timeout = Duration::from_millis(300);
    })
    .await
}

async fn book_with_copies(
    app: &TestApp,
    title: &str,
    barcodes: &[&str],
) -> String {
    let book = app.create(record(title, barcodes)).await;
    book["id"].as_str().unwrap().to_owned()
}

async fn availability(app: &TestApp, id: &str) -> Value {
    app.get_json(&format!("/api/books/{id}")).await["availability"].clone()
}

#[tokio::test]
async fn available_is_loanable_copies_minus_active_loans() {
    let mock = MockBorrowing::start().await;
    let app = with_mock("avail_counts", &mock).await;
    let three =
        book_with_copies(&app, "Three copies", &["A-1", "A-2", "A-3"]).await;
    let lent_out = book_with_copies(&app, "Lent out", &["B-1"]).await;
    let none = book_with_copies(&app, "No copies", &[]).await;
    mock.set_loans(&three, 1);
    mock.set_loans(&lent_out, 2);

    assert_eq!(
        availability(&app, &three).await,
        json!({"total": 3, "available": 2})
    );
    assert_eq!(
        availability(&app, &lent_out).await,
        json!({"total": 1, "available": 0})
    );
    assert_eq!(
        availability(&app, &none).await,
        json!({"total": 0, "available": 0})
    );

    let path = format!("/api/books/{three}/copies");
    let response = app
        .post(&path, &json!({"barcode": "A-4", "loanable": false}))
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        availability(&app, &three).await,
        json!({"total": 4, "available": 2})
    );
}

#[tokio::test]
async fn search_results_carry_availability_from_one_call() {
    let mock = MockBorrowing::start().await;
    let app = with_mock("avail_search", &mock).await;
    let a = book_with_copies(&app, "Catalogue A", &["C-1", "C-2"]).await;
    let b = book_with_copies(&app, "Catalogue B", &["C-3"]).await;
    book_with_copies(&app, "Catalogue C", &[]).await;
    mock.set_loans(&b, 1);
    let before = mock.calls().len();

    let page = app.search("q=catalogue").await;

    let got: Vec<Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["availability"].clone())
        .collect();
    assert_eq!(
        got,
        [
            json!({"total": 2, "available": 2}),
            json!({"total": 1, "available": 0}),
            json!({"total": 0, "available": 0}),
        ]
    );
    let calls = mock.calls();
    assert_eq!(calls.len(), before + 1, "one call for the page");
    let asked: Vec<&str> = calls.last().unwrap().split(',').collect();
    assert_eq!(asked, [a.as_str(), b.as_str()], "only records with copies");
}

fn assert_unknown(availability: &Value, total: i64) -> String {
    assert_eq!(availability["total"], total);
    assert_eq!(availability["available"], Value::Null);
    assert_eq!(availability["unknown"], true);
    let reason = availability["reason"].as_str().unwrap_or_default();
    assert!(!reason.is_empty());
    reason.to_owned()
}

#[tokio::test]
async fn availability_is_unknown_when_borrowing_service_is_down() {
    let url = closed_url().await;
    let app = spawn_with("avail_down", |c| {
        c.borrowing_url = Some(url);
        c.call_timeout = Duration::from_millis(300);
    })
    .await;
    let id = book_with_copies(&app, "Down", &["D-1", "D-2"]).await;

    let reason = assert_unknown(&availability(&app, &id).await, 2);
    assert!(reason.contains("borrowing-service"), "{reason}");
    assert!(!reason.contains("127.0.0.1"), "no address leaks: {reason}");
    let page = app.search("q=down").await;
    assert_unknown(&page["items"][0]["availability"], 2);
}

#[tokio::test]
async fn availability_is_unknown_when_borrowing_service_is_slow() {
    let mock = MockBorrowing::start().await;
    mock.state.lock().unwrap().delay = Duration::from_secs(3);
    let app = with_mock("avail_slow", &mock).await;
    let id = book_with_copies(&app, "Slow", &["S-1"]).await;
    mock.set_loans(&id, 1);

    let reason = assert_unknown(&availability(&app, &id).await, 1);
    assert!(reason.contains("300"), "{reason}");
}

#[tokio::test]
async fn availability_is_unknown_when_borrowing_service_fails() {
    let mock = MockBorrowing::start().await;
    mock.state.lock().unwrap().fail_with = Some(500);
    let app = with_mock("avail_error", &mock).await;
    let id = book_with_copies(&app, "Failing", &["E-1"]).await;

    let reason = assert_unknown(&availability(&app, &id).await, 1);
    assert!(reason.contains("500"), "{reason}");
}

#[tokio::test]
async fn availability_is_unknown_without_borrowing_service_url() {
    let app = spawn("avail_unset").await;
    let id = book_with_copies(&app, "Alone", &["U-1"]).await;

    let reason = assert_unknown(&availability(&app, &id).await, 1);
    assert!(reason.contains("BORROWING_SERVICE_URL"), "{reason}");
}

#[tokio::test]
async fn calls_to_borrowing_service_carry_a_service_token() {
    let mock = MockBorrowing::start().await;
    let app = with_mock("avail_token", &mock).await;
    let id = book_with_copies(&app, "Token", &["T-1"]).await;
    mock.set_loans(&id, 1);

    // The mock answers 401 to anything but a service token, which would
    // make availability unknown.
    assert_eq!(
        availability(&app, &id).await,
        json!({"total": 1, "available": 0})
    );
    let member = app.get_as(&format!("/api/books/{id}"), Role::Member).await;
    assert_eq!(member.status(), 200, "reading needs no particular role");
}

#[tokio::test]
async fn an_open_breaker_answers_unknown_without_calling() {
    let mock = MockBorrowing::start().await;
    mock.state.lock().unwrap().fail_with = Some(503);
    let url = mock.url.clone();
    let app = spawn_with("avail_breaker", |c| {
        c.borrowing_url = Some(url);
        c.call_timeout = Duration::from_millis(300);
        c.calls = CallPolicy {
            max_attempts: 1,
            breaker_min_calls: 3,
            ..CallPolicy::default()
        };
    })
    .await;
    let id = book_with_copies(&app, "Breaker", &["K-1"]).await;
    let metrics = || async { app.get("/metrics").await.text().await.unwrap() };
    let state = |s: &str| {
        format!(
            "lectern_breaker_state{{dependency=\"borrowing-service\",\
             state=\"{s}\"}} 1"
        )
    };
    assert!(metrics().await.contains(&state("closed")));

    for _ in 0..3 {
        let reason = assert_unknown(&availability(&app, &id).await, 1);
        assert!(reason.contains("503"), "{reason}");
    }
    let calls = mock.calls().len();
    let reason = assert_unknown(&availability(&app, &id).await, 1);

    assert!(reason.contains("circuit open"), "{reason}");
    assert_eq!(mock.calls().len(), calls, "an open breaker sends nothing");
    assert!(metrics().await.contains(&state("open")));
}
