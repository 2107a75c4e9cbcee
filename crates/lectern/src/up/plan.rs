//! What `lectern up` runs: one entry per child process, with its address
//! and the environment that configures it.
//!
//! Pure data, decided once at start: a child that restarts gets the same
//! port and environment again, so the gateway and its neighbours find it
//! where it was.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::cli::ServiceName;
use crate::serve;

/// Everything the plan is made from.
#[derive(Debug, Clone)]
pub(crate) struct PlanInput {
    /// The data directory, absolute.
    pub(crate) data_dir: PathBuf,
    /// The shared token secret.
    pub(crate) secret: String,
    /// Where the gateway listens.
    pub(crate) gateway: SocketAddr,
    /// One address per book-service replica.
    pub(crate) book: Vec<SocketAddr>,
    /// user-service.
    pub(crate) user: SocketAddr,
    /// borrowing-service.
    pub(crate) borrowing: SocketAddr,
    /// The supervisor's pid, so a child can notice it is orphaned.
    pub(crate) supervisor_pid: u32,
}

/// One child process of the plan.
#[derive(Clone)]
pub(crate) struct ChildSpec {
    /// Unique within the plan: the service name, numbered for replicas
    /// (`book-service-2`).
    pub(crate) name: String,
    /// What it runs.
    pub(crate) service: ServiceName,
    /// Where it listens.
    pub(crate) address: SocketAddr,
    /// Variables set for it (on top of the supervisor's own environment).
    pub(crate) env: Vec<(&'static str, String)>,
    /// Variables of the supervisor's environment it must not inherit.
    pub(crate) env_remove: Vec<&'static str>,
}

impl std::fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The environment holds the token secret: names only.
        let names: Vec<&str> = self.env.iter().map(|(k, _)| *k).collect();
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .field("service", &self.service)
            .field("address", &self.address)
            .field("env", &names)
            .finish_non_exhaustive()
    }
}

/// The children, in start order: user-service, borrowing-service, the
/// book-service replicas, the gateway.
pub(crate) fn plan(input: &PlanInput) -> Vec<ChildSpec> {
    let mut children = vec![user(input), borrowing(input)];
    children.extend(
        input
            .book
            .iter()
            .enumerate()
            .map(|(i, addr)| book(input, i, *addr)),
    );
    children.push(gateway(input));

    children
}

fn user(input: &PlanInput) -> ChildSpec {
    let env = service_env(input, ServiceName::UserService, input.user);

    spec(
        "user-service".into(),
        ServiceName::UserService,
        input.user,
        env,
    )
}

fn borrowing(input: &PlanInput) -> ChildSpec {
    let name = ServiceName::BorrowingService;
    let mut env = service_env(input, name, input.borrowing);
    // Every replica: borrowing-service fails over to the next one when it
    // cannot connect (internal routes do not go through the gateway).
    let books: Vec<String> = input.book.iter().map(|a| url(*a)).collect();
    env.push(("BOOK_SERVICE_URL", books.join(",")));
    env.push(("USER_SERVICE_URL", url(input.user)));

    spec(name.as_str().into(), name, input.borrowing, env)
}

fn book(input: &PlanInput, index: usize, address: SocketAddr) -> ChildSpec {
    let name = ServiceName::BookService;
    let mut env = service_env(input, name, address);
    env.push(("LECTERN_SAMPLE_CATALOGUE", "true".into()));
    env.push(("BORROWING_SERVICE_URL", url(input.borrowing)));

    spec(format!("book-service-{}", index + 1), name, address, env)
}

fn gateway(input: &PlanInput) -> ChildSpec {
    let name = ServiceName::Gateway;
    let mut env = common_env(input, input.gateway);
    env.push((serve::GATEWAY_BOOK_SERVERS, list(&input.book)));
    env.push((serve::GATEWAY_USER_SERVERS, input.user.to_string()));
    env.push((
        serve::GATEWAY_BORROWING_SERVERS,
        input.borrowing.to_string(),
    ));

    let mut child = spec(name.as_str().into(), name, input.gateway, env);
    // A file from the supervisor's environment would override the
    // addresses above.
    child.env_remove.push(serve::GATEWAY_CONFIG);
    child
}

fn spec(
    name: String,
    service: ServiceName,
    address: SocketAddr,
    env: Vec<(&'static str, String)>,
) -> ChildSpec {
    ChildSpec {
        name,
        service,
        address,
        env,
        env_remove: Vec::new(),
    }
}

/// What every child gets.
fn common_env(input: &PlanInput, bind: SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("LECTERN_BIND", bind.to_string()),
        ("LECTERN_TOKEN_SECRET", input.secret.clone()),
        ("LECTERN_DATA_DIR", input.data_dir.display().to_string()),
        (serve::SUPERVISOR_PID, input.supervisor_pid.to_string()),
    ]
}

/// What every service with a database gets.
fn service_env(
    input: &PlanInput,
    service: ServiceName,
    bind: SocketAddr,
) -> Vec<(&'static str, String)> {
    let mut env = common_env(input, bind);
    env.push(("DATABASE_URL", sqlite_url(&input.data_dir, service)));
    env
}

/// The data directory's path cannot go into a `sqlite://` URL.
#[derive(Debug, thiserror::Error)]
#[error(
    "the data directory {0} cannot be used: its path must be UTF-8 \
     without `%`, `?` or `#`, which a database URL would misread"
)]
pub(crate) struct UnusablePath(String);

/// Checks that `data_dir` reads the same inside a `sqlite://` URL.
pub(crate) fn check_path(data_dir: &Path) -> Result<(), UnusablePath> {
    let shown = data_dir.display().to_string();
    match data_dir.to_str() {
        Some(path) if !path.contains(['%', '?', '#']) => Ok(()),
        _ => Err(UnusablePath(shown)),
    }
}

/// `sqlite://<dir>/<service>.db`; replicas of a service share the file.
pub(crate) fn sqlite_url(data_dir: &Path, service: ServiceName) -> String {
    let file = data_dir.join(format!("{}.db", service.as_str()));

    format!("sqlite://{}", file.display())
}

fn url(address: SocketAddr) -> String {
    format!("http://{address}")
}

fn list(addresses: &[SocketAddr]) -> String {
    let items: Vec<String> = addresses.iter().map(ToString::to_string).collect();

    items.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn input() -> PlanInput {
        PlanInput {
            data_dir: PathBuf::from("/srv/lectern"),
            secret: "s".repeat(64),
            gateway: addr(8080),
            book: vec![addr(4001), addr(4002), addr(4003)],
            user: addr(4010),
            borrowing: addr(4020),
            supervisor_pid: 77,
        }
    }

    fn env<'a>(child: &'a ChildSpec, name: &str) -> Option<&'a str> {
        child
            .env
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn every_service_is_planned_once_and_replicas_are_numbered() {
        let children = plan(&input());
        let names: Vec<&str> = children.iter().map(|c| c.name.as_str()).collect();

        assert_eq!(
            names,
            [
                "user-service",
                "borrowing-service",
                "book-service-1",
                "book-service-2",
                "book-service-3",
                "gateway"
            ]
        );
    }

    #[test]
    fn each_child_binds_its_own_address() {
        for child in plan(&input()) {
            let bind = env(&child, "LECTERN_BIND").unwrap();
            assert_eq!(bind, child.address.to_string(), "{}", child.name);
            assert_eq!(env(&child, "LECTERN_TOKEN_SECRET").unwrap().len(), 64);
            assert_eq!(env(&child, "LECTERN_DATA_DIR"), Some("/srv/lectern"));
            assert_eq!(env(&child, serve::SUPERVISOR_PID), Some("77"));
        }
    }

    #[test]
    fn replicas_share_one_database_and_services_have_their_own() {
        let children = plan(&input());
        let url = |i: usize| env(&children[i], "DATABASE_URL");

        assert_eq!(url(0), Some("sqlite:///srv/lectern/user-service.db"));
        assert_eq!(url(1), Some("sqlite:///srv/lectern/borrowing-service.db"));
        for i in 2..5 {
            assert_eq!(url(i), Some("sqlite:///srv/lectern/book-service.db"));
        }
        assert_eq!(url(5), None, "the gateway has no database");
    }

    #[test]
    fn neighbours_are_wired_to_each_other() {
        let children = plan(&input());
        let (borrowing, book, gateway) = (&children[1], &children[3], &children[5]);

        let borrowing_url = Some("http://127.0.0.1:4020");
        assert_eq!(env(book, "BORROWING_SERVICE_URL"), borrowing_url);
        assert_eq!(env(book, "LECTERN_SAMPLE_CATALOGUE"), Some("true"));
        let every_book = Some("http://127.0.0.1:4001,http://127.0.0.1:4002,http://127.0.0.1:4003");
        assert_eq!(env(borrowing, "BOOK_SERVICE_URL"), every_book);
        let user = Some("http://127.0.0.1:4010");
        assert_eq!(env(borrowing, "USER_SERVICE_URL"), user);

        let books = Some("127.0.0.1:4001,127.0.0.1:4002,127.0.0.1:4003");
        assert_eq!(env(gateway, serve::GATEWAY_BOOK_SERVERS), books);
        let users = Some("127.0.0.1:4010");
        assert_eq!(env(gateway, serve::GATEWAY_USER_SERVERS), users);
        let loans = Some("127.0.0.1:4020");
        assert_eq!(env(gateway, serve::GATEWAY_BORROWING_SERVERS), loans);
        assert_eq!(gateway.env_remove, [serve::GATEWAY_CONFIG]);
    }

    #[test]
    fn paths_a_url_would_misread_are_refused() {
        assert!(check_path(Path::new("/srv/lectern data/x")).is_ok());
        for bad in ["/srv/a%20b", "/srv/a?b", "/srv/a#b"] {
            let err = check_path(Path::new(bad)).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let children = plan(&input());
        let shown = format!("{children:?}");

        assert!(!shown.contains(&"s".repeat(64)));
        assert!(shown.contains("LECTERN_TOKEN_SECRET"));
    }
}
