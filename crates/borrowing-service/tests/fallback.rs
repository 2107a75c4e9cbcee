//! Checkout when a neighbour cannot answer: cached answers within their
//! age limit, marked stale; 503 with `Retry-After` for anything never
//! seen or too old; breakers on `/metrics`. user-service and book-service
//! are MOCKS (see `common`); Redis, when used, is the real one at
//! 127.0.0.1:6379.
//!
//! Ages are measured on tokio's clock, so a test moves past an age limit
//! by pausing the clock, advancing it and resuming it.

mod common;

use std::time::Duration;

use common::{answer, slug, Mode, Options, TestApp};
use lectern_platform::client::CallPolicy;
use lectern_platform::testing::server_available;

/// Quick retries, so that failing mocks answer fast.
fn quick() -> CallPolicy {
    CallPolicy {
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        ..CallPolicy::default()
    }
}

async fn start(name: &str, eligibility_max_age: Duration) -> TestApp {
    let options = Options {
        calls: quick(),
        eligibility_max_age,
        ..Options::default()
    };
    TestApp::with(name, options).await
}

/// Lets `by` pass on tokio's clock, which the caches' ages are read from.
async fn let_pass(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Vec<&'a str> {
    response
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[tokio::test]
async fn members_seen_recently_can_borrow_while_user_service_is_down() {
    let app = start("stale_member", Duration::from_secs(900)).await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_member("m2", "C-002", "active", 5);
    for barcode in ["B-1", "B-2", "B-3", "B-4"] {
        app.add_copy(barcode, "book-1", true);
    }
    let fresh = app.checkout("m1", "B-1").await;
    assert_eq!(fresh.status(), 201);
    assert!(header(&fresh, "warning").is_empty());
    assert!(header(&fresh, "x-lectern-stale-age").is_empty());

    app.users.set_mode(Mode::Fail(500, None));
    let_pass(Duration::from_secs(42)).await;

    let stale = app.checkout("m1", "B-2").await;
    assert_eq!(stale.status(), 201);
    let warnings = header(&stale, "warning");
    assert_eq!(warnings, [r#"110 - "stale: member eligibility, 42 s old""#]);
    assert_eq!(header(&stale, "x-lectern-stale-age"), ["42"]);
    // The answer was kept under the card number too.
    assert_eq!(app.checkout("C-001", "B-3").await.status(), 201);

    let never_seen = app.checkout("m2", "B-4").await;
    assert!(never_seen.headers().contains_key("retry-after"));
    assert!(header(&never_seen, "warning").is_empty());
    let (status, problem) = answer(never_seen).await;
    assert_eq!((status, slug(&problem)), (503, "unavailable"), "{problem}");
    assert_eq!(app.open_rows().await, 3);
    assert_eq!(app.counter("m2").await, 0);
}

#[tokio::test]
async fn no_cached_eligibility_is_used_past_its_age_limit() {
    let app = start("stale_too_old", Duration::from_secs(60)).await;
    app.add_member("m1", "C-001", "active", 5);
    for barcode in ["B-1", "B-2", "B-3"] {
        app.add_copy(barcode, "book-1", true);
    }
    assert_eq!(app.checkout("m1", "B-1").await.status(), 201);
    app.users.set_mode(Mode::Fail(503, None));

    let_pass(Duration::from_secs(59)).await;
    let within = app.checkout("m1", "B-2").await;
    assert_eq!(within.status(), 201);
    assert_eq!(header(&within, "x-lectern-stale-age"), ["59"]);

    let_pass(Duration::from_secs(2)).await;
    let too_old = app.checkout("m1", "B-3").await;
    assert_eq!(too_old.status(), 503);
    assert!(too_old.headers().contains_key("retry-after"));
    assert_eq!(app.open_rows().await, 2);
}

#[tokio::test]
async fn an_age_limit_of_zero_turns_the_fallback_off() {
    let app = start("stale_off", Duration::ZERO).await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_copy("B-1", "book-1", true);
    app.add_copy("B-2", "book-1", true);
    assert_eq!(app.checkout("m1", "B-1").await.status(), 201);

    app.users.set_mode(Mode::Fail(500, None));

    assert_eq!(app.checkout("m1", "B-2").await.status(), 503);
}

#[tokio::test]
async fn a_suspension_is_never_overridden_by_the_cache() {
    let app = start("stale_suspension", Duration::from_secs(60)).await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_member("s1", "C-009", "suspended", 5);
    app.add_copy("B-1", "book-1", true);
    app.add_copy("B-2", "book-1", true);
    assert_eq!(app.checkout("m1", "B-1").await.status(), 201);
    let (status, _) = answer(app.checkout("s1", "B-2").await).await;
    assert_eq!(status, 422);

    // m1 is suspended while user-service is down.
    app.add_member("m1", "C-001", "suspended", 5);
    app.users.set_mode(Mode::Fail(500, None));

    // A cached suspension refuses, and says it is a cached answer.
    let refused = app.checkout("s1", "B-2").await;
    assert_eq!(header(&refused, "x-lectern-stale-age"), ["0"]);
    let (status, problem) = answer(refused).await;
    assert_eq!((status, slug(&problem)), (422, "member-suspended"));

    // Past the age limit the cached "active" is not used: 503, not 201.
    let_pass(Duration::from_secs(61)).await;
    let (status, _) = answer(app.checkout("m1", "B-2").await).await;
    assert_eq!(status, 503);

    // Back up, user-service's word stands.
    app.users.set_mode(Mode::Normal);
    let (status, problem) = answer(app.checkout("m1", "B-2").await).await;
    assert_eq!((status, slug(&problem)), (422, "member-suspended"));
    assert_eq!(app.open_rows().await, 1);
}

#[tokio::test]
async fn a_barcode_never_seen_gets_503_while_book_service_is_down() {
    let app = start("stale_copy", Duration::from_secs(900)).await;
    app.add_member("m1", "C-001", "active", 5);
    app.add_copy("B-1", "book-1", true);
    app.add_copy("B-2", "book-2", true);
    let loan = app.checkout("m1", "B-1").await;
    let (status, loan) = answer(loan).await;
    assert_eq!(status, 201);
    let id = loan["id"].as_str().unwrap().to_owned();
    assert_eq!(app.act(&id, "return").await.status(), 200);

    app.books.set_mode(Mode::Fail(502, None));
    let unseen = app.checkout("m1", "B-2").await;
    assert_eq!(unseen.status(), 503);
    assert!(unseen.headers().contains_key("retry-after"));

    let again = app.checkout("m1", "B-1").await;
    assert_eq!(again.status(), 201);
    let warnings = header(&again, "warning");
    assert_eq!(warnings, [r#"110 - "stale: copy details, 0 s old""#]);
    let (_, loan) = answer(again).await;
    assert_eq!(loan["title"], "Title of book-1");
    assert_eq!(app.open_rows().await, 1);
}

#[tokio::test]
async fn an_open_breaker_fails_fast_and_shows_on_metrics() {
    let options = Options {
        calls: CallPolicy {
            max_attempts: 1,
            breaker_min_calls: 3,
            ..quick()
        },
        ..Options::default()
    };
    let app = TestApp::with("breaker_metrics", options).await;
    app.add_member("m1", "C-001", "active", 5);
    let metrics = || async {
        let response = app.get("/metrics", None).await;
        response.text().await.unwrap()
    };
    let state = |dependency: &str, state: &str| {
        format!(
            "lectern_breaker_state{{dependency=\"{dependency}\",\
             state=\"{state}\"}} 1"
        )
    };
    let text = metrics().await;
    assert!(text.contains(&state("user-service", "closed")), "{text}");
    assert!(text.contains(&state("book-service", "closed")), "{text}");

    app.books.set_mode(Mode::Fail(500, None));
    for _ in 0..3 {
        assert_eq!(app.checkout("m1", "NEW-1").await.status(), 503);
    }
    let calls = app.books.calls();
    let refused = app.checkout("m1", "NEW-1").await;

    assert_eq!(refused.status(), 503);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&wait), "until the trial call: {wait}");
    let (_, problem) = answer(refused).await;
    assert!(problem["detail"].as_str().unwrap().contains("circuit open"));
    assert_eq!(app.books.calls(), calls, "nothing was sent");
    let text = metrics().await;
    assert!(text.contains(&state("book-service", "open")), "{text}");
    assert!(text.contains(&state("user-service", "closed")), "{text}");
    assert!(text.contains("lectern_bulkhead_in_flight{"), "{text}");
    assert!(
        text.contains("lectern_retry_budget_refusals_total{"),
        "{text}"
    );
}

#[tokio::test]
async fn a_redis_cache_is_shared_by_every_replica() {
    let redis = std::net::TcpStream::connect("127.0.0.1:6379").is_ok();
    if !server_available("Redis at 127.0.0.1:6379", redis) {
        return;
    }
    // Short age limits: Redis forgets these test keys soon.
    let options = || Options {
        calls: quick(),
        redis_url: Some("redis://127.0.0.1:6379/".into()),
        eligibility_max_age: Duration::from_secs(60),
        copy_max_age: Duration::from_secs(60),
        ..Options::default()
    };
    // Keys no earlier run can have cached.
    let member = format!("m-{}", uuid::Uuid::new_v4().simple());
    let barcode = format!("B-{}", uuid::Uuid::new_v4().simple());
    let first = TestApp::with("redis_first", options()).await;
    first.add_member(&member, &format!("C-{member}"), "active", 5);
    first.add_copy(&barcode, "book-1", true);
    let (status, loan) = answer(first.checkout(&member, &barcode).await).await;
    assert_eq!(status, 201);
    let id = loan["id"].as_str().unwrap().to_owned();
    assert_eq!(first.act(&id, "return").await.status(), 200);

    // Another replica, whose neighbours know nothing and fail.
    let second = TestApp::with("redis_second", options()).await;
    second.users.set_mode(Mode::Fail(500, None));
    second.books.set_mode(Mode::Fail(500, None));
    let stale = second.checkout(&member, &barcode).await;

    assert_eq!(stale.status(), 201);
    assert_eq!(header(&stale, "warning").len(), 2);
    let unseen = second.checkout(&member, "NEVER-SEEN").await;
    assert_eq!(unseen.status(), 503);
}
