//! `lectern import` (the real binary) against a mock gateway: a small
//! axum server on port 0 standing in for Lectern, scripted to fail in the
//! ways the importer must survive. The real system is exercised in
//! `e2e.rs`; here the mock lets a test see every call and its headers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_lectern");

fn shared_marc(name: &str) -> PathBuf {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/marc");
    Path::new(dir).join(name)
}

/// How the mock answers imports.
#[derive(Clone, Copy, Default)]
struct Script {
    /// 503s (with `Retry-After: 0`) before a key is accepted.
    unavailable_per_key: u32,
    /// Answer every import with this status instead.
    always: Option<u16>,
    /// Refuse the first import call with 401.
    expire_first_token: bool,
}

/// One import call the mock saw.
#[derive(Debug, Clone)]
struct Call {
    key: String,
    records: usize,
    authorization: String,
    content_type: String,
}

#[derive(Default)]
struct Seen {
    sign_ins: u32,
    calls: Vec<Call>,
    tries_per_key: HashMap<String, u32>,
}

#[derive(Clone)]
struct Mock {
    script: Script,
    seen: Arc<Mutex<Seen>>,
}

async fn login(State(mock): State<Mock>, Json(body): Json<Value>) -> Response {
    let mut seen = mock.seen.lock().unwrap();
    seen.sign_ins += 1;
    if body["username"] == "admin" && body["password"] == "right" {
        let token = format!("token-{}", seen.sign_ins);
        let answer = json!({"token": token, "role": "admin", "expires_at": "x"});
        Json(answer).into_response()
    } else {
        problem(401, "wrong username or password")
    }
}

async fn import(mock: State<Mock>, headers: HeaderMap, body: Json<Value>) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let records = body.0["records"].as_array().cloned().unwrap_or_default();
    let call = Call {
        key: header("idempotency-key"),
        records: records.len(),
        authorization: header("authorization"),
        content_type: header("content-type"),
    };
    let mut seen = mock.seen.lock().unwrap();
    let first_call = seen.calls.is_empty();
    seen.calls.push(call.clone());
    let tries = seen.tries_per_key.entry(call.key).or_default();
    *tries += 1;

    if let Some(status) = mock.script.always {
        return problem(status, "records[0]: title must not be empty");
    }
    if mock.script.expire_first_token && first_call {
        return problem(401, "the token is invalid or expired");
    }
    if *tries <= mock.script.unavailable_per_key {
        let mut response = problem(503, "book-service is busy");
        response
            .headers_mut()
            .insert("retry-after", "0".parse().unwrap());
        return response;
    }
    let copies: usize = records
        .iter()
        .map(|r| r["copies"].as_array().map_or(0, Vec::len))
        .sum();
    let counts = json!({"imported": records.len(), "updated": 0, "copies": copies});
    Json(counts).into_response()
}

fn problem(status: u16, detail: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    let body = json!({"type": "https://lectern.dev/problems/x", "title": "t",
                      "status": status.as_u16(), "detail": detail});
    (status, Json(body)).into_response()
}

/// Starts the mock gateway; answers its address and what it sees.
async fn mock_gateway(script: Script) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mock = Mock {
        script,
        seen: seen.clone(),
    };
    let app = Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/books/import", post(import))
        .with_state(mock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, seen)
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `lectern import` with `args` (bounded in time; killed if late).
async fn run_import(args: &[&str], password: Option<&str>) -> Run {
    let mut command = tokio::process::Command::new(BIN);
    command
        .arg("import")
        .args(args)
        .env_remove("LECTERN_PASSWORD")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(password) = password {
        command.env("LECTERN_PASSWORD", password);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("lectern import finishes within 60 s")
        .expect("lectern import runs");

    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn summary_value(run: &Run, label: &str) -> u64 {
    run.stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{label}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` in:\n{}\n{}", run.stdout, run.stderr))
}

fn url(address: SocketAddr) -> String {
    format!("http://{address}")
}

#[tokio::test]
async fn retried_batches_keep_their_key_and_the_summary_adds_up() {
    let script = Script {
        unavailable_per_key: 2,
        ..Script::default()
    };
    let (address, seen) = mock_gateway(script).await;
    let file = shared_marc("jazz_1k.mrc");

    let run = run_import(
        &["--url", &url(address), file.to_str().unwrap()],
        Some("right"),
    )
    .await;

    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(summary_value(&run, "imported"), 1000);
    assert_eq!(summary_value(&run, "copies"), 1238);
    assert_eq!(summary_value(&run, "failed batches"), 0);
    assert!(run.stderr.contains("trying again"), "{}", run.stderr);

    let seen = seen.lock().unwrap();
    assert_eq!(seen.sign_ins, 1);
    // Two batches of 500, each tried three times with one key.
    assert_eq!(seen.calls.len(), 6, "{:?}", seen.calls);
    assert_eq!(seen.tries_per_key.len(), 2);
    assert!(seen.tries_per_key.values().all(|&n| n == 3));
    for call in &seen.calls {
        assert_eq!(call.records, 500);
        assert_eq!(call.authorization, "Bearer token-1");
        assert_eq!(call.content_type, "application/json");
        assert!(call.key.starts_with("lectern-import-"), "{}", call.key);
    }
}

#[tokio::test]
async fn another_run_of_the_same_file_uses_new_keys() {
    let (address, seen) = mock_gateway(Script::default()).await;
    let file = shared_marc("lul_fre_100.mrc");
    let args = ["--url", &url(address), file.to_str().unwrap()];

    let first = run_import(&args, Some("right")).await;
    let second = run_import(&args, Some("right")).await;

    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.calls.len(), 2);
    assert_ne!(seen.calls[0].key, seen.calls[1].key);
}

#[tokio::test]
async fn damaged_records_are_reported_and_the_rest_imports() {
    let (address, seen) = mock_gateway(Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("admin-password");
    std::fs::write(&password_file, "right\n").unwrap();
    let file = shared_marc("pymarc-bad_records.mrc");

    let run = run_import(
        &[
            "--url",
            &url(address),
            "--password-file",
            password_file.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        None,
    )
    .await;

    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let name = file.display().to_string();
    let expected = format!("{name}: skipped record 1 at byte 127: bad base address");
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert!(run.stderr.contains("skipped record 5 at byte 637"));
    assert_eq!(summary_value(&run, "skipped"), 6);
    assert_eq!(summary_value(&run, "imported"), 2);
    assert_eq!(seen.lock().unwrap().calls[0].records, 2);
}

#[tokio::test]
async fn a_refused_batch_fails_the_run_with_exit_1() {
    let script = Script {
        always: Some(400),
        ..Script::default()
    };
    let (address, seen) = mock_gateway(script).await;
    let file = shared_marc("lul_fre_100.mrc");

    let run = run_import(
        &["--url", &url(address), file.to_str().unwrap()],
        Some("right"),
    )
    .await;

    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(summary_value(&run, "failed batches"), 1);
    assert_eq!(summary_value(&run, "imported"), 0);
    assert!(
        run.stderr.contains("title must not be empty"),
        "{}",
        run.stderr
    );
    assert_eq!(seen.lock().unwrap().calls.len(), 1, "a 400 is not retried");
}

#[tokio::test]
async fn a_gateway_that_stays_unavailable_gets_five_tries() {
    let script = Script {
        always: Some(503),
        ..Script::default()
    };
    let (address, seen) = mock_gateway(script).await;
    let file = shared_marc("pymarc-bad_records.mrc");

    let run = run_import(
        &["--url", &url(address), file.to_str().unwrap()],
        Some("right"),
    )
    .await;

    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(seen.lock().unwrap().calls.len(), 5);
    assert!(run.stderr.contains("was not stored"), "{}", run.stderr);
}

#[tokio::test]
async fn an_expired_token_is_renewed_once() {
    let script = Script {
        expire_first_token: true,
        ..Script::default()
    };
    let (address, seen) = mock_gateway(script).await;
    let file = shared_marc("lul_fre_100.mrc");

    let run = run_import(
        &["--url", &url(address), file.to_str().unwrap()],
        Some("right"),
    )
    .await;

    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.sign_ins, 2);
    assert_eq!(seen.calls.len(), 2);
    assert_eq!(seen.calls[1].authorization, "Bearer token-2");
    assert_eq!(seen.calls[0].key, seen.calls[1].key);
}

#[tokio::test]
async fn a_wrong_password_exits_1_and_sends_nothing() {
    let (address, seen) = mock_gateway(Script::default()).await;
    let file = shared_marc("lul_fre_100.mrc");

    let run = run_import(
        &["--url", &url(address), file.to_str().unwrap()],
        Some("wrong"),
    )
    .await;

    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot sign in as admin"),
        "{}",
        run.stderr
    );
    assert!(seen.lock().unwrap().calls.is_empty());
}

#[tokio::test]
async fn no_password_at_all_exits_2() {
    let run = run_import(
        &[
            "--password-file",
            "/nonexistent/admin-password",
            "--url",
            "http://127.0.0.1:9",
            "x.mrc",
        ],
        None,
    )
    .await;

    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("LECTERN_PASSWORD"), "{}", run.stderr);
}

#[tokio::test]
async fn a_missing_file_fails_the_run_but_not_the_others() {
    let (address, seen) = mock_gateway(Script::default()).await;
    let file = shared_marc("lul_fre_100.mrc");

    let run = run_import(
        &[
            "--url",
            &url(address),
            "/nonexistent/gone.mrc",
            file.to_str().unwrap(),
        ],
        Some("right"),
    )
    .await;

    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("/nonexistent/gone.mrc: cannot read it"));
    assert_eq!(summary_value(&run, "imported"), 100);
    assert_eq!(seen.lock().unwrap().calls.len(), 1);
}
