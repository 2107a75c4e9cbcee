//! Members over HTTP: create, read, search, change, eligibility.

mod common;

use common::{assert_problem, TestApp};
use lectern_platform::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn a_librarian_creates_a_member_and_reads_it_by_id_or_card() {
    let app = TestApp::start("members_create").await;
    let librarian = app.token(Role::Librarian);
    let body =
        json!({"card_number": " c-0001 ", "name": " Ana Silva ", "email": "ana@example.org"});

    let (status, member) = app.post("/api/members", &librarian, body).await;

    assert_eq!(status, StatusCode::CREATED, "{member}");
    assert_eq!(member["card_number"], "C-0001");
    assert_eq!(member["name"], "Ana Silva");
    assert_eq!(member["email"], "ana@example.org");
    assert_eq!(member["status"], "active");
    assert_eq!(member["loan_limit"], 5);
    assert!(member["created_at"].as_str().unwrap().ends_with('Z'));
    let id = member["id"].as_str().unwrap();
    uuid::Uuid::parse_str(id).expect("the id is a UUID");

    for key in [id, "C-0001", "c-0001"] {
        let (status, found) = app.get(&format!("/api/members/{key}"), &librarian).await;
        assert_eq!(status, StatusCode::OK, "{key}: {found}");
        assert_eq!(found, member);
    }
    let (status, problem) = app.get("/api/members/NOPE-1", &librarian).await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn an_admin_may_do_what_a_librarian_may_and_gives_loan_limits() {
    let app = TestApp::start("members_admin").await;
    let admin = app.admin_token().await;
    let body = json!({"card_number": "A1", "name": "Bo", "email": "bo@x.org", "loan_limit": 12});

    let (status, member) = app.post("/api/members", &admin, body).await;

    assert_eq!(status, StatusCode::CREATED, "{member}");
    assert_eq!(member["loan_limit"], 12);
}

#[tokio::test]
async fn members_and_strangers_may_not_touch_members() {
    let app = TestApp::start("members_roles").await;
    let existing = app.member("R1", "Rita").await;
    let body = json!({"card_number": "R2", "name": "Rui", "email": "rui@x.org"});

    let member = app.token(Role::Member);
    let (status, problem) = app.post("/api/members", &member, body.clone()).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "forbidden");
    let (status, problem) = app.get("/api/members/R1", &member).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "forbidden");
    let (status, problem) = app
        .send(Method::POST, "/api/members", None, Some(body))
        .await;
    assert_problem(status, &problem, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, problem) = app
        .send(
            Method::PATCH,
            "/api/members/R1",
            None,
            Some(json!({"name": "X"})),
        )
        .await;
    assert_problem(status, &problem, StatusCode::UNAUTHORIZED, "unauthorized");

    assert_eq!(app.all_members().await, vec![existing]);
}

#[tokio::test]
async fn a_taken_card_number_is_a_conflict_whatever_its_case() {
    let app = TestApp::start("members_dup").await;
    let first = app.member("D-100", "Dora").await;
    let librarian = app.token(Role::Librarian);
    let body = json!({"card_number": "d-100", "name": "Other", "email": "o@x.org"});

    let (status, problem) = app.post("/api/members", &librarian, body).await;

    assert_problem(status, &problem, StatusCode::CONFLICT, "card-number-taken");
    assert_eq!(app.all_members().await, vec![first]);
}

#[tokio::test]
async fn bad_new_members_are_refused_and_nothing_is_stored() {
    let app = TestApp::start("members_bad").await;
    let librarian = app.token(Role::Librarian);
    let good = json!({"card_number": "B1", "name": "Bea", "email": "bea@x.org"});
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    let cases = [
        with("email", json!("bea.example.org")),
        with("email", json!("bea @x.org")),
        with("email", json!("@x.org")),
        with("name", json!("   ")),
        with("card_number", json!("B 1")),
        with("loan_limit", json!(101)),
        with("loan_limit", json!(-1)),
        with("loan_limit", json!("three")),
        with("status", json!("suspended")),
        json!({"card_number": "B1", "name": "Bea"}),
    ];

    for body in cases {
        let (status, problem) = app.post("/api/members", &librarian, body.clone()).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "bad-request");
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
    }
    let response = app
        .request(Method::POST, "/api/members", Some(&librarian))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, problem) = common::answer(response).await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST, "bad-request");

    let huge = with("name", json!("n".repeat(100_000)));
    let (status, problem) = app.post("/api/members", &librarian, huge).await;
    assert_problem(
        status,
        &problem,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
    );

    assert!(app.all_members().await.is_empty());
}

#[tokio::test]
async fn search_folds_case_over_name_card_and_email() {
    let app = TestApp::start("members_search").await;
    let ana = app.member("S-001", "Ana Sílva").await;
    let bruno = app.member("S-002", "Bruno Costa").await;
    let carla = app.member("S-003", "Carla Silva_Rocha").await;
    let librarian = app.token(Role::Librarian);
    let ids = |body: &Value| -> Vec<Value> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].clone())
            .collect()
    };

    let (status, body) = app.get("/api/members?q=ANA", &librarian).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["total"].clone(), ids(&body)),
        (json!(1), vec![ana["id"].clone()])
    );

    let (_, body) = app.get("/api/members?q=s-002", &librarian).await;
    assert_eq!(ids(&body), vec![bruno["id"].clone()]);

    let (_, body) = app.get("/api/members?q=S-003%40EXAMPLE", &librarian).await;
    assert_eq!(ids(&body), vec![carla["id"].clone()]);

    let (_, body) = app.get("/api/members?q=S%C3%8DLVA%20ana", &librarian).await;
    assert_eq!(ids(&body), vec![ana["id"].clone()], "every word must match");

    let (_, body) = app.get("/api/members?q=_", &librarian).await;
    assert_eq!(ids(&body), vec![carla["id"].clone()], "_ is not a wildcard");

    let (_, body) = app.get("/api/members?q=%25", &librarian).await;
    assert_eq!(body["total"], 0, "% is not a wildcard");

    let (_, body) = app.get("/api/members?limit=2&offset=2", &librarian).await;
    assert_eq!(body["total"], 3);
    assert_eq!(body["items"].as_array().unwrap().len(), 1);

    for bad in ["limit=0", "limit=201", "offset=-1", "limit=many"] {
        let (status, problem) = app.get(&format!("/api/members?{bad}"), &librarian).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "bad-request");
    }
}

#[tokio::test]
async fn a_patch_changes_the_fields_it_names() {
    let app = TestApp::start("members_patch").await;
    let member = app.member("P-1", "Pedro").await;
    let librarian = app.token(Role::Librarian);
    let body =
        json!({"name": "Pedro Alves", "email": "pa@x.org", "status": "suspended", "loan_limit": 2});

    let (status, changed) = app.patch("/api/members/p-1", &librarian, body).await;

    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["id"], member["id"]);
    assert_eq!(changed["card_number"], "P-1");
    assert_eq!(changed["name"], "Pedro Alves");
    assert_eq!(changed["email"], "pa@x.org");
    assert_eq!(changed["status"], "suspended");
    assert_eq!(changed["loan_limit"], 2);
    assert_eq!(changed["created_at"], member["created_at"]);
    let (_, found) = app.get("/api/members/P-1", &librarian).await;
    assert_eq!(found, changed);

    let (_, body) = app.get("/api/members?q=alves", &librarian).await;
    assert_eq!(body["total"], 1, "search sees the new name");
    let (_, body) = app.get("/api/members?q=p-1%40example", &librarian).await;
    assert_eq!(body["total"], 0, "search forgets the old e-mail");

    let only_status = json!({"status": "active"});
    let (_, changed) = app.patch("/api/members/P-1", &librarian, only_status).await;
    assert_eq!(
        (&changed["status"], &changed["name"]),
        (&json!("active"), &json!("Pedro Alves"))
    );
}

#[tokio::test]
async fn a_patch_with_any_bad_field_changes_nothing() {
    let app = TestApp::start("members_patch_bad").await;
    let member = app.member("Q-1", "Quim").await;
    let librarian = app.token(Role::Librarian);
    let cases = [
        json!({"name": "New Name", "status": "banned"}),
        json!({"name": "New Name", "email": "no-at-sign"}),
        json!({"name": "New Name", "loan_limit": 1000}),
        json!({"name": ""}),
        json!({"name": "New Name", "card_number": "Q-2"}),
    ];

    for body in cases {
        let (status, problem) = app.patch("/api/members/Q-1", &librarian, body).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "bad-request");
    }
    let (status, problem) = app
        .patch("/api/members/NOBODY", &librarian, json!({"name": "X"}))
        .await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND, "not-found");

    assert_eq!(app.all_members().await, vec![member]);
}

#[tokio::test]
async fn eligibility_shows_status_and_limit_to_services_only() {
    let app = TestApp::start("members_eligibility").await;
    let member = app.member("E-1", "Eva").await;
    let librarian = app.token(Role::Librarian);
    let service = app.token(Role::Service);
    let suspend = json!({"status": "suspended", "loan_limit": 3});
    let (status, _) = app.patch("/api/members/E-1", &librarian, suspend).await;
    assert_eq!(status, StatusCode::OK);

    for key in [member["id"].as_str().unwrap(), "e-1"] {
        let path = format!("/internal/members/{key}/eligibility");
        let (status, body) = app.get(&path, &service).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let expected = json!({
            "member_id": member["id"], "card_number": "E-1",
            "status": "suspended", "loan_limit": 3,
        });
        assert_eq!(body, expected);
    }

    let path = "/internal/members/E-1/eligibility";
    let (status, problem) = app.get(path, &librarian).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "forbidden");
    let admin = app.admin_token().await;
    let (status, problem) = app.get(path, &admin).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "forbidden");
    let (status, problem) = app.send(Method::GET, path, None, None).await;
    assert_problem(status, &problem, StatusCode::UNAUTHORIZED, "unauthorized");
    let unknown = "/internal/members/NOBODY/eligibility";
    let (status, problem) = app.get(unknown, &service).await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND, "not-found");
}

/// Posts `body` to `/api/members` with `key`.
async fn post_keyed(app: &TestApp, token: &str, key: &str, body: &Value) -> reqwest::Response {
    app.request(Method::POST, "/api/members", Some(token))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_repeated_key_replays_and_a_reused_key_is_refused() {
    let app = TestApp::start("members_idem").await;
    let librarian = app.token(Role::Librarian);
    let body = json!({"card_number": "K-1", "name": "Kim", "email": "kim@x.org"});

    let (status, first) = common::answer(post_keyed(&app, &librarian, "k1", &body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let replay = post_keyed(&app, &librarian, "k1", &body).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let (status, replayed) = common::answer(replay).await;
    assert_eq!((status, &replayed), (StatusCode::CREATED, &first));

    let other = json!({"card_number": "K-2", "name": "Kai", "email": "kai@x.org"});
    let (status, problem) = common::answer(post_keyed(&app, &librarian, "k1", &other).await).await;
    assert_problem(
        status,
        &problem,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
    );

    assert_eq!(app.all_members().await, vec![first]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_requests_with_one_key_create_one_member() {
    let app = std::sync::Arc::new(TestApp::start("members_idem_race").await);
    let librarian = app.token(Role::Librarian);
    let body = json!({"card_number": "RACE-1", "name": "Rae", "email": "rae@x.org"});

    let sends: Vec<_> = (0..6)
        .map(|_| {
            let (app, token, body) = (app.clone(), librarian.clone(), body.clone());
            tokio::spawn(async move {
                common::answer(post_keyed(&app, &token, "race", &body).await).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for send in sends {
        answers.push(send.await.unwrap());
    }

    let members = app.all_members().await;
    assert_eq!(members.len(), 1);
    for (status, body) in answers {
        let in_flight = status == StatusCode::CONFLICT
            && body["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("key-in-flight"));
        assert!(
            status == StatusCode::CREATED && body == members[0] || in_flight,
            "{status} {body}"
        );
    }
}
