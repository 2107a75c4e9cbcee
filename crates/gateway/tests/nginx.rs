//! The shipped nginx configuration (`deploy/nginx/nginx.conf.template`),
//! run by the real nginx in front of mock services on loopback.
//!
//! nginx gets its own prefix, configuration, pid and log files in a
//! temporary directory, runs in the foreground (`daemon off`) on a free
//! loopback port, and is stopped by its pid when the test ends, also when
//! it fails. Without nginx the tests are skipped with a reason, except
//! under `CI=true`, where they fail.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{get, send, Upstream};
use lectern_platform::testing::server_available;

const TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/nginx/nginx.conf.template"
);

/// The nginx binary: `$NGINX`, else `nginx` on the path or in /usr/sbin.
fn nginx_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NGINX") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")]);

    dirs.map(|d| d.join("nginx")).find(|p| p.is_file())
}

fn available() -> Option<PathBuf> {
    let found = nginx_binary();
    server_available("nginx", found.is_some())
        .then_some(found)
        .flatten()
}

/// The template with every placeholder filled in, and temporary paths of
/// its own so it runs as any user.
fn render(listen: &str, servers: &Servers, dir: &Path) -> String {
    let text = std::fs::read_to_string(TEMPLATE).unwrap();
    let filled = [
        ("${LISTEN}", listen.to_owned()),
        ("${BOOK_SERVICE_1}", servers.book[0].to_string()),
        ("${BOOK_SERVICE_2}", servers.book[1].to_string()),
        ("${BOOK_SERVICE_3}", servers.book[2].to_string()),
        ("${BOOK_SERVICE_BACKUP}", servers.backup.to_string()),
        ("${USER_SERVICE}", servers.user.to_string()),
        ("${BORROWING_SERVICE}", servers.borrowing.to_string()),
    ]
    .iter()
    .fold(text, |text, (k, v)| text.replace(k, v));
    let left = filled
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find(|l| l.contains("${"));
    assert!(left.is_none(), "a placeholder is left: {left:?}");

    let temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .map(|what| {
            format!("    {what}_temp_path {};\n", dir.join(what).display())
        })
        .concat();
    filled.replacen("http {\n", &format!("http {{\n{temp}"), 1)
}

struct Servers {
    book: [SocketAddr; 3],
    backup: SocketAddr,
    user: SocketAddr,
    borrowing: SocketAddr,
}

/// nginx running in the foreground; stopped by pid when dropped.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn args(dir: &Path) -> Vec<String> {
        vec![
            "-p".into(),
            dir.display().to_string(),
            "-c".into(),
            dir.join("nginx.conf").display().to_string(),
            "-e".into(),
            dir.join("error.log").display().to_string(),
            "-g".into(),
            format!("daemon off; pid {};", dir.join("nginx.pid").display()),
        ]
    }

    async fn start(binary: &Path, servers: &Servers) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = render(&format!("127.0.0.1:{port}"), servers, dir.path());
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();

        let child = Command::new(binary)
            .args(Self::args(dir.path()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx starts");
        let nginx = Nginx {
            child,
            port,
            _dir: dir,
        };
        nginx.until_listening().await;

        nginx
    }

    async fn until_listening(&self) {
        for _ in 0..200 {
            let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("nginx did not listen on {} within 5 s", self.port);
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT to the master: it stops its workers, then itself.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();

    listener.local_addr().unwrap().port()
}

#[test]
fn the_shipped_configuration_passes_nginx_t() {
    let Some(binary) = available() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let servers = Servers {
        book: [addr(8081), addr(8091), addr(8092)],
        backup: addr(8093),
        user: addr(8082),
        borrowing: addr(8083),
    };
    let conf = render("127.0.0.1:8080", &servers, dir.path());
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();

    let mut args = Nginx::args(dir.path());
    args.insert(0, "-t".into());
    let output = Command::new(binary).args(args).output().unwrap();

    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "nginx -t: {said}");
    assert!(said.contains("test is successful"), "{said}");
}

#[tokio::test]
async fn nginx_routes_moves_on_after_502_and_denies_internal() {
    let Some(binary) = available() else {
        return;
    };
    let broken = Upstream::failing("broken", 502).await;
    let book2 = Upstream::start("book2").await;
    let book3 = Upstream::start("book3").await;
    let backup = Upstream::start("backup").await;
    let user = Upstream::start("user").await;
    let borrowing = Upstream::start("borrowing").await;
    let servers = Servers {
        book: [broken.addr, book2.addr, book3.addr],
        backup: backup.addr,
        user: user.addr,
        borrowing: borrowing.addr,
    };
    let nginx = Nginx::start(&binary, &servers).await;

    // Routing.
    for (path, server) in [
        ("/api/members/7", "user"),
        ("/api/auth/login", "user"),
        ("/api/loans/overdue", "borrowing"),
        ("/api/copies/B-1", "book"),
    ] {
        let reply = get(&nginx.url(path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(reply.server().starts_with(server), "{path}");
    }
    assert_eq!(get(&nginx.url("/api/bookshelf")).await.status, 404);

    // A 502 from one server moves a GET on: every client gets a 200.
    for _ in 0..9 {
        let reply = get(&nginx.url("/api/books")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert!(reply.server().starts_with("book"));
    }
    assert!(broken.count() >= 1, "the broken server was tried");
    assert_eq!(backup.count(), 0, "the backup waits while primaries serve");

    // Headers passed on.
    let seen = &user.seen()[0];
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert!(!seen.headers["x-request-id"].is_empty());

    // /internal is denied and never forwarded.
    for path in ["/internal/copies/B-1", "/internal/", "/internal"] {
        let reply = send(Method::POST, &nginx.url(path), &[], "{}").await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
    }
    let internal = |u: &Upstream| {
        u.seen()
            .iter()
            .filter(|s| s.path.starts_with("/internal"))
            .count()
    };
    let total: usize = [&broken, &book2, &book3, &backup, &user, &borrowing]
        .iter()
        .map(|u| internal(u))
        .sum();
    assert_eq!(total, 0);
}

#[tokio::test]
async fn nginx_sends_to_the_backup_only_when_every_primary_is_down() {
    let Some(binary) = available() else {
        return;
    };
    let dead: Vec<SocketAddr> = {
        let mut dead = Vec::new();
        for _ in 0..3 {
            dead.push(common::dead_addr().await);
        }
        dead
    };
    let backup = Upstream::start("backup").await;
    let user = Upstream::start("user").await;
    let borrowing = Upstream::start("borrowing").await;
    let servers = Servers {
        book: [dead[0], dead[1], dead[2]],
        backup: backup.addr,
        user: user.addr,
        borrowing: borrowing.addr,
    };
    let nginx = Nginx::start(&binary, &servers).await;

    // Each request tries at most 2 servers; once all three primaries
    // have failed 3 times within 30 s, the backup answers.
    let mut served_by_backup = 0;
    for _ in 0..30 {
        let reply = get(&nginx.url("/api/books")).await;
        if reply.status == StatusCode::OK {
            assert_eq!(reply.server(), "backup");
            served_by_backup += 1;
        }
    }

    assert!(served_by_backup >= 10, "backup answered {served_by_backup}");
    assert_eq!(backup.count(), served_by_backup);
}
