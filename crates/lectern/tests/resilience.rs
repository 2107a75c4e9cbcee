//! Resilience end to end, with real processes: `lectern serve` runs
//! user-service, book-service and borrowing-service as separate children
//! on free loopback ports with temporary SQLite files. Not `lectern up`:
//! its supervisor would restart what these tests kill. The tests talk to
//! each service directly, with tokens signed from the shared secret, and
//! read borrowing-service's `/metrics`.
//!
//! - user-service killed: members seen recently still borrow (the answer
//!   says it used a cached eligibility), others get 503 with
//!   `Retry-After`;
//! - book-service killed: within one breaker window the breaker shows
//!   open on `/metrics`, and checkouts of unknown barcodes fail fast
//!   (well under the call timeout) without a call; a known copy is lent
//!   from the cached details;
//! - book-service back on the same port: after the reset timeout one
//!   trial call closes the breaker.
//!
//! Every child is killed by its pid when its guard is dropped, also when
//! a test fails.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use lectern_platform::auth::{Role, TokenKeys};
use reqwest::StatusCode;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_lectern");
const SECRET: &str = "resilience-test-secret-0123456789";

/// borrowing-service's call timeout: generous, so that "fast" means the
/// breaker, not a short timeout.
const CALL_TIMEOUT: Duration = Duration::from_millis(3000);

/// How long the breaker stays open before a trial call (shortened from
/// the default 30 s).
const BREAKER_RESET: Duration = Duration::from_millis(2000);

/// The breaker's window (the default).
const BREAKER_WINDOW: Duration = Duration::from_secs(10);

/// Longest wait for a service to answer `/health/ready`.
const READY_WAIT: Duration = Duration::from_secs(90);

/// Lines a child printed, kept for failure messages.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<Vec<String>>>);

impl Output {
    fn collect(&self, stream: impl Read + Send + 'static) {
        let lines = self.0.clone();
        thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
    }

    fn tail(&self, n: usize) -> String {
        let lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let start = lines.len().saturating_sub(n);
        lines[start..].join("\n")
    }
}

/// A running `lectern serve`; killed (SIGKILL, by pid) when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    output: Output,
}

impl Proc {
    /// SIGKILL, and waits until it is gone.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Three services on free ports, each a child process.
struct System {
    dir: tempfile::TempDir,
    user_port: u16,
    book_port: u16,
    borrowing_port: u16,
    procs: Vec<Proc>,
    http: reqwest::Client,
    librarian: String,
}

impl System {
    async fn start() -> Self {
        let keys = TokenKeys::from_secret(SECRET.as_bytes());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .expect("an HTTP client");
        let mut system = Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
            user_port: free_port(),
            book_port: free_port(),
            borrowing_port: free_port(),
            procs: Vec::new(),
            http,
            librarian: keys.issue(
                "resilience-test",
                Role::Librarian,
                Duration::from_secs(3600),
            ),
        };

        system.spawn("user-service").await;
        system.spawn("book-service").await;
        system.spawn("borrowing-service").await;
        system
    }

    fn port(&self, service: &str) -> u16 {
        match service {
            "user-service" => self.user_port,
            "book-service" => self.book_port,
            _ => self.borrowing_port,
        }
    }

    /// Starts `service` on its port and waits until it is ready.
    async fn spawn(&mut self, service: &'static str) {
        let port = self.port(service);
        let dir = self.dir.path();
        let database = format!("sqlite://{}/{service}.db", dir.display());
        let mut command = Command::new(BIN);
        command
            .args(["serve", service])
            .env_clear()
            .env("LECTERN_BIND", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", database)
            .env("LECTERN_TOKEN_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match service {
            "user-service" => {
                command
                    .env("LECTERN_ADMIN_PASSWORD", "resilience-admin-0123")
                    .env("LECTERN_DATA_DIR", dir);
            }
            "book-service" => {
                command
                    .env("LECTERN_SAMPLE_CATALOGUE", "true")
                    .env("BORROWING_SERVICE_URL", url(self.borrowing_port));
            }
            _ => {
                let timeout = CALL_TIMEOUT.as_millis().to_string();
                let reset = BREAKER_RESET.as_millis().to_string();
                command
                    .env("BOOK_SERVICE_URL", url(self.book_port))
                    .env("USER_SERVICE_URL", url(self.user_port))
                    .env("LECTERN_CALL_TIMEOUT_MS", timeout)
                    .env("LECTERN_BREAKER_RESET_MS", reset);
            }
        }

        let mut child = command.spawn().expect("lectern serve starts");
        let output = Output::default();
        output.collect(child.stdout.take().expect("piped stdout"));
        output.collect(child.stderr.take().expect("piped stderr"));
        self.procs.push(Proc {
            name: service,
            child,
            output,
        });
        self.wait_ready(service).await;
    }

    async fn wait_ready(&self, service: &str) {
        let ready = format!("{}/health/ready", url(self.port(service)));
        let deadline = Instant::now() + READY_WAIT;

        while Instant::now() < deadline {
            if let Ok(response) = self.http.get(&ready).send().await {
                if response.status() == StatusCode::OK {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.fail(&format!("{service} not ready within {READY_WAIT:?}"));
    }

    /// SIGKILL `service`, by its pid.
    fn kill(&mut self, service: &str) {
        let index = self
            .procs
            .iter()
            .position(|p| p.name == service)
            .unwrap_or_else(|| panic!("{service} is not running"));
        self.procs.remove(index).kill();
    }

    fn fail(&self, message: &str) -> ! {
        let logs: Vec<String> = self
            .procs
            .iter()
            .map(|p| format!("--- {} ---\n{}", p.name, p.output.tail(40)))
            .collect();
        panic!("{message}\n{}", logs.join("\n"));
    }

    /// A new member; its id.
    async fn member(&self, card: &str) -> String {
        let body = json!({
            "card_number": card,
            "name": format!("Member {card}"),
            "email": format!("{}@example.org", card.to_lowercase()),
        });
        let path = format!("{}/api/members", url(self.user_port));
        let response = self
            .http
            .post(path)
            .bearer_auth(&self.librarian)
            .json(&body)
            .send()
            .await
            .expect("create a member");
        let status = response.status();
        let member: Value = response.json().await.unwrap_or(Value::Null);
        if status != StatusCode::CREATED {
            self.fail(&format!("member not created: {status} {member}"));
        }
        member["id"].as_str().expect("an id").to_owned()
    }

    /// `POST /api/loans` on borrowing-service, and how long it took.
    async fn checkout(&self, member: &str, barcode: &str) -> (reqwest::Response, Duration) {
        let path = format!("{}/api/loans", url(self.borrowing_port));
        let body = json!({ "member": member, "barcode": barcode });
        let start = Instant::now();
        let response = self
            .http
            .post(path)
            .bearer_auth(&self.librarian)
            .json(&body)
            .send()
            .await
            .expect("borrowing-service answers");
        (response, start.elapsed())
    }

    async fn return_loan(&self, response: reqwest::Response) {
        let loan: Value = response.json().await.expect("a loan");
        let id = loan["id"].as_str().expect("a loan id");
        let path = format!("{}/api/loans/{id}/return", url(self.borrowing_port));
        let returned = self
            .http
            .post(path)
            .bearer_auth(&self.librarian)
            .send()
            .await
            .expect("return");
        assert_eq!(returned.status(), StatusCode::OK);
    }

    async fn metrics(&self) -> String {
        let path = format!("{}/metrics", url(self.borrowing_port));
        let response = self.http.get(path).send().await.expect("metrics");
        response.text().await.expect("metrics text")
    }

    /// Whether the book-service breaker reads `state` on `/metrics`.
    async fn book_breaker_is(&self, state: &str) -> bool {
        let line =
            format!(r#"lectern_breaker_state{{dependency="book-service",state="{state}"}} 1"#);
        self.metrics().await.lines().any(|l| l == line)
    }

    /// A counter of book-service's breaker calls, by outcome.
    async fn book_calls(&self, outcome: &str) -> u64 {
        let prefix = format!(
            r#"lectern_breaker_calls_total{{dependency="book-service",outcome="{outcome}"}} "#
        );
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| self.fail(&format!("no {prefix} in:\n{text}")))
    }
}

fn header(response: &reqwest::Response, name: &str) -> String {
    let values: Vec<&str> = response
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    values.join(" | ")
}

#[tokio::test]
async fn checkouts_for_members_seen_recently_survive_user_service_dying() {
    let mut system = System::start().await;
    let seen = system.member("RES-SEEN-1").await;
    let unseen = system.member("RES-UNSEEN-1").await;
    let (fresh, _) = system.checkout(&seen, "LEC-000001").await;
    assert_eq!(fresh.status(), StatusCode::CREATED);
    assert_eq!(header(&fresh, "warning"), "");

    system.kill("user-service");

    let (stale, took) = system.checkout(&seen, "LEC-000002").await;
    eprintln!("checkout of a member seen recently, user-service dead: {took:?}");
    if stale.status() != StatusCode::CREATED {
        system.fail(&format!("seen member refused: {}", stale.status()));
    }
    assert!(
        header(&stale, "warning").contains("stale: member eligibility"),
        "{:?}",
        stale.headers()
    );
    assert!(!header(&stale, "x-lectern-stale-age").is_empty());
    // Also by card number: the answer was kept under both.
    let (by_card, _) = system.checkout("RES-SEEN-1", "LEC-000003").await;
    assert_eq!(by_card.status(), StatusCode::CREATED);

    let (refused, took) = system.checkout(&unseen, "LEC-000004").await;
    eprintln!("checkout of a member never seen, user-service dead: {took:?}");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    let problem: Value = refused.json().await.expect("a problem document");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("user-service"), "{problem}");
}

#[tokio::test]
async fn the_book_service_breaker_opens_fails_fast_and_closes_again() {
    let mut system = System::start().await;
    let member = system.member("RES-BOOK-1").await;
    let (loan, _) = system.checkout(&member, "LEC-000001").await;
    assert_eq!(loan.status(), StatusCode::CREATED);
    system.return_loan(loan).await;
    assert!(system.book_breaker_is("closed").await);

    // 1. book-service dies; checkouts of a barcode never seen fail with
    // 503 until the breaker opens, within one window.
    system.kill("book-service");
    let killed = Instant::now();
    let mut tries = 0;
    while !system.book_breaker_is("open").await {
        tries += 1;
        if tries > 20 || killed.elapsed() > BREAKER_WINDOW {
            system.fail("the book-service breaker did not open within one window");
        }
        let (failed, _) = system.checkout(&member, "NEVER-SEEN-1").await;
        assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(failed.headers().contains_key("retry-after"));
    }
    let opened_after = killed.elapsed();
    eprintln!("breaker open after {tries} checkouts, {opened_after:?}");

    // 2. Open: refused without a call, well under the call timeout.
    let rejected = system.book_calls("rejected").await;
    let (fast, took) = system.checkout(&member, "NEVER-SEEN-2").await;
    eprintln!("503 with the breaker open took {took:?}");
    assert_eq!(fast.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(fast.headers().contains_key("retry-after"));
    assert!(took < CALL_TIMEOUT / 2, "{took:?}");
    let problem: Value = fast.json().await.expect("a problem document");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("circuit open"),
        "{problem}"
    );
    assert!(system.book_calls("rejected").await > rejected);

    // A copy seen before is lent from its cached details, marked stale.
    let (stale, _) = system.checkout(&member, "LEC-000001").await;
    assert_eq!(stale.status(), StatusCode::CREATED);
    assert!(header(&stale, "warning").contains("stale: copy details"));

    // 3. book-service comes back on its port; after the reset timeout one
    // trial call closes the breaker.
    system.spawn("book-service").await;
    let back = Instant::now();
    let lent = loop {
        let (answer, _) = system.checkout(&member, "LEC-000002").await;
        if answer.status() == StatusCode::CREATED {
            break answer;
        }
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        if back.elapsed() > BREAKER_RESET * 5 {
            system.fail("the breaker did not let a trial call through");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("first checkout through after {:?}", back.elapsed());
    assert_eq!(header(&lent, "warning"), "", "a live answer");
    assert!(
        system.book_breaker_is("closed").await,
        "{}",
        system.metrics().await
    );
}
