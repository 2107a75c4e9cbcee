//! `lectern serve` (the real binary): configuration errors exit 2 naming
//! the variable; a service serves until SIGTERM and then exits 0; a child
//! whose supervisor is gone stops by itself. Every process started here
//! is ended by pid, also when a test fails.

use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_lectern");
const SECRET: &str = "serve-test-secret-0123456789";

/// `lectern serve <service>` with exactly `env` (nothing inherited).
fn command(service: &str, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["serve", service])
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    command
}

fn run(service: &str, env: &[(&str, &str)]) -> Output {
    command(service, env).output().expect("lectern serve runs")
}

/// Starts `lectern serve <service>`; its JSON logs are discarded.
fn spawn(service: &str, env: &[(&str, &str)]) -> Child {
    command(service, env)
        .stdout(Stdio::null())
        .spawn()
        .expect("lectern serve starts")
}

/// A started service; killed by pid when dropped.
struct Running(Child);

impl Running {
    fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.0.id()).expect("a pid");
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    listener.local_addr().expect("its address").port()
}

#[test]
fn a_missing_variable_exits_2_and_names_it() {
    let output = run("book-service", &[]);

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("LECTERN_TOKEN_SECRET must be set"),
        "{stderr}"
    );
}

#[test]
fn a_bad_value_exits_2_and_names_the_variable_and_reason() {
    let env = [
        ("LECTERN_TOKEN_SECRET", SECRET),
        ("DATABASE_URL", "sqlite:///nonexistent/x.db"),
        ("LECTERN_BIND", "nonsense"),
    ];
    let output = run("user-service", &env);

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("LECTERN_BIND=\"nonsense\" is not valid"),
        "{stderr}"
    );
}

#[test]
fn a_bad_chaos_or_resilience_value_exits_2_and_names_it() {
    for (name, value) in [
        ("CHAOS_ERROR_RATE", "2"),
        ("LECTERN_BREAKER_RESET_MS", "soon"),
    ] {
        let env = [
            ("LECTERN_TOKEN_SECRET", SECRET),
            ("DATABASE_URL", "sqlite:///nonexistent/x.db"),
            (name, value),
        ];
        let output = run("borrowing-service", &env);

        assert_eq!(output.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("{name}=")), "{stderr}");
    }
}

#[test]
fn the_gateway_refuses_a_missing_file_and_bad_servers_with_2() {
    let output = run(
        "gateway",
        &[("LECTERN_GATEWAY_CONFIG", "/nonexistent/g.toml")],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("LECTERN_GATEWAY_CONFIG=/nonexistent/g.toml"),
        "{stderr}"
    );

    let output = run("gateway", &[("GATEWAY_BOOK_SERVERS", "books:8081")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("GATEWAY_BOOK_SERVERS="), "{stderr}");
}

#[test]
fn the_gateway_reads_its_toml_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    let toml = r#"
        [[routes]]
        prefix = "/api/books"
        upstream = "books"

        [upstreams.books]
        servers = [{ address = "127.0.0.1:9" }]
    "#;
    std::fs::write(&file, toml).unwrap();
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let env = [
        ("LECTERN_GATEWAY_CONFIG", file.to_str().unwrap()),
        ("LECTERN_BIND", bind.as_str()),
    ];
    let mut gateway = Running(spawn("gateway", &env));

    assert!(eventually_live(port), "the gateway answers /health/live");
    gateway.signal(Signal::SIGTERM);
    let status = gateway.wait(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn a_service_serves_until_sigterm_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/users.db", dir.path().display());
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let env = [
        ("LECTERN_TOKEN_SECRET", SECRET),
        ("DATABASE_URL", database.as_str()),
        ("LECTERN_BIND", bind.as_str()),
        ("LECTERN_DATA_DIR", dir.path().to_str().unwrap()),
        ("LECTERN_ADMIN_PASSWORD", "serve-test-admin-pw"),
    ];
    let mut service = Running(spawn("user-service", &env));

    assert!(eventually_live(port), "user-service answers /health/live");
    service.signal(Signal::SIGTERM);
    let status = service.wait(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn a_child_whose_supervisor_is_gone_stops_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/users.db", dir.path().display());
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    // The test is the parent, so pid 1 as "supervisor" means orphaned.
    let env = [
        ("LECTERN_TOKEN_SECRET", SECRET),
        ("DATABASE_URL", database.as_str()),
        ("LECTERN_BIND", bind.as_str()),
        ("LECTERN_DATA_DIR", dir.path().to_str().unwrap()),
        ("LECTERN_ADMIN_PASSWORD", "serve-test-admin-pw"),
        ("LECTERN_SUPERVISOR_PID", "1"),
    ];
    let mut service = Running(spawn("user-service", &env));

    let status = service.wait(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// Polls `/health/live` for up to 30 s.
fn eventually_live(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if live(port) {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    false
}

/// One `GET /health/live` over a plain TCP connection.
fn live(port: u16) -> bool {
    use std::io::{Read, Write};

    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// An upstream that answers every request `200` with `name` as the body,
/// on a thread, until the test process ends.
fn named_upstream(name: &'static str) -> u16 {
    use std::io::{Read, Write};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = listener.local_addr().expect("its address").port();
    thread::spawn(move || {
        for stream in listener.incoming().take(10_000) {
            let Ok(mut stream) = stream else { continue };
            let mut head = [0_u8; 4096];
            let _ = stream.read(&mut head);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{name}",
                name.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    port
}

/// The body of one `GET path` through the gateway, if it answered 200.
fn get_body(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};

    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

fn books_routed_to(port: u16) -> String {
    format!(
        "[[routes]]\nprefix = \"/api/books\"\nupstream = \"books\"\n\n\
         [upstreams.books]\nservers = [{{ address = \"127.0.0.1:{port}\" }}]\n"
    )
}

#[test]
fn sighup_reloads_the_gateway_file() {
    let (first, second) = (named_upstream("first"), named_upstream("second"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, books_routed_to(first)).unwrap();
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let env = [
        ("LECTERN_GATEWAY_CONFIG", file.to_str().unwrap()),
        ("LECTERN_BIND", bind.as_str()),
    ];
    let mut gateway = Running(spawn("gateway", &env));
    assert!(eventually_live(port), "the gateway answers /health/live");
    assert_eq!(get_body(port, "/api/books").as_deref(), Some("first"));

    std::fs::write(&file, books_routed_to(second)).unwrap();
    gateway.signal(Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut body = None;
    while Instant::now() < deadline {
        body = get_body(port, "/api/books");
        if body.as_deref() == Some("second") {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }

    assert_eq!(body.as_deref(), Some("second"), "SIGHUP re-read the file");
    gateway.signal(Signal::SIGTERM);
    let status = gateway.wait(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn a_bad_log_setting_exits_2_and_names_it() {
    for (name, value) in [("LOG_FORMAT", "xml"), ("RUST_LOG", "[[[==")] {
        let output = run("user-service", &[(name, value)]);

        assert_eq!(output.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
}
