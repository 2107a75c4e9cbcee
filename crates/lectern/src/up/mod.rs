//! `lectern up`: the whole system on one machine, supervised.
//!
//! The supervisor prepares the data directory and the token secret,
//! picks a loopback port for every child once, and runs each service as
//! its own child process (`<this executable> serve <service>`), restarting
//! any that dies. It starts in two stages: user-service, borrowing-service
//! and the first book-service replica first; once they are ready, the
//! other replicas (which share the first one's SQLite file, already
//! migrated) and the gateway. When every child answers `/health/ready` it
//! prints the ready line on stdout. SIGINT or SIGTERM stops every child
//! with SIGTERM, waits up to 10 s, kills what is left and exits 0.
//!
//! Children write their JSON logs straight to the supervisor's stdout and
//! stderr; the supervisor's own messages are plain lines on stderr.

mod backoff;
mod child;
mod data_dir;
mod plan;
mod process;
mod ready;
mod registry;
mod secret;

use std::future::Future;
use std::io::{self, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus};
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cli::{ServiceName, UpArgs};
use child::{stopping, Event, Stopped};
use data_dir::DataDir;
use plan::{ChildSpec, PlanInput};
use process::ServiceLauncher;
use registry::Registry;

/// How long stopping children may take before they are killed.
const GRACE: Duration = Duration::from_secs(10);

/// Runs `lectern up` until SIGINT or SIGTERM.
pub(crate) async fn run(args: UpArgs) -> ExitCode {
    match up(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lectern up: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    // Listening before any child exists, so no signal is missed.
    let stop_signal = stop_signal().context("cannot listen for signals")?;
    let data = DataDir::open(&args.data_dir)?;
    plan::check_path(data.path())?;
    let secret = secret::load_or_create(&data.file("token-secret"))?;
    note_secret(&secret, &data);

    let gateway = SocketAddr::from(([127, 0, 0, 1], args.port));
    ensure_free(gateway)?;
    let children = plan::plan(&plan_input(&args, &data, secret.value, gateway)?);
    let registry = Registry::new(data.file("pids.json"), url(gateway), &children);
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let client = ready::client().context("cannot make an HTTP client")?;
    eprintln!(
        "lectern: starting Lectern in {} (gateway on {gateway}, {} \
         book-service replicas)",
        data.path().display(),
        args.book_replicas
    );

    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        let name = stop_signal.await;
        eprintln!("lectern: {name} received; stopping every service");
        // Every receiver gone means everything stopped already.
        let _ = stop.send(true);
    });
    let mut supervisor = Supervisor {
        exe,
        registry: registry.clone(),
        shutdown: shutdown.clone(),
        tasks: JoinSet::new(),
    };

    let mut watch_stop = shutdown;
    let (first, rest) = stages(&children);
    supervisor.spawn_all(&first);
    if ready::wait_ready(&client, &targets(&first), &mut watch_stop).await {
        supervisor.spawn_all(&rest);
        if ready::wait_ready(&client, &targets(&children), &mut watch_stop).await {
            announce(gateway, &data);
        }
    }

    stopping(&mut watch_stop).await;
    supervisor.join().await;
    if let Err(error) = registry.remove() {
        eprintln!("lectern: cannot remove pids.json: {error}");
    }
    eprintln!("lectern: stopped");

    Ok(())
}

/// The plan's input: ports picked now, once, for the life of the
/// supervisor.
fn plan_input(
    args: &UpArgs,
    data: &DataDir,
    secret: String,
    gateway: SocketAddr,
) -> anyhow::Result<PlanInput> {
    let replicas = usize::from(args.book_replicas);
    let mut ports = free_loopback_ports(replicas + 2)
        .context("cannot find free ports on 127.0.0.1")?
        .into_iter()
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
    let mut next = || ports.next().context("too few free ports");

    Ok(PlanInput {
        data_dir: data.path().to_owned(),
        secret,
        gateway,
        user: next()?,
        borrowing: next()?,
        book: (0..replicas)
            .map(|_| next())
            .collect::<anyhow::Result<_>>()?,
        supervisor_pid: std::process::id(),
    })
}

/// Runs the children's supervision loops.
struct Supervisor {
    exe: PathBuf,
    registry: Registry,
    shutdown: watch::Receiver<bool>,
    tasks: JoinSet<()>,
}

impl Supervisor {
    fn spawn_all(&mut self, children: &[ChildSpec]) {
        for spec in children {
            let launcher = ServiceLauncher::new(self.exe.clone(), spec.clone());
            let report = reporter(spec, self.registry.clone());
            let shutdown = self.shutdown.clone();
            self.tasks
                .spawn(child::supervise(launcher, shutdown, GRACE, report));
        }
    }

    /// Waits for every loop to finish stopping its child.
    async fn join(mut self) {
        while let Some(done) = self.tasks.join_next().await {
            if let Err(error) = done {
                eprintln!("lectern: a supervision task failed: {error}");
            }
        }
    }
}

/// First user-service, borrowing-service and the first book-service
/// replica; then the other replicas and the gateway.
fn stages(children: &[ChildSpec]) -> (Vec<ChildSpec>, Vec<ChildSpec>) {
    let first_book = children
        .iter()
        .find(|c| c.service == ServiceName::BookService)
        .map(|c| c.name.clone());
    let early = |c: &&ChildSpec| match c.service {
        ServiceName::Gateway => false,
        ServiceName::BookService => Some(&c.name) == first_book.as_ref(),
        ServiceName::UserService | ServiceName::BorrowingService => true,
    };
    let (first, rest): (Vec<&ChildSpec>, Vec<_>) = children.iter().partition(early);

    (
        first.into_iter().cloned().collect(),
        rest.into_iter().cloned().collect(),
    )
}

fn targets(children: &[ChildSpec]) -> Vec<(String, SocketAddr)> {
    children
        .iter()
        .map(|c| (c.name.clone(), c.address))
        .collect()
}

/// The messages and pid-file updates for one child's events.
fn reporter(spec: &ChildSpec, registry: Registry) -> impl FnMut(Event) + Send {
    let name = spec.name.clone();
    let address = spec.address;
    let mut pid = None;

    move |event| match event {
        Event::Started { pid: started } => {
            pid = started;
            keep(registry.started(&name, pid));
            eprintln!("lectern: {name} started (pid {}, {address})", show(pid));
        }
        Event::LaunchFailed(error) => {
            eprintln!("lectern: cannot start {name}: {error}");
        }
        Event::Exited { status, ran } => {
            keep(registry.exited(&name));
            let secs = ran.as_secs_f64();
            let how = describe(&status);
            eprintln!(
                "lectern: {name} (pid {}) {how} after {secs:.1} s",
                show(pid)
            );
        }
        Event::Restarting { delay } => {
            let secs = delay.as_secs_f64();
            eprintln!("lectern: restarting {name} in {secs:.1} s");
        }
        Event::Stopped(stopped) => {
            keep(registry.exited(&name));
            match stopped {
                Stopped::Gracefully(status) => {
                    let how = describe(&Ok(status));
                    eprintln!("lectern: {name} stopped ({how})");
                }
                Stopped::Killed => eprintln!(
                    "lectern: {name} did not stop within {} s; killed",
                    GRACE.as_secs()
                ),
                Stopped::Lost(error) => {
                    eprintln!("lectern: lost {name} while stopping it: {error}");
                }
            }
        }
    }
}

/// Reports a failed pid-file write; supervision goes on without it.
fn keep(result: io::Result<()>) {
    if let Err(error) = result {
        eprintln!("lectern: cannot write pids.json: {error}");
    }
}

fn show(pid: Option<u32>) -> String {
    pid.map_or_else(|| "?".to_owned(), |p| p.to_string())
}

/// "exited with status 1", "was killed by SIGKILL".
fn describe(status: &io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => match Signal::try_from(sig) {
                Ok(signal) => format!("was killed by {signal}"),
                Err(_) => format!("was killed by signal {sig}"),
            },
            (None, None) => format!("ended ({status})"),
        },
        Err(error) => format!("could not be waited for ({error})"),
    }
}

/// Prints the ready line on stdout and where to sign in on stderr.
fn announce(gateway: SocketAddr, data: &DataDir) {
    let mut out = io::stdout().lock();
    // Nothing to do if stdout is gone; the system runs on regardless.
    drop(writeln!(out, "Lectern is ready at {}", url(gateway)));
    drop(out.flush());

    let file = data.file("admin-password");
    if file.exists() {
        eprintln!(
            "lectern: sign in as `admin` with the password in {}",
            file.display()
        );
    } else if std::env::var_os("LECTERN_ADMIN_PASSWORD").is_some() {
        eprintln!("lectern: sign in as `admin` with LECTERN_ADMIN_PASSWORD");
    } else {
        eprintln!(
            "lectern: the admin password was chosen on the first start \
             (there is no {} any more)",
            file.display()
        );
    }
}

fn note_secret(secret: &secret::Secret, data: &DataDir) {
    let path = data.file("token-secret");
    if secret.created {
        eprintln!("lectern: made a new token secret in {}", path.display());
    }
    if secret.tightened {
        eprintln!(
            "lectern: {} was readable by others; it is now private (0600)",
            path.display()
        );
    }
}

/// Fails with a clear message when the gateway's port is taken.
fn ensure_free(address: SocketAddr) -> anyhow::Result<()> {
    match TcpListener::bind(address) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(anyhow::anyhow!(
            "port {} on 127.0.0.1 is in use; choose another with --port",
            address.port()
        )),
        Err(e) => Err(e).context(format!("cannot listen on {address}")),
    }
}

/// `n` distinct ports that were free on 127.0.0.1 a moment ago.
///
/// Limitation: the ports are released before the children bind them, so
/// another program could take one in between; that child then fails to
/// start and is retried with backoff on the same port.
fn free_loopback_ports(n: usize) -> io::Result<Vec<u16>> {
    // All held at once, so the kernel hands out distinct ports.
    let listeners = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<io::Result<Vec<_>>>()?;

    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// Completes with the signal's name on SIGINT or SIGTERM.
fn stop_signal() -> io::Result<impl Future<Output = &'static str>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;

    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        }
    })
}

fn url(address: SocketAddr) -> String {
    format!("http://{address}")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;

    use super::*;

    fn children(replicas: usize) -> Vec<ChildSpec> {
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        plan::plan(&PlanInput {
            data_dir: Path::new("/d").to_owned(),
            secret: "x".repeat(32),
            gateway: addr(8080),
            book: (0..replicas).map(|i| addr(5000 + i as u16)).collect(),
            user: addr(4010),
            borrowing: addr(4020),
            supervisor_pid: 1,
        })
    }

    fn names(children: &[ChildSpec]) -> Vec<&str> {
        children.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn the_first_replica_starts_alone_before_the_others_and_the_gateway() {
        let all = children(3);
        let (first, rest) = stages(&all);

        let early = ["user-service", "borrowing-service", "book-service-1"];
        assert_eq!(names(&first), early);
        let late = ["book-service-2", "book-service-3", "gateway"];
        assert_eq!(names(&rest), late);
    }

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports = free_loopback_ports(6).unwrap();

        assert_eq!(ports.iter().collect::<HashSet<_>>().len(), 6);
        for port in ports {
            assert_ne!(port, 0);
            TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }

    #[test]
    fn a_taken_gateway_port_is_refused_with_advice() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap();

        let error = ensure_free(address).unwrap_err().to_string();
        assert!(error.contains("--port"), "{error}");
        drop(taken);
        assert!(ensure_free(address).is_ok());
    }

    #[test]
    fn exit_statuses_read_plainly() {
        let exited = Ok(ExitStatus::from_raw(3 << 8));
        assert_eq!(describe(&exited), "exited with status 3");
        let killed = Ok(ExitStatus::from_raw(9));
        assert_eq!(describe(&killed), "was killed by SIGKILL");
    }
}
