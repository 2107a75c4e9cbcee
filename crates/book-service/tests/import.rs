//! Imports over HTTP: upserts by record key, copies by barcode, body
//! limits, the sample catalogue, and a real MARC file, on SQLite
//! (default) or PostgreSQL (`LECTERN_TEST_POSTGRES`).

mod common;

use std::time::Instant;

use common::{assert_problem, record, spawn, spawn_on, test_db, TestApp};
use lectern_marc::bib;
use lectern_marc::iso2709::Iso2709Reader;
use lectern_platform::auth::Role;
use serde_json::{json, Value};

fn keyed(source_id: &str, title: &str, barcodes: &[&str]) -> Value {
    let mut r = record(title, barcodes);
    r["source_id"] = json!(source_id);
    r
}

#[tokio::test]
async fn importing_twice_updates_and_never_duplicates() {
    let app = spawn("import_twice").await;
    let records = json!([
        keyed("src:1", "Germinal", &["I-1", "I-2"]),
        {"title": "Pride and Prejudice", "isbns": ["0141439513"],
         "copies": [{"barcode": "I-3"}]},
        {"title": "Die Verwandlung", "authors": ["Kafka, Franz"], "year": "1915"},
    ]);

    let first = app.import(records.clone()).await;
    assert_eq!(first, json!({"imported": 3, "updated": 0, "copies": 3}));
    let second = app.import(records).await;
    assert_eq!(second, json!({"imported": 0, "updated": 3, "copies": 3}));

    assert_eq!(app.count("books").await, 3);
    assert_eq!(app.count("copies").await, 3);
    assert_eq!(app.search("").await["total"], 3);
}

#[tokio::test]
async fn records_match_by_source_id_then_isbn_then_content() {
    let app = spawn("import_keys").await;
    app.import(json!([
        keyed("src:1", "Old title", &[]),
        {"title": "Pride", "isbns": ["978-0-14-143951-8"]},
        {"title": "Die Verwandlung", "authors": ["Kafka, Franz"], "year": "1915"},
    ]))
    .await;

    let changed = app
        .import(json!([
            keyed("src:1", "New title", &[]),
            {"title": "Pride and Prejudice", "isbns": ["0-14-143951-3"]},
            {"title": "DIE VERWANDLUNG", "authors": ["KAFKA, Franz"], "year": "1915"},
            {"title": "Die Verwandlung", "authors": ["Kafka, Franz"], "year": "1916"},
        ]))
        .await;

    assert_eq!(changed, json!({"imported": 1, "updated": 3, "copies": 0}));
    assert_eq!(app.count("books").await, 4);
    assert_eq!(app.titles("q=title").await, ["New title"]);
    assert_eq!(
        app.titles("isbn=9780141439518").await,
        ["Pride and Prejudice"]
    );
}

#[tokio::test]
async fn copies_move_to_the_record_that_names_their_barcode() {
    let app = spawn("import_move").await;
    app.import(json!([keyed("a", "First", &["M-1", "M-2"])]))
        .await;
    let first = app.search("q=first").await["items"][0]["id"].clone();

    let moved = app
        .import(json!([{
            "source_id": "b", "title": "Second",
            "copies": [{"barcode": "M-2", "location": "New shelf"}]
        }]))
        .await;
    assert_eq!(moved, json!({"imported": 1, "updated": 0, "copies": 1}));

    let second = app.search("q=second").await["items"][0]["id"].clone();
    let copy = app.get_json("/api/copies/M-2").await;
    assert_eq!(copy["book_id"], second);
    assert_eq!(copy["location"], "New shelf");
    let first = app
        .get_json(&format!("/api/books/{}", first.as_str().unwrap()))
        .await;
    assert_eq!(first["copies"].as_array().unwrap().len(), 1);
    assert_eq!(first["copies"][0]["barcode"], "M-1");
    assert_eq!(app.count("copies").await, 2);
}

#[tokio::test]
async fn an_import_keeps_a_copy_not_loanable() {
    let app = spawn("import_loanable").await;
    app.import(json!([keyed("a", "First", &["K-1"])])).await;
    let id = app.search("q=first").await["items"][0]["id"].clone();
    let path = format!("/api/books/{}/copies", id.as_str().unwrap());
    app.post(&path, &json!({"barcode": "K-2", "loanable": false}))
        .await;

    app.import(json!([keyed("a", "First", &["K-1", "K-2"])]))
        .await;

    assert_eq!(app.get_json("/api/copies/K-2").await["loanable"], false);
}

#[tokio::test]
async fn one_bad_record_refuses_the_whole_batch() {
    let app = spawn("import_bad").await;
    app.import(json!([keyed("a", "Kept", &["B-1"])])).await;

    let batches = [
        json!({"records": [keyed("b", "Good", &["B-2"]), {"title": ""}]}),
        json!({"records": [
            keyed("b", "Good", &["B-2"]),
            keyed("c", "Bad", &[""])
        ]}),
        json!({"records": [{"source_id": "d"}]}),
        json!({"records": "none"}),
        json!({}),
    ];
    for body in &batches {
        let problem =
            assert_problem(app.post("/api/books/import", body).await, 400)
                .await;
        assert!(!problem["detail"].as_str().unwrap().is_empty());
    }
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"title": format!("T{i}")}))
        .collect();
    let body = json!({ "records": too_many });
    assert_problem(app.post("/api/books/import", &body).await, 400).await;

    assert_eq!(app.count("books").await, 1);
    assert_eq!(app.count("copies").await, 1);
    assert_eq!(app.get_json("/api/copies/B-1").await["title"], "Kept");
}

#[tokio::test]
async fn imports_take_bodies_up_to_16_mib() {
    let app = spawn("import_limit").await;
    // 20 subjects of 500 characters: as large as a record may be.
    let padding: Vec<String> = (0..20).map(|_| "x".repeat(500)).collect();
    let big: Vec<Value> = (0..300)
        .map(|i| json!({"title": format!("Big {i}"), "subjects": padding}))
        .collect();
    let body = json!({ "records": big });
    assert!(serde_json::to_vec(&body).unwrap().len() > 2 * 1024 * 1024);

    let counts = app.import(body["records"].clone()).await;
    assert_eq!(counts["imported"], 300);

    let huge = "y".repeat(17 * 1024 * 1024);
    let over = json!({"records": [{"title": "Huge", "subjects": [huge]}]});
    assert_problem(app.post("/api/books/import", &over).await, 413).await;
    let record_body =
        json!({"title": "Big", "subjects": ["z".repeat(2 * 1024 * 1024)]});
    assert_problem(app.post("/api/books", &record_body).await, 413).await;
    assert_eq!(app.count("books").await, 300);
}

#[tokio::test]
async fn an_import_with_a_key_runs_once() {
    let app = spawn("import_idempotent").await;
    let send = || {
        app.http
            .post(app.url("/api/books/import"))
            .bearer_auth(app.token(Role::Librarian))
            .header("idempotency-key", "batch-7")
            .json(&json!({"records": [keyed("a", "Once", &["O-1"])]}))
            .send()
    };

    let first: Value = send().await.unwrap().json().await.unwrap();
    let replay = send().await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay: Value = replay.json().await.unwrap();

    assert_eq!(first, json!({"imported": 1, "updated": 0, "copies": 1}));
    assert_eq!(replay, first, "the first answer, not an update");
}

#[tokio::test]
async fn the_sample_catalogue_loads_once_when_empty() {
    let db = test_db("sample_once").await;
    let first = spawn_on(db.clone(), |c| c.sample_catalogue = true).await;
    let books = first.count("books").await;
    let copies = first.count("copies").await;
    assert!(books >= 25, "{books} sample records");
    assert!(copies >= books);

    assert_eq!(first.titles("q=miserables").await, ["Les Misérables"]);
    assert_eq!(
        first.titles("q=monte-cristo").await,
        ["Le Comte de Monte-Cristo"]
    );
    let scores = first.search("q=scores&limit=100").await;
    assert!(scores["total"].as_i64().unwrap() >= 2);

    let again = spawn_on(db.clone(), |c| c.sample_catalogue = true).await;
    assert_eq!(again.count("books").await, books);
    assert_eq!(again.count("copies").await, copies);
}

#[tokio::test]
async fn two_replicas_loading_the_sample_at_once_load_it_once() {
    let db = test_db("sample_race").await;
    // Migrate first, as the supervisor's first replica would.
    spawn_on(db.clone(), |_| {}).await;

    let (a, b) = tokio::join!(
        spawn_on(db.clone(), |c| c.sample_catalogue = true),
        spawn_on(db.clone(), |c| c.sample_catalogue = true),
    );

    let expected = sample_len(&a).await;
    assert_eq!(a.count("books").await, expected);
    assert_eq!(b.count("books").await, expected);
}

#[tokio::test]
async fn the_sample_is_not_loaded_into_a_catalogue_with_records() {
    let db = test_db("sample_skip").await;
    let app = spawn_on(db.clone(), |_| {}).await;
    app.create(record("Mine", &[])).await;

    let again = spawn_on(db, |c| c.sample_catalogue = true).await;
    assert_eq!(again.count("books").await, 1);
}

async fn sample_len(app: &TestApp) -> i64 {
    app.search("limit=1").await["total"].as_i64().unwrap()
}

/// A real MARC-8 file from shared test data, read in place.
const JAZZ: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/marc/jazz_1k.mrc"
);

#[tokio::test]
async fn a_real_marc_file_imports_through_the_route() {
    let Ok(file) = std::fs::File::open(JAZZ) else {
        let _ = lectern_platform::testing::server_available(
            "shared/data/marc/jazz_1k.mrc",
            false,
        );
        return;
    };
    let records: Vec<bib::BibRecord> = Iso2709Reader::from_reader(file)
        .filter_map(Result::ok)
        .map(|r| bib::from_record(&r))
        .collect();
    assert_eq!(records.len(), 1000);
    let mut barcodes: Vec<&str> = records
        .iter()
        .flat_map(|r| r.copies.iter().map(|c| c.barcode.as_str()))
        .collect();
    barcodes.sort_unstable();
    barcodes.dedup();

    let app = spawn("jazz").await;
    let start = Instant::now();
    for batch in records.chunks(250) {
        app.import(json!(batch)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "jazz_1k: {} records in {seconds:.3} s, {:.0} records/s",
        records.len(),
        records.len() as f64 / seconds
    );

    assert_eq!(app.count("books").await, 1000);
    assert_eq!(app.count("copies").await, barcodes.len() as i64);
    let again = app.import(json!(records[..250])).await;
    assert_eq!(again["imported"], 0);
    assert_eq!(app.count("books").await, 1000);
}

#[tokio::test]
async fn import_throughput_is_printed() {
    let app = spawn("throughput").await;
    let batches: Vec<Vec<Value>> = (0..5)
        .map(|b| {
            (0..1000)
                .map(|i| {
                    let n = b * 1000 + i;
                    json!({
                        "source_id": format!("bulk:{n}"),
                        "title": format!("Étude nº {n}"),
                        "authors": ["Chopin, Frédéric"],
                        "subjects": ["Piano music"],
                        "copies": [{
                            "barcode": format!("T-{n}"),
                            "location": "Stacks"
                        }]
                    })
                })
                .collect()
        })
        .collect();

    let start = Instant::now();
    for batch in &batches {
        app.import(json!(batch)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "bulk: 5000 records in {seconds:.3} s, {:.0} records/s",
        5000.0 / seconds
    );

    assert_eq!(app.count("books").await, 5000);
    assert_eq!(app.count("copies").await, 5000);
}
