//! The catalogue over HTTP: search, records, copies, roles, bad input and
//! idempotent writes, on SQLite (default) or PostgreSQL
//! (`LECTERN_TEST_POSTGRES`).

mod common;

use common::{assert_problem, record, spawn};
use lectern_platform::auth::Role;
use serde_json::{json, Value};

async fn seed(app: &common::TestApp) {
    app.create(json!({
        "title": "Révélations",
        "authors": ["Dupont, Élise"],
        "subjects": ["Mystères -- Romans"],
        "copies": [{"barcode": "R-1", "location": "Fiction"}]
    }))
    .await;
    app.create(json!({
        "title": "Les Misérables",
        "authors": ["Hugo, Victor, 1802-1885"],
        "subjects": ["Paris (France) -- Fiction"],
        "year": "1862",
        "language": "fre"
    }))
    .await;
    app.create(json!({
        "title": "Madame Bovary: mœurs de province",
        "authors": ["Flaubert, Gustave"],
        "subjects": ["Normandy (France) -- Fiction"]
    }))
    .await;
    app.create(json!({
        "title": "Pride and Prejudice",
        "authors": ["Austen, Jane"],
        "isbns": ["978-0-14-143951-8"]
    }))
    .await;
    app.create(json!({"title": "50% of a snake_case story"}))
        .await;
    app.create(json!({"title": "Der Prozeß", "authors": ["Kafka, Franz"]}))
        .await;
}

#[tokio::test]
async fn search_ignores_case_and_accents() {
    let app = spawn("search_accents").await;
    seed(&app).await;

    assert_eq!(app.titles("q=revelations").await, ["Révélations"]);
    assert_eq!(app.titles("q=R%C3%89V%C3%89LATIONS").await, ["Révélations"]);
    assert_eq!(app.titles("q=MISERABLES").await, ["Les Misérables"]);
    assert_eq!(
        app.titles("q=moeurs").await,
        ["Madame Bovary: mœurs de province"]
    );
    assert_eq!(app.titles("q=prozess").await, ["Der Prozeß"]);
    assert_eq!(app.titles("q=elise").await, ["Révélations"], "authors");
    assert_eq!(app.titles("q=mysteres").await, ["Révélations"], "subjects");
}

#[tokio::test]
async fn every_word_must_match_somewhere() {
    let app = spawn("search_words").await;
    seed(&app).await;

    assert_eq!(app.titles("q=hugo+paris").await, ["Les Misérables"]);
    assert!(app.titles("q=hugo+bovary").await.is_empty());
    assert_eq!(
        app.titles("q=france").await,
        ["Les Misérables", "Madame Bovary: mœurs de province"],
        "in title order"
    );
}

#[tokio::test]
async fn field_filters_match_one_field() {
    let app = spawn("search_fields").await;
    seed(&app).await;

    assert_eq!(
        app.titles("title=mis%C3%A9rables").await,
        ["Les Misérables"]
    );
    assert_eq!(app.titles("author=HUGO").await, ["Les Misérables"]);
    assert_eq!(app.titles("subject=normandy").await.len(), 1);
    assert!(app.titles("title=hugo").await.is_empty());
    assert!(app.titles("author=paris").await.is_empty());
    assert_eq!(app.titles("q=les&author=victor").await, ["Les Misérables"]);
}

#[tokio::test]
async fn wildcards_in_queries_are_literal() {
    let app = spawn("search_wildcards").await;
    seed(&app).await;

    assert_eq!(app.titles("q=%25").await, ["50% of a snake_case story"]);
    assert_eq!(app.titles("q=_").await, ["50% of a snake_case story"]);
    assert!(app.titles("q=p%25e").await.is_empty());
    assert!(app.titles("q=b_vary").await.is_empty());
}

#[tokio::test]
async fn isbn_10_finds_the_stored_isbn_13() {
    let app = spawn("search_isbn").await;
    seed(&app).await;

    let found = ["Pride and Prejudice"];
    assert_eq!(app.titles("isbn=0-14-143951-3").await, found);
    assert_eq!(app.titles("isbn=0141439513").await, found);
    assert_eq!(app.titles("isbn=978-0-14-143951-8").await, found);
    assert_eq!(app.titles("q=0141439513").await, found);
    assert_eq!(app.titles("q=austen+9780141439518").await, found);
    assert!(app.titles("isbn=9780140444308").await.is_empty());

    let book = &app.search("isbn=0141439513").await["items"][0];
    assert_eq!(
        book["isbns"],
        json!([{"value": "9780141439518", "valid": true}])
    );
    assert_problem(app.get("/api/books?isbn=hugo").await, 400).await;
}

#[tokio::test]
async fn results_are_paginated_in_title_order() {
    let app = spawn("search_pages").await;
    let records: Vec<Value> = (1..=25)
        .rev()
        .map(|i| json!({"title": format!("Volume {i:02}")}))
        .collect();
    app.import(json!(records)).await;

    let first = app.search("q=volume").await;
    assert_eq!(first["total"], 25);
    assert_eq!(first["items"].as_array().unwrap().len(), 20, "default 20");
    assert_eq!(first["items"][0]["title"], "Volume 01");

    let last = app.titles("q=volume&limit=10&offset=20").await;
    assert_eq!(
        last,
        [
            "Volume 21",
            "Volume 22",
            "Volume 23",
            "Volume 24",
            "Volume 25"
        ]
    );
    let past = app.search("q=volume&offset=30").await;
    assert_eq!(past["total"], 25);
    assert_eq!(past["items"], json!([]));
    assert_eq!(
        app.search("limit=100").await["items"]
            .as_array()
            .unwrap()
            .len(),
        25
    );
}

#[tokio::test]
async fn limit_and_offset_out_of_range_are_refused() {
    let app = spawn("search_limits").await;

    for query in [
        "limit=0",
        "limit=101",
        "limit=ten",
        "offset=-1",
        "limit=1.5",
    ] {
        let body =
            assert_problem(app.get(&format!("/api/books?{query}")).await, 400)
                .await;
        assert!(body["detail"]
            .as_str()
            .unwrap()
            .contains(query.split('=').next().unwrap()));
    }
}

#[tokio::test]
async fn a_record_reads_back_with_its_copies() {
    let app = spawn("show_record").await;
    let created = app
        .create(json!({
            "source_id": "test:1",
            "title": "Faust: eine Tragödie",
            "authors": ["Goethe, Johann Wolfgang von"],
            "subjects": ["Faust -- Drama"],
            "isbns": [{"value": "0-14-143951-4", "valid": true}],
            "publisher": "Cotta",
            "year": "1808",
            "material": "book",
            "language": "ger",
            "copies": [
                {"barcode": "F-2", "location": "Drama", "library": "Main"},
                {"barcode": "F-1"}
            ]
        }))
        .await;
    let id = created["id"].as_str().unwrap();

    let book = app.get_json(&format!("/api/books/{id}")).await;
    assert_eq!(book["title"], "Faust: eine Tragödie");
    assert_eq!(book["source_id"], "test:1");
    assert_eq!(
        book["isbns"],
        json!([{"value": "0-14-143951-4", "valid": false}])
    );
    assert_eq!(book["language"], "ger");
    assert_eq!(
        book["copies"],
        json!([
            {"barcode": "F-1", "location": null, "library": null, "loanable": true},
            {"barcode": "F-2", "location": "Drama", "library": "Main",
             "loanable": true}
        ])
    );
    assert_eq!(book["availability"]["total"], 2);
    assert_eq!(created["copies"].as_array().unwrap().len(), 2);

    let listed = &app.search("q=faust").await["items"][0];
    assert_eq!(listed["id"], id);
    assert!(listed.get("copies").is_none(), "search lists no copies");
}

#[tokio::test]
async fn copies_are_added_and_looked_up_by_barcode() {
    let app = spawn("add_copy").await;
    let book = app.create(record("Germinal", &[])).await;
    let id = book["id"].as_str().unwrap();

    let response = app
        .post(
            &format!("/api/books/{id}/copies"),
            &json!({"barcode": " G-1 ", "location": "Stacks", "loanable": false}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let copy: Value = response.json().await.unwrap();
    assert_eq!(copy["barcode"], "G-1");

    let public = app.get_json("/api/copies/G-1").await;
    assert_eq!(
        public,
        json!({"barcode": "G-1", "book_id": id, "title": "Germinal",
               "location": "Stacks", "library": null, "loanable": false})
    );
    assert_problem(app.get("/api/copies/NOPE").await, 404).await;
}

#[tokio::test]
async fn internal_copy_lookup_is_for_services() {
    let app = spawn("internal_copy").await;
    let book = app.create(record("Lalka", &["L-1"])).await;

    let response = app.get_as("/internal/copies/L-1", Role::Service).await;
    assert_eq!(response.status(), 200);
    let copy: Value = response.json().await.unwrap();
    assert_eq!(
        copy,
        json!({"barcode": "L-1", "book_id": book["id"], "title": "Lalka",
               "loanable": true})
    );

    assert_problem(
        app.get_as("/internal/copies/NONE", Role::Service).await,
        404,
    )
    .await;
    assert_problem(app.get("/internal/copies/L-1").await, 401).await;
    assert_problem(
        app.get_as("/internal/copies/L-1", Role::Librarian).await,
        403,
    )
    .await;
    assert_problem(app.get_as("/internal/copies/L-1", Role::Member).await, 403)
        .await;
}

#[tokio::test]
async fn writes_need_a_librarian() {
    let app = spawn("roles").await;
    let book = app.create(record("Niebla", &[])).await;
    let id = book["id"].as_str().unwrap();
    let copies = format!("/api/books/{id}/copies");
    let writes = [
        ("/api/books", record("T", &[])),
        ("/api/books/import", json!({"records": [record("T", &[])]})),
        (copies.as_str(), json!({"barcode": "X-1"})),
    ];

    for (path, body) in &writes {
        assert_problem(app.post_as(path, None, body).await, 401).await;
        assert_problem(app.post_as(path, Some(Role::Member), body).await, 403)
            .await;
        assert_problem(app.post_as(path, Some(Role::Service), body).await, 403)
            .await;
    }
    let bad = app
        .http
        .post(app.url("/api/books"))
        .bearer_auth("not-a-token")
        .json(&record("T", &[]))
        .send()
        .await
        .unwrap();
    assert_problem(bad, 401).await;
    let admin = app
        .post_as("/api/books", Some(Role::Admin), &record("By admin", &[]))
        .await;
    assert_eq!(admin.status(), 201);

    assert_eq!(app.count("books").await, 2, "only the two allowed writes");
    assert_eq!(app.count("copies").await, 0);
}

#[tokio::test]
async fn bad_records_are_refused_and_change_nothing() {
    let app = spawn("bad_records").await;
    app.create(record("Existing", &["E-1"])).await;

    let malformed = app
        .http
        .post(app.url("/api/books"))
        .bearer_auth(app.token(Role::Librarian))
        .header("content-type", "application/json")
        .body("{\"title\": ")
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 400).await;
    let bad = [
        json!({"authors": ["No title"]}),
        json!({"title": "   "}),
        json!({"title": null}),
        json!({"title": "T", "copies": [{"barcode": ""}]}),
        json!({"title": "T", "copies": [{"barcode": "A"}, {"barcode": "A"}]}),
        json!({"title": "T", "material": "spaceship"}),
        json!({"title": "T", "authors": "not a list"}),
    ];
    for body in &bad {
        assert_problem(app.post("/api/books", body).await, 400).await;
    }
    let taken = app
        .post("/api/books", &record("Other", &["N-1", "E-1"]))
        .await;
    let problem = assert_problem(taken, 409).await;
    assert!(problem["detail"].as_str().unwrap().contains("E-1"));
    let same_key = app.post("/api/books", &record("EXISTING", &[])).await;
    assert_problem(same_key, 409).await;

    assert_eq!(app.count("books").await, 1);
    assert_eq!(app.count("copies").await, 1);
    assert!(app.titles("q=other").await.is_empty());
}

#[tokio::test]
async fn bad_copies_are_refused_and_change_nothing() {
    let app = spawn("bad_copies").await;
    let book = app.create(record("Germinal", &["G-1"])).await;
    let path = format!("/api/books/{}/copies", book["id"].as_str().unwrap());

    assert_problem(app.post(&path, &json!({"barcode": "  "})).await, 400).await;
    assert_problem(app.post(&path, &json!({"location": "x"})).await, 400).await;
    assert_problem(app.post(&path, &json!({"barcode": "G-1"})).await, 409)
        .await;
    let unknown = "/api/books/0190b1d6-0000-7000-8000-000000000000/copies";
    assert_problem(app.post(unknown, &json!({"barcode": "Z-1"})).await, 404)
        .await;
    assert_problem(app.get("/api/books/no-such-id").await, 404).await;

    assert_eq!(app.count("copies").await, 1);
    assert_problem(app.get("/api/copies/Z-1").await, 404).await;
}

#[tokio::test]
async fn a_repeated_idempotency_key_replays_the_first_answer() {
    let app = spawn("idempotency").await;
    let send = |body: Value| {
        app.http
            .post(app.url("/api/books"))
            .bearer_auth(app.token(Role::Librarian))
            .header("idempotency-key", "create-1")
            .json(&body)
            .send()
    };

    let first = send(record("Once", &["O-1"])).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send(record("Once", &["O-1"])).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);

    let other = send(record("Twice", &[])).await.unwrap();
    assert_problem(other, 422).await;
    assert_eq!(app.count("books").await, 1);
    assert_eq!(app.count("copies").await, 1);

    let colleague = app.keys.issue("colleague", Role::Librarian, HOUR);
    let theirs = app
        .http
        .post(app.url("/api/books"))
        .bearer_auth(colleague)
        .header("idempotency-key", "create-1")
        .json(&record("Theirs", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 201, "keys are per caller");
    assert_eq!(app.count("books").await, 2);
}

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

#[tokio::test]
async fn health_checks_the_database() {
    let app = spawn("health").await;

    let health = app.get_json("/health").await;
    assert_eq!(health["status"], "UP");
    assert_eq!(health["checks"]["database"]["status"], "UP");
    assert!(health["checks"].get("borrowing-service").is_none());
    assert_eq!(app.get("/health/ready").await.status(), 200);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("book_import_records"));
}
