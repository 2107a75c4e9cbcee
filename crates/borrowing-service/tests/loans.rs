//! borrowing-service over HTTP, on SQLite or (with LECTERN_TEST_POSTGRES)
//! PostgreSQL, with MOCK user-service and book-service (see `common`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as Days;
use common::{answer, at, slug, Mode, Options, TestApp};
use lectern_borrowing_service::Policy;
use lectern_platform::auth::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// The status codes of spawned requests, once all are answered.
async fn statuses(
    tasks: impl Iterator<Item = JoinHandle<StatusCode>>,
) -> Vec<u16> {
    let results = futures::future::join_all(tasks).await;
    results.into_iter().map(|r| r.unwrap().as_u16()).collect()
}

fn loan_id(loan: &Value) -> String {
    loan["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn checkout_renew_and_return_follow_the_policy() {
    let app = TestApp::start("lifecycle").await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_copy("B-1", "book-1", true);

    let (status, loan) = answer(app.checkout("C-001", "B-1").await).await;
    assert_eq!(status, 201, "{loan}");
    assert_eq!(loan["member_id"], "m1");
    assert_eq!(loan["card_number"], "C-001");
    assert_eq!(loan["barcode"], "B-1");
    assert_eq!(loan["book_id"], "book-1");
    assert_eq!(loan["title"], "Title of book-1");
    assert_eq!(loan["checked_out_at"], "2025-05-01T10:00:00Z");
    assert_eq!(loan["due_at"], "2025-05-15T23:59:59Z");
    assert_eq!(loan["returned_at"], Value::Null);
    assert_eq!(loan["renewals"], 0);
    assert_eq!(loan["overdue"], false);
    let id = loan_id(&loan);
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
    assert_eq!(app.counter("m1").await, 1);

    app.clock.advance(Days::days(10));
    let (status, renewed) = answer(app.act(&id, "renew").await).await;
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(renewed["renewals"], 1);
    assert_eq!(renewed["due_at"], "2025-05-25T23:59:59Z");

    app.clock.advance(Days::days(3));
    let (status, renewed) = answer(app.act(&id, "renew").await).await;
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(renewed["renewals"], 2);
    assert_eq!(renewed["due_at"], "2025-05-28T23:59:59Z");

    let (status, problem) = answer(app.act(&id, "renew").await).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(slug(&problem), "renewal-limit-reached");

    app.clock.advance(Days::days(1));
    let (status, returned) = answer(app.act(&id, "return").await).await;
    assert_eq!(status, 200, "{returned}");
    assert_eq!(returned["returned_at"], "2025-05-15T10:00:00Z");
    assert_eq!(returned["renewals"], 2);
    assert_eq!(app.counter("m1").await, 0);

    let (status, problem) = answer(app.act(&id, "return").await).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(slug(&problem), "loan-returned");
    let (status, _) = answer(app.act(&id, "renew").await).await;
    assert_eq!(status, 409);
    assert_eq!(app.counter("m1").await, 0);

    let path = format!("/api/loans/{id}");
    let (status, stored) =
        answer(app.get(&path, Some(&app.librarian())).await).await;
    assert_eq!(status, 200);
    assert_eq!(stored, returned);
}

#[tokio::test]
async fn a_renewal_never_moves_the_due_date_earlier() {
    let app = TestApp::start("renew_never_earlier").await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_copy("B-1", "book-1", true);
    let (_, loan) = answer(app.checkout("m1", "B-1").await).await;

    // The clock goes back (a corrected clock, a shorter LOAN_DAYS...):
    // a fresh period would end before the current due date.
    app.clock.advance(Days::days(-5));
    let (status, renewed) =
        answer(app.act(&loan_id(&loan), "renew").await).await;

    assert_eq!(status, 200, "{renewed}");
    assert_eq!(renewed["due_at"], loan["due_at"]);
    assert_eq!(renewed["renewals"], 1);
}

#[tokio::test]
async fn a_copy_on_loan_cannot_be_checked_out_again() {
    let app = TestApp::start("copy_on_loan").await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_member("m2", "C-002", "active", 5);
    app.add_copy("B-1", "book-1", true);

    let (status, loan) = answer(app.checkout("m1", "B-1").await).await;
    assert_eq!(status, 201);
    let (status, problem) = answer(app.checkout("m2", "B-1").await).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(slug(&problem), "copy-on-loan");
    assert_eq!(problem["detail"], "copy already on loan");
    assert_eq!(app.loan_rows().await, 1);
    assert_eq!(app.counter("m2").await, 0);

    answer(app.act(&loan_id(&loan), "return").await).await;
    let (status, _) = answer(app.checkout("m2", "B-1").await).await;
    assert_eq!(status, 201);
    assert_eq!(app.loan_rows().await, 2);
    assert_eq!(app.open_rows().await, 1);
}

#[tokio::test]
async fn the_loan_limit_holds_and_a_return_frees_a_slot() {
    let app = TestApp::start("loan_limit").await;
    app.add_member("m1", "C-001", "active", 2);
    for barcode in ["B-1", "B-2", "B-3"] {
        app.add_copy(barcode, "book-1", true);
    }

    let (_, first) = answer(app.checkout("m1", "B-1").await).await;
    let (status, _) = answer(app.checkout("m1", "B-2").await).await;
    assert_eq!(status, 201);
    let (status, problem) = answer(app.checkout("m1", "B-3").await).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(slug(&problem), "loan-limit-reached");
    assert_eq!(app.open_rows().await, 2);
    assert_eq!(app.counter("m1").await, 2);

    answer(app.act(&loan_id(&first), "return").await).await;
    let (status, _) = answer(app.checkout("m1", "B-3").await).await;
    assert_eq!(status, 201);
    assert_eq!(app.counter("m1").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_checkouts_of_one_copy_lend_it_once() {
    let app = TestApp::start("race_one_copy").await;
    app.add_copy("B-1", "book-1", true);
    for i in 0..20 {
        app.add_member(&format!("m{i}"), &format!("C-{i}"), "active", 5);
    }

    let app = Arc::new(app);
    let attempts = (0..20).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            app.checkout(&format!("m{i}"), "B-1").await.status()
        })
    });
    let statuses = statuses(attempts).await;

    let created = statuses.iter().filter(|s| **s == 201).count();
    let conflicts = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!((created, conflicts), (1, 19), "{statuses:?}");
    assert_eq!(app.loan_rows().await, 1);
    let counted = app
        .count("SELECT CAST(SUM(open_loans) AS BIGINT) FROM member_counters")
        .await;
    assert_eq!(counted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checkouts_for_one_member_stop_at_the_limit() {
    let app = TestApp::start("race_one_member").await;
    app.add_member("m1", "C-001", "active", 2);
    for i in 0..10 {
        app.add_copy(&format!("B-{i}"), "book-1", true);
    }

    let app = Arc::new(app);
    let attempts = (0..10).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            app.checkout("m1", &format!("B-{i}")).await.status()
        })
    });
    let statuses = statuses(attempts).await;

    let created = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 422).count();
    assert_eq!((created, refused), (2, 8), "{statuses:?}");
    assert_eq!(app.open_rows().await, 2);
    assert_eq!(app.counter("m1").await, 2);
}

#[tokio::test]
async fn members_who_may_not_borrow_and_unknown_things_are_refused() {
    let app = TestApp::start("refusals").await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_member("m2", "C-002", "suspended", 5);
    app.add_copy("B-1", "book-1", true);
    app.add_copy("REF-1", "book-2", false);

    let (status, problem) = answer(app.checkout("C-002", "B-1").await).await;
    assert_eq!((status, slug(&problem)), (422, "member-suspended"));
    assert_eq!(problem["detail"], "member suspended");

    let (status, problem) = answer(app.checkout("nobody", "B-1").await).await;
    assert_eq!((status, slug(&problem)), (404, "not-found"), "{problem}");

    let (status, problem) = answer(app.checkout("m1", "NO-SUCH").await).await;
    assert_eq!((status, slug(&problem)), (404, "not-found"), "{problem}");

    let (status, problem) = answer(app.checkout("m1", "REF-1").await).await;
    assert_eq!((status, slug(&problem)), (422, "copy-not-loanable"));

    // An unknown member is reported even when the copy is unknown too.
    let (status, problem) =
        answer(app.checkout("nobody", "NO-SUCH").await).await;
    assert_eq!(status, 404);
    assert!(problem["detail"].as_str().unwrap().contains("member"));

    assert_eq!(app.loan_rows().await, 0);
    assert_eq!(app.counter("m1").await, 0);
}

#[tokio::test]
async fn identifiers_with_reserved_characters_reach_the_neighbours_intact() {
    let app = TestApp::start("escaping").await;
    app.add_member("m1", "C 001/x", "active", 5);
    app.add_copy("B?1#2", "book-1", true);

    let (status, loan) = answer(app.checkout("C 001/x", "B?1#2").await).await;

    assert_eq!(status, 201, "{loan}");
    assert_eq!(loan["barcode"], "B?1#2");
}

#[tokio::test]
async fn neighbours_that_cannot_answer_give_503_and_change_nothing() {
    let options = Options {
        users_unreachable: true,
        ..Options::default()
    };
    let app = TestApp::with("users_down", options).await;
    app.add_copy("B-1", "book-1", true);

    let response = app.checkout("m1", "B-1").await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, problem) = answer(response).await;
    assert_eq!((status, slug(&problem)), (503, "unavailable"), "{problem}");
    assert_eq!(app.loan_rows().await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM member_counters").await, 0);

    // Reads and health do not depend on the neighbours.
    let (status, health) = answer(app.get("/health", None).await).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["checks"]["database"]["status"], "UP");
    let (status, _) =
        answer(app.get("/api/loans/overdue", Some(&app.librarian())).await)
            .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_failing_neighbour_gives_503_with_its_retry_after() {
    let app = TestApp::start("books_failing").await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_copy("B-1", "book-1", true);

    app.books.set_mode(Mode::Fail(500, None));
    let response = app.checkout("m1", "B-1").await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));

    app.books.set_mode(Mode::Fail(503, Some(7)));
    let response = app.checkout("m1", "B-1").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "7");

    // m2 was never looked up, so no cached answer can stand in for
    // user-service (m1's could: see tests/fallback.rs).
    app.add_member("m2", "C-002", "active", 5);
    app.users.set_mode(Mode::Fail(502, None));
    app.books.set_mode(Mode::Normal);
    let response = app.checkout("m2", "B-1").await;
    assert_eq!(response.status(), 503);

    assert_eq!(app.loan_rows().await, 0);
    app.users.set_mode(Mode::Normal);
    assert_eq!(app.checkout("m1", "B-1").await.status(), 201);
}

#[tokio::test]
async fn a_slow_neighbour_gives_503_at_the_call_timeout() {
    let options = Options {
        call_timeout: Duration::from_millis(200),
        ..Options::default()
    };
    let app = TestApp::with("books_slow", options).await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_copy("B-1", "book-1", true);
    // Far longer than the test client's own 20 s limit: only the
    // service's call timeout can end this request in time.
    app.books.set_mode(Mode::Slow(Duration::from_secs(600)));

    let response = app.checkout("m1", "B-1").await;

    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let (_, problem) = answer(response).await;
    assert!(problem["detail"].as_str().unwrap().contains("book-service"));
    assert_eq!(app.loan_rows().await, 0);
}

#[tokio::test]
async fn the_same_key_and_body_replays_the_first_answer() {
    let app = TestApp::start("idempotent_checkout").await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_copy("B-1", "book-1", true);
    app.add_copy("B-2", "book-1", true);
    let token = app.librarian();
    let body = json!({ "member": "m1", "barcode": "B-1" });

    let first = app
        .post("/api/loans", Some(body.clone()), Some(&token), Some("k-1"))
        .await;
    let (status, loan) = answer(first).await;
    assert_eq!(status, 201);

    // The replay needs neither neighbour.
    app.users.set_mode(Mode::Fail(500, None));
    let calls = app.users.calls();
    let again = app
        .post("/api/loans", Some(body), Some(&token), Some("k-1"))
        .await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let (status, replayed) = answer(again).await;
    assert_eq!(status, 201);
    assert_eq!(replayed, loan);
    assert_eq!(app.users.calls(), calls);
    app.users.set_mode(Mode::Normal);

    let other = json!({ "member": "m1", "barcode": "B-2" });
    let reused = app
        .post("/api/loans", Some(other), Some(&token), Some("k-1"))
        .await;
    let (status, problem) = answer(reused).await;
    assert_eq!((status, slug(&problem)), (422, "idempotency-key-reused"));

    assert_eq!(app.loan_rows().await, 1);
    assert_eq!(app.counter("m1").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_requests_with_one_key_create_one_loan() {
    let app = Arc::new(TestApp::start("idempotent_race").await);
    app.add_member("m1", "C-001", "active", 5);
    app.add_copy("B-1", "book-1", true);

    let tasks = (0..8).map(|_| {
        let app = app.clone();
        tokio::spawn(async move {
            let body = json!({ "member": "m1", "barcode": "B-1" });
            let token = app.librarian();
            let response = app
                .post("/api/loans", Some(body), Some(&token), Some("race"))
                .await;
            answer(response).await
        })
    });
    let answers = futures::future::join_all(tasks).await;

    let ids: Vec<_> = answers
        .into_iter()
        .map(|r| {
            let (status, loan) = r.unwrap();
            assert_eq!(status, 201, "{loan}");
            loan_id(&loan)
        })
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(app.loan_rows().await, 1);
    assert_eq!(app.counter("m1").await, 1);
}

#[tokio::test]
async fn returns_and_renewals_with_a_key_happen_once() {
    let app = TestApp::start("idempotent_return").await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_copy("B-1", "book-1", true);
    app.add_copy("B-2", "book-1", true);
    let token = app.librarian();
    let (_, one) = answer(app.checkout("m1", "B-1").await).await;
    let (_, two) = answer(app.checkout("m1", "B-2").await).await;

    let renew = format!("/api/loans/{}/renew", loan_id(&one));
    for _ in 0..3 {
        let (status, loan) =
            answer(app.post(&renew, None, Some(&token), Some("r")).await).await;
        assert_eq!((status, loan["renewals"].clone()), (200, json!(1)));
    }

    let back = format!("/api/loans/{}/return", loan_id(&one));
    for _ in 0..2 {
        let (status, _) =
            answer(app.post(&back, None, Some(&token), Some("b")).await).await;
        assert_eq!(status, 200);
    }
    assert_eq!(app.counter("m1").await, 1);

    // The same key on another loan is another request.
    let other = format!("/api/loans/{}/return", loan_id(&two));
    let (status, problem) =
        answer(app.post(&other, None, Some(&token), Some("b")).await).await;
    assert_eq!((status, slug(&problem)), (422, "idempotency-key-reused"));
    assert_eq!(app.open_rows().await, 1);
}

#[tokio::test]
async fn overdue_lists_open_loans_past_due_at_the_clock_time() {
    let app = TestApp::start("overdue").await;
    app.add_member("m1", "C-001", "active", 5);
    for barcode in ["B-1", "B-2", "B-3"] {
        app.add_copy(barcode, "book-1", true);
    }
    let token = app.librarian();

    // Due 2025-05-15, 2025-05-20 and 2025-05-20.
    let (_, first) = answer(app.checkout("m1", "B-1").await).await;
    app.clock.advance(Days::days(5));
    let (_, second) = answer(app.checkout("m1", "B-2").await).await;
    let (_, third) = answer(app.checkout("m1", "B-3").await).await;
    answer(app.act(&loan_id(&third), "return").await).await;

    app.clock.set(at("2025-05-15T23:59:59Z"));
    let (status, page) = app.get_json("/api/loans/overdue", &token).await;
    assert_eq!((status, page["total"].clone()), (200, json!(0)), "{page}");

    app.clock.set(at("2025-05-16T00:00:00Z"));
    let (_, page) = app.get_json("/api/loans/overdue", &token).await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], first["id"]);
    assert_eq!(page["items"][0]["overdue"], true);

    app.clock.set(at("2025-06-01T00:00:00Z"));
    let (_, page) = app.get_json("/api/loans/overdue", &token).await;
    let ids: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].clone())
        .collect();
    assert_eq!(ids, [first["id"].clone(), second["id"].clone()]);

    let path = format!("/api/loans/{}", loan_id(&second));
    let (_, loan) = answer(app.get(&path, Some(&token)).await).await;
    assert_eq!(loan["overdue"], true);
}

#[tokio::test]
async fn due_dates_end_the_due_day_in_the_library_time_zone() {
    let policy = Policy {
        timezone: chrono_tz::Europe::Paris,
        ..Policy::default()
    };
    let options = Options {
        policy,
        now: at("2025-03-20T10:00:00Z"),
        ..Options::default()
    };
    let app = TestApp::with("paris", options).await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_copy("B-1", "book-1", true);

    // Across the March change: CEST (+02:00) on the due day.
    let (_, loan) = answer(app.checkout("m1", "B-1").await).await;
    assert_eq!(loan["due_at"], "2025-04-03T21:59:59Z");

    // Renewed on 20 October: due 3 November, back on CET (+01:00).
    app.clock.set(at("2025-10-20T10:00:00Z"));
    let (_, renewed) = answer(app.act(&loan_id(&loan), "renew").await).await;
    assert_eq!(renewed["due_at"], "2025-11-03T22:59:59Z");
}

#[tokio::test]
async fn new_york_checkouts_count_from_the_local_day() {
    let policy = Policy {
        timezone: chrono_tz::America::New_York,
        loan_days: 14,
        max_renewals: 2,
    };
    let options = Options {
        policy,
        // 22:00 on 25 October in New York.
        now: at("2025-10-26T02:00:00Z"),
        ..Options::default()
    };
    let app = TestApp::with("new_york", options).await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_copy("B-1", "book-1", true);

    let (_, loan) = answer(app.checkout("m1", "B-1").await).await;

    // 8 November 23:59:59 EST (-05:00), after the 2 November change.
    assert_eq!(loan["due_at"], "2025-11-09T04:59:59Z");
}

#[tokio::test]
async fn bad_requests_get_400_and_change_nothing() {
    let app = TestApp::start("bad_input").await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_copy("B-1", "book-1", true);
    let token = app.librarian();
    let url = format!("{}/api/loans", app.base);

    let bodies = [
        "{not json",
        "{}",
        r#"{"member": "m1"}"#,
        r#"{"member": 5, "barcode": "B-1"}"#,
        r#"{"member": "  ", "barcode": "B-1"}"#,
        r#"{"member": "m1", "barcode": "B\u0000-1"}"#,
        r#"{"member": "..", "barcode": "B-1"}"#,
    ];
    for body in bodies {
        let response = app
            .http
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let kind = response.headers()["content-type"].clone();
        let (status, problem) = answer(response).await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert_eq!(kind, "application/problem+json");
    }

    let no_type = app.http.post(&url).bearer_auth(&token).body("{}").send();
    assert_eq!(no_type.await.unwrap().status(), 415);

    let bad_key = app
        .post(
            "/api/loans",
            Some(json!({"member": "m1", "barcode": "B-1"})),
            Some(&token),
            Some(""),
        )
        .await;
    assert_eq!(bad_key.status(), 400);

    assert_eq!(app.loan_rows().await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM member_counters").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM idempotency_keys").await, 0);
    assert_eq!(app.users.calls() + app.books.calls(), 0);
}

#[tokio::test]
async fn unknown_loans_are_404() {
    let app = TestApp::start("unknown_loan").await;
    let token = app.librarian();

    for action in ["return", "renew"] {
        let (status, problem) =
            answer(app.act("no-such-loan", action).await).await;
        assert_eq!(status, 404, "{problem}");
    }
    let (status, _) =
        answer(app.get("/api/loans/no-such-loan", Some(&token)).await).await;
    assert_eq!(status, 404);
    assert_eq!(app.count("SELECT COUNT(*) FROM idempotency_keys").await, 0);
}

#[tokio::test]
async fn roles_are_checked_on_every_route() {
    let app = TestApp::start("roles").await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_copy("B-1", "book-1", true);
    let (_, loan) = answer(app.checkout("m1", "B-1").await).await;
    let id = loan_id(&loan);
    let body = json!({ "member": "m1", "barcode": "B-1" });

    let member = app.token("m1", Role::Member);
    let service = app.token("book-service", Role::Service);
    let forged = common_forged_token();

    // No token, a token signed with another secret.
    for token in [None, Some(forged.as_str())] {
        let r = app
            .post("/api/loans", Some(body.clone()), token, None)
            .await;
        assert_eq!(r.status(), 401);
        assert_eq!(app.get("/api/loans/overdue", token).await.status(), 401);
    }

    // Members and services may not change loans.
    for token in [&member, &service] {
        let r = app
            .post("/api/loans", Some(body.clone()), Some(token), None)
            .await;
        assert_eq!(r.status(), 403);
        let r = app
            .post(&format!("/api/loans/{id}/return"), None, Some(token), None)
            .await;
        assert_eq!(r.status(), 403);
        let r = app
            .post(&format!("/api/loans/{id}/renew"), None, Some(token), None)
            .await;
        assert_eq!(r.status(), 403);
        assert_eq!(
            app.get("/api/loans/overdue", Some(token)).await.status(),
            403
        );
    }
    // A member with a bad body still gets 403 first.
    let r = app
        .post("/api/loans", Some(json!({})), Some(&member), None)
        .await;
    assert_eq!(r.status(), 403);

    // A member sees their own loans only.
    assert_eq!(
        app.get("/api/loans?member=m1", Some(&member))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get(&format!("/api/loans/{id}"), Some(&member))
            .await
            .status(),
        200
    );
    let other = app.token("m2", Role::Member);
    assert_eq!(
        app.get("/api/loans?member=m1", Some(&other)).await.status(),
        403
    );
    assert_eq!(
        app.get(&format!("/api/loans/{id}"), Some(&other))
            .await
            .status(),
        403
    );

    // Internal routes are for services only; admin passes staff checks.
    let counts = "/internal/loans/active-counts?book_ids=book-1";
    assert_eq!(app.get(counts, Some(&app.librarian())).await.status(), 403);
    assert_eq!(app.get(counts, Some(&service)).await.status(), 200);
    let admin = app.token("root", Role::Admin);
    assert_eq!(
        app.get("/api/loans/overdue", Some(&admin)).await.status(),
        200
    );

    // Nothing changed.
    let path = format!("/api/loans/{id}");
    let (_, stored) =
        answer(app.get(&path, Some(&app.librarian())).await).await;
    assert_eq!(stored, loan);
    assert_eq!(app.loan_rows().await, 1);
}

fn common_forged_token() -> String {
    let other = lectern_platform::auth::TokenKeys::from_secret(
        b"another-secret-entirely",
    );
    other.issue("libby", Role::Librarian, Duration::from_secs(600))
}

#[tokio::test]
async fn a_member_listing_filters_by_id_or_card_and_openness() {
    let app = TestApp::start("member_listing").await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_member("m2", "C-002", "active", 5);
    for barcode in ["B-1", "B-2", "B-3"] {
        app.add_copy(barcode, "book-1", true);
    }
    let token = app.librarian();
    let (_, first) = answer(app.checkout("m1", "B-1").await).await;
    app.clock.advance(Days::hours(1));
    let (_, second) = answer(app.checkout("C-001", "B-2").await).await;
    answer(app.checkout("m2", "B-3").await).await;
    answer(app.act(&loan_id(&first), "return").await).await;

    let list = |query: &str| format!("/api/loans?{query}");

    let (status, all) = app.get_json(&list("member=C-001"), &token).await;
    assert_eq!((status, all["total"].clone()), (200, json!(2)));
    assert_eq!(all["items"][0]["id"], second["id"]);
    let (_, by_id) = app.get_json(&list("member=m1"), &token).await;
    assert_eq!(by_id, all);

    let (_, open) = app.get_json(&list("member=m1&open=true"), &token).await;
    assert_eq!(open["total"], 1);
    assert_eq!(open["items"][0]["id"], second["id"]);
    let (_, closed) = app.get_json(&list("member=m1&open=false"), &token).await;
    assert_eq!(closed["items"][0]["id"], first["id"]);

    let (_, page) = app
        .get_json(&list("member=m1&limit=1&offset=1"), &token)
        .await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], first["id"]);

    for bad in ["", "member=", "member=m1&open=maybe", "member=m1&limit=0"] {
        let (status, problem) = app.get_json(&list(bad), &token).await;
        assert_eq!(status, 400, "{bad}: {problem}");
    }
}

#[tokio::test]
async fn active_counts_count_open_loans_per_book() {
    let app = TestApp::start("active_counts").await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_copy("B-1", "book-a", true);
    app.add_copy("B-2", "book-a", true);
    app.add_copy("B-3", "book-b", true);
    let service = app.token("book-service", Role::Service);
    answer(app.checkout("m1", "B-1").await).await;
    answer(app.checkout("m1", "B-2").await).await;
    let (_, returned) = answer(app.checkout("m1", "B-3").await).await;
    answer(app.act(&loan_id(&returned), "return").await).await;

    let path = "/internal/loans/active-counts?book_ids=book-a,book-b,book-c";
    let (status, counts) = answer(app.get(path, Some(&service)).await).await;
    assert_eq!(status, 200);
    assert_eq!(counts, json!({ "counts": { "book-a": 2 } }));

    let (_, none) = answer(
        app.get("/internal/loans/active-counts?book_ids=", Some(&service))
            .await,
    )
    .await;
    assert_eq!(none, json!({ "counts": {} }));

    let many: Vec<String> = (0..501).map(|i| format!("b{i}")).collect();
    let path =
        format!("/internal/loans/active-counts?book_ids={}", many.join(","));
    assert_eq!(app.get(&path, Some(&service)).await.status(), 400);
    let path = format!(
        "/internal/loans/active-counts?book_ids={}",
        many[1..].join(",")
    );
    assert_eq!(app.get(&path, Some(&service)).await.status(), 200);
    let missing = app
        .get("/internal/loans/active-counts", Some(&service))
        .await;
    assert_eq!(missing.status(), 400);
}
