//! One supervised child: start it, wait for it, restart it with backoff
//! when it dies, stop it gracefully when the supervisor stops.
//!
//! The loop is written against two small traits, [`Launch`] and
//! [`Running`], so the restart arithmetic can be tested on tokio's paused
//! clock with a fake child; [`crate::up::process`] implements them with
//! real processes.

use std::future::Future;
use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::backoff::Restarts;

/// Starts one more instance of a child.
pub(crate) trait Launch: Send {
    /// The running instance.
    type Child: Running;

    /// Starts it; an error means it could not start at all.
    fn launch(&mut self) -> io::Result<Self::Child>;
}

/// A running instance of a child.
pub(crate) trait Running: Send {
    /// Its process id, when it has one.
    fn pid(&self) -> Option<u32>;

    /// Completes when it exits on its own.
    fn wait(&mut self) -> impl Future<Output = io::Result<ExitStatus>> + Send;

    /// Asks it to stop, waits up to `grace`, then kills it. Answers how
    /// it ended.
    fn stop(self, grace: Duration) -> impl Future<Output = Stopped> + Send;
}

/// How a stopped child ended.
#[derive(Debug)]
pub(crate) enum Stopped {
    /// It stopped within the grace period.
    Gracefully(ExitStatus),
    /// It was still running after the grace period and was killed.
    Killed,
    /// Waiting for it failed.
    Lost(io::Error),
}

/// What happened to a child, for the supervisor's messages and pid file.
#[derive(Debug)]
pub(crate) enum Event {
    /// A new instance started.
    Started {
        /// Its pid.
        pid: Option<u32>,
    },
    /// It could not be started.
    LaunchFailed(io::Error),
    /// It exited on its own after running `ran`.
    Exited {
        /// Its exit status, or why waiting failed.
        status: io::Result<ExitStatus>,
        /// How long it ran.
        ran: Duration,
    },
    /// The next start is in `delay`.
    Restarting {
        /// The wait before it.
        delay: Duration,
    },
    /// It was stopped because the supervisor is stopping.
    Stopped(Stopped),
}

/// Runs `launcher`'s child until `shutdown` turns true (or its sender is
/// dropped), restarting it with [`Restarts`] backoff whenever it dies.
/// On shutdown the running instance gets [`Running::stop`] with `grace`.
pub(crate) async fn supervise<L: Launch>(
    mut launcher: L,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
    mut report: impl FnMut(Event) + Send,
) {
    let mut restarts = Restarts::default();

    while !*shutdown.borrow() {
        let started = Instant::now();

        match launcher.launch() {
            Ok(mut child) => {
                report(Event::Started { pid: child.pid() });
                let exited = tokio::select! {
                    status = child.wait() => Some(status),
                    () = stopping(&mut shutdown) => None,
                };
                let Some(status) = exited else {
                    report(Event::Stopped(child.stop(grace).await));
                    return;
                };
                let ran = started.elapsed();
                report(Event::Exited { status, ran });
            }
            Err(error) => report(Event::LaunchFailed(error)),
        }

        let delay = restarts.after_exit(started.elapsed());
        report(Event::Restarting { delay });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stopping(&mut shutdown) => return,
        }
    }
}

/// Completes once the supervisor is stopping.
pub(crate) async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    drop(shutdown.wait_for(|stop| *stop).await);
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A child that exits on its own after a scripted run time, or never.
    struct FakeChild {
        run: Option<Duration>,
        stop_takes: Duration,
    }

    impl Running for FakeChild {
        fn pid(&self) -> Option<u32> {
            Some(4242)
        }

        async fn wait(&mut self) -> io::Result<ExitStatus> {
            match self.run {
                Some(run) => tokio::time::sleep(run).await,
                None => std::future::pending::<()>().await,
            }
            Ok(ExitStatus::from_raw(1 << 8))
        }

        async fn stop(self, grace: Duration) -> Stopped {
            if self.stop_takes <= grace {
                tokio::time::sleep(self.stop_takes).await;
                Stopped::Gracefully(ExitStatus::from_raw(0))
            } else {
                tokio::time::sleep(grace).await;
                Stopped::Killed
            }
        }
    }

    /// Launches children whose run times come from a script, and records
    /// when each launch happened on tokio's clock.
    struct FakeLauncher {
        runs: Vec<Option<Duration>>,
        stop_takes: Duration,
        launches: Arc<Mutex<Vec<Instant>>>,
    }

    impl Launch for FakeLauncher {
        type Child = FakeChild;

        fn launch(&mut self) -> io::Result<FakeChild> {
            self.launches.lock().unwrap().push(Instant::now());
            let run = if self.runs.is_empty() {
                None
            } else {
                self.runs.remove(0)
            };
            Ok(FakeChild {
                run,
                stop_takes: self.stop_takes,
            })
        }
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Runs the loop with a script of run times until `until` has passed
    /// on the paused clock, then stops it; answers the gaps between
    /// launches and the events.
    async fn run_script(
        runs: Vec<Option<Duration>>,
        stop_takes: Duration,
        until: Duration,
    ) -> (Vec<Duration>, Vec<String>) {
        let launches = Arc::new(Mutex::new(Vec::new()));
        let launcher = FakeLauncher {
            runs,
            stop_takes,
            launches: launches.clone(),
        };
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = events.clone();
        let (stop, shutdown) = watch::channel(false);

        let task = tokio::spawn(supervise(
            launcher,
            shutdown,
            Duration::from_secs(10),
            move |e| log.lock().unwrap().push(format!("{e:?}")),
        ));
        tokio::time::sleep(until).await;
        stop.send(true).unwrap();
        task.await.unwrap();

        let launches = launches.lock().unwrap().clone();
        let gaps = launches.windows(2).map(|w| w[1] - w[0]).collect();
        let events = events.lock().unwrap().clone();
        (gaps, events)
    }

    #[tokio::test(start_paused = true)]
    async fn a_child_that_keeps_dying_is_restarted_with_growing_waits() {
        let runs = vec![Some(secs(1.0)); 8];
        let (gaps, _) = run_script(runs, Duration::ZERO, secs(60.0)).await;

        // Each gap is the 1 s run plus the backoff wait.
        let expected: Vec<Duration> = [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
            .iter()
            .map(|wait| secs(1.0 + wait))
            .collect();
        assert_eq!(gaps, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_healthy_run_resets_the_backoff() {
        let runs = vec![
            Some(secs(1.0)),
            Some(secs(1.0)),
            Some(secs(1.0)),
            Some(secs(40.0)),
            Some(secs(1.0)),
        ];
        let (gaps, _) = run_script(runs, Duration::ZERO, secs(120.0)).await;

        let expected = [1.5, 2.0, 3.0, 40.5, 2.0].map(secs);
        assert_eq!(gaps, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_the_running_child_and_never_restarts_it() {
        let (gaps, events) = run_script(vec![None], secs(3.0), secs(5.0)).await;

        assert!(gaps.is_empty(), "launched once: {gaps:?}");
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events[0].starts_with("Started"));
        assert!(events[1].starts_with("Stopped(Gracefully"), "{events:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_child_deaf_to_sigterm_is_killed_after_the_grace_period() {
        let start = Instant::now();
        let (_, events) = run_script(vec![None], secs(60.0), secs(1.0)).await;

        assert!(events[1].starts_with("Stopped(Killed"), "{events:?}");
        assert_eq!(start.elapsed(), secs(11.0));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_during_the_backoff_wait_ends_the_loop() {
        // Dies after 1 s; the wait is 0.5 s; shutdown at 1.2 s.
        let runs = vec![Some(secs(1.0))];
        let (gaps, events) = run_script(runs, Duration::ZERO, secs(1.2)).await;

        assert!(gaps.is_empty());
        let last = events.last().unwrap();
        assert!(last.starts_with("Restarting"), "{events:?}");
    }
}
