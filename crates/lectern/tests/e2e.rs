//! End to end: the real `lectern` binary runs the whole system with
//! `lectern up` on a free port and a temporary data directory, and the
//! test talks to it through the gateway as a client would.
//!
//! One test, in order: the sample catalogue is searchable; staff sign in,
//! a member borrows, returns and renews; `lectern import` loads and
//! reloads real MARC files; a book-service replica is killed with SIGKILL
//! under a stream of reads, which all succeed, and comes back; SIGTERM
//! stops everything and exits 0. Every process the test starts is ended
//! by pid, also when it fails (see [`System`]'s `Drop`).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use reqwest::StatusCode;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_lectern");
const ADMIN_PASSWORD: &str = "e2e-admin-password-7Qx";
const LIBRARIAN_PASSWORD: &str = "e2e-librarian-password-3Kd";

/// Longest wait for the ready line.
const READY_WAIT: Duration = Duration::from_secs(90);

fn shared_marc(name: &str) -> PathBuf {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/marc");
    Path::new(dir).join(name)
}

/// Where a reader thread forwards the lines it reads.
type Lines = mpsc::Sender<String>;

/// Lines a child printed, kept for failure messages.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<Vec<String>>>);

impl Output {
    fn push(&self, line: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    fn tail(&self, n: usize) -> String {
        let lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let start = lines.len().saturating_sub(n);
        lines[start..].join("\n")
    }

    /// Reads `stream` line by line on a thread; each line goes to the
    /// output and to `lines` when given.
    fn collect(&self, stream: impl Read + Send + 'static, lines: Option<Lines>) {
        let output = self.clone();
        thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if let Some(tx) = &lines {
                    let _ = tx.send(line.clone());
                }
                output.push(line);
            }
        });
    }
}

/// A running `lectern up`. Dropping it stops the supervisor (SIGTERM,
/// then SIGKILL) and kills any child still alive, by pid.
struct System {
    supervisor: Child,
    data: tempfile::TempDir,
    base: String,
    output: Output,
}

impl System {
    fn start() -> Self {
        let data = tempfile::tempdir().expect("temporary data directory");
        let port = free_port();
        let mut supervisor = Command::new(BIN)
            .args(["up", "--port", &port.to_string(), "--data-dir"])
            .arg(data.path())
            .env("LECTERN_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .env_remove("LECTERN_GATEWAY_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lectern up starts");

        let output = Output::default();
        let (tx, rx) = mpsc::channel();
        let stdout = supervisor.stdout.take().expect("piped stdout");
        let stderr = supervisor.stderr.take().expect("piped stderr");
        output.collect(stdout, Some(tx));
        output.collect(stderr, None);

        let system = Self {
            supervisor,
            data,
            base: format!("http://127.0.0.1:{port}"),
            output,
        };
        system.wait_for_ready_line(&rx);
        system
    }

    fn wait_for_ready_line(&self, lines: &mpsc::Receiver<String>) {
        let expected = format!("Lectern is ready at {}", self.base);
        let deadline = Instant::now() + READY_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line == expected => return,
                Ok(_) => {}
                Err(_) => self.fail(&format!("no ready line within {READY_WAIT:?}")),
            }
        }
    }

    fn fail(&self, message: &str) -> ! {
        panic!(
            "{message}\n--- lectern up output (tail) ---\n{}",
            self.output.tail(150)
        );
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn pids_file(&self) -> PathBuf {
        self.data.path().join("pids.json")
    }

    fn pids(&self) -> Value {
        let text = std::fs::read_to_string(self.pids_file())
            .unwrap_or_else(|e| self.fail(&format!("pids.json unreadable: {e}")));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| self.fail(&format!("pids.json does not parse: {e}")))
    }

    /// Runs `lectern import` against this system.
    fn import(&self, file: &Path) -> (ExitStatus, String, String) {
        let run = Command::new(BIN)
            .args(["import", "--url", &self.base, "--user", "admin"])
            .arg(file)
            .env("LECTERN_PASSWORD", ADMIN_PASSWORD)
            .stdin(Stdio::null())
            .output()
            .expect("lectern import runs");
        let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
        (run.status, stdout, stderr)
    }

    /// SIGTERM, then waits (bounded) for the supervisor to exit.
    fn terminate(&mut self, wait: Duration) -> Option<ExitStatus> {
        signal(self.supervisor.id(), Signal::SIGTERM);
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            match self.supervisor.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => thread::sleep(Duration::from_millis(100)),
                Err(_) => return None,
            }
        }
        None
    }
}

impl Drop for System {
    fn drop(&mut self) {
        let children = std::fs::read_to_string(self.pids_file())
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .map(|doc| child_pids(&doc))
            .unwrap_or_default();

        if matches!(self.supervisor.try_wait(), Ok(None))
            && self.terminate(Duration::from_secs(15)).is_none()
        {
            let _ = self.supervisor.kill();
            let _ = self.supervisor.wait();
        }
        for pid in children {
            if alive(pid) {
                signal(pid, Signal::SIGKILL);
            }
        }
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

fn signal(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

fn alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    !matches!(kill(Pid::from_raw(raw), None), Err(Errno::ESRCH))
}

fn child_pids(doc: &Value) -> Vec<u32> {
    doc["children"]
        .as_array()
        .map(|children| {
            children
                .iter()
                .filter_map(|c| c["pid"].as_u64())
                .filter_map(|p| u32::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn child<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["children"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("{name} missing in pids.json: {doc}"))
}

/// A summary value of `lectern import`, such as `imported`.
fn summary_value(stdout: &str, label: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{label}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` in the summary:\n{stdout}"))
}

/// A status and its JSON body (`null` when there is none).
type Answer = (StatusCode, Value);

/// Calls through the gateway, with an optional bearer token.
struct Client {
    http: reqwest::Client,
}

impl Client {
    fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .expect("HTTP client");
        Self { http }
    }

    async fn get(&self, url: &str) -> Answer {
        let response = self.http.get(url).send().await.expect("GET answered");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, url: &str, token: Option<&str>, body: Value) -> Answer {
        let mut request = self.http.post(url).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST answered");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn sign_in(&self, system: &System, user: &str, password: &str) -> String {
        let body = json!({"username": user, "password": password});
        let url = system.url("/api/auth/login");
        let (status, answer) = self.post(&url, None, body).await;
        assert_eq!(status, StatusCode::OK, "sign-in of {user}: {answer}");
        answer["token"].as_str().expect("a token").to_owned()
    }
}

fn titles(search: &Value) -> Vec<String> {
    search["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["title"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_system_runs_lends_imports_survives_a_replica_kill_and_stops() {
    let mut system = System::start();
    let client = Client::new();

    let book_id = sample_catalogue_is_searchable(&system, &client).await;
    circulation_works(&system, &client, &book_id).await;
    import_loads_and_reloads_marc_files(&system, &client).await;
    reads_survive_a_replica_kill(&system, &client).await;

    let children = child_pids(&system.pids());
    let status = system.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "supervisor exit: {status:?}\n{}",
        system.output.tail(50)
    );
    assert_eq!(children.len(), 5, "every child had a pid");
    for pid in children {
        assert!(!alive(pid), "child {pid} outlived the supervisor");
    }
    assert!(!system.pids_file().exists(), "pids.json is removed at exit");
}

/// `GET /api/books?q=miserables` finds the sample's "Les Misérables";
/// answers its id.
async fn sample_catalogue_is_searchable(system: &System, client: &Client) -> String {
    let (status, search) = client.get(&system.url("/api/books?q=miserables")).await;

    assert_eq!(status, StatusCode::OK, "{search}");
    assert!(
        titles(&search).contains(&"Les Misérables".to_owned()),
        "{search}"
    );
    let items = search["items"].as_array().expect("items");
    let book = items
        .iter()
        .find(|i| i["title"] == "Les Misérables")
        .expect("the book");
    book["id"].as_str().expect("an id").to_owned()
}

async fn circulation_works(system: &System, client: &Client, book_id: &str) {
    let admin = client.sign_in(system, "admin", ADMIN_PASSWORD).await;
    let staff = json!({
        "username": "librarian1",
        "password": LIBRARIAN_PASSWORD,
        "role": "librarian"
    });
    let (status, answer) = client
        .post(&system.url("/api/auth/staff"), Some(&admin), staff)
        .await;
    assert!(status.is_success(), "create librarian: {status} {answer}");
    let librarian = client
        .sign_in(system, "librarian1", LIBRARIAN_PASSWORD)
        .await;
    let lib = Some(librarian.as_str());

    let member = json!({"card_number": "E2E-0001", "name": "Ada Lovelace",
                        "email": "ada@example.org"});
    let (status, answer) = client.post(&system.url("/api/members"), lib, member).await;
    assert_eq!(status, StatusCode::CREATED, "create member: {answer}");

    let (status, book) = client
        .get(&system.url(&format!("/api/books/{book_id}")))
        .await;
    assert_eq!(status, StatusCode::OK, "{book}");
    let barcode = book["copies"]
        .as_array()
        .and_then(|copies| copies.iter().find(|c| c["loanable"] != false))
        .and_then(|c| c["barcode"].as_str())
        .unwrap_or_else(|| panic!("a loanable copy: {book}"))
        .to_owned();

    let loans = system.url("/api/loans");
    let checkout = json!({"member": "E2E-0001", "barcode": barcode});
    let (status, loan) = client.post(&loans, lib, checkout.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "check out: {loan}");
    let loan_id = loan["id"].as_str().expect("loan id").to_owned();

    let (status, answer) = client.post(&loans, lib, checkout.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "second check-out: {answer}");

    let returned = system.url(&format!("/api/loans/{loan_id}/return"));
    let (status, answer) = client.post(&returned, lib, json!({})).await;
    assert_eq!(status, StatusCode::OK, "return: {answer}");
    assert!(answer["returned_at"].is_string(), "{answer}");

    let (status, loan) = client.post(&loans, lib, checkout).await;
    assert_eq!(status, StatusCode::CREATED, "check out again: {loan}");
    let renew = system.url(&format!(
        "/api/loans/{}/renew",
        loan["id"].as_str().unwrap()
    ));
    for n in 1..=2 {
        let (status, answer) = client.post(&renew, lib, json!({})).await;
        assert_eq!(status, StatusCode::OK, "renewal {n}: {answer}");
        assert_eq!(answer["renewals"], n, "{answer}");
    }
    let (status, answer) = client.post(&renew, lib, json!({})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "third renewal: {answer}"
    );
}

async fn import_loads_and_reloads_marc_files(system: &System, client: &Client) {
    let jazz = shared_marc("jazz_1k.mrc");
    let (first_title, barcode) = first_record(&jazz);

    let (status, stdout, stderr) = system.import(&jazz);
    assert!(status.success(), "import: {status}\n{stdout}\n{stderr}");
    assert_eq!(summary_value(&stdout, "imported"), 1000, "{stdout}");
    assert_eq!(summary_value(&stdout, "updated"), 0, "{stdout}");
    assert_eq!(summary_value(&stdout, "skipped"), 0, "{stdout}");
    assert_eq!(summary_value(&stdout, "failed batches"), 0, "{stdout}");

    let query: Vec<&str> = first_title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(3)
        .collect();
    let url = system.url(&format!("/api/books?q={}&limit=50", query.join("+")));
    let (status, search) = client.get(&url).await;
    assert_eq!(status, StatusCode::OK, "{search}");
    assert!(
        titles(&search).contains(&first_title),
        "{first_title:?} in {search}"
    );

    let url = system.url(&format!("/api/copies/{barcode}"));
    let (status, copy) = client.get(&url).await;
    assert_eq!(status, StatusCode::OK, "copy {barcode}: {copy}");
    assert_eq!(copy["title"], first_title.as_str(), "{copy}");

    let (status, stdout, stderr) = system.import(&jazz);
    assert!(status.success(), "re-import: {status}\n{stdout}\n{stderr}");
    assert_eq!(summary_value(&stdout, "imported"), 0, "{stdout}");
    assert_eq!(summary_value(&stdout, "updated"), 1000, "{stdout}");

    // MARC-8 diacritics: 245 $a of one record is "F" + combining
    // circumflex + "etes et corv" + combining acute + "ees /".
    let french = shared_marc("lul_fre_100.mrc");
    let (status, stdout, stderr) = system.import(&french);
    assert!(
        status.success(),
        "French import: {status}\n{stdout}\n{stderr}"
    );
    let url = system.url("/api/books?q=fetes+corvees");
    let (status, search) = client.get(&url).await;
    assert_eq!(status, StatusCode::OK, "{search}");
    let expected = "F\u{ea}tes et corv\u{e9}es";
    assert!(titles(&search).iter().any(|t| t == expected), "{search}");
}

/// The first record's title and first copy barcode, read with the MARC
/// crate itself.
fn first_record(path: &Path) -> (String, String) {
    let bytes = std::fs::read(path).expect("the MARC file");
    let mut records = lectern_marc::records(bytes.as_slice()).expect("records");
    let record = records.next().expect("one record").expect("readable");
    let bib = lectern_marc::bib::from_record(&record);
    let barcode = bib.copies.first().expect("a copy").barcode.clone();
    (bib.title, barcode)
}

/// Whether `url` answers 200 now; no answer counts as no.
async fn answers_ok(http: &reqwest::Client, url: &str) -> bool {
    match http.get(url).send().await {
        Ok(response) => response.status() == StatusCode::OK,
        Err(_) => false,
    }
}

/// Kills book-service-1 with SIGKILL while 200 reads run through the
/// gateway; every read must succeed, and the replica must come back.
async fn reads_survive_a_replica_kill(system: &System, client: &Client) {
    let before = system.pids();
    let replica = child(&before, "book-service-1");
    let old_pid = u32::try_from(replica["pid"].as_u64().expect("a pid")).unwrap();
    let address = replica["address"].as_str().expect("an address").to_owned();

    let url = system.url("/api/books?q=miserables");
    let mut failures = Vec::new();
    for i in 0..200 {
        if i == 20 {
            signal(old_pid, Signal::SIGKILL);
        }
        match client.http.get(&url).send().await {
            Ok(r) if r.status() == StatusCode::OK => {}
            Ok(r) => failures.push(format!("#{i}: {}", r.status())),
            Err(e) => failures.push(format!("#{i}: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !failures.is_empty() {
        system.fail(&format!("reads failed during the kill: {failures:?}"));
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let doc = system.pids();
        let pid = child(&doc, "book-service-1")["pid"].as_u64();
        let ready_url = format!("http://{address}/health/ready");
        let restarted = pid.is_some_and(|p| p != u64::from(old_pid));
        if restarted && answers_ok(&client.http, &ready_url).await {
            assert_eq!(child(&doc, "book-service-1")["restarts"], 1, "{doc}");
            break;
        }
        if Instant::now() > deadline {
            system.fail(&format!("book-service-1 did not come back: {doc}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(!alive(old_pid), "the killed replica is gone");
}
