//! Children as real processes: `<this executable> serve <service>` with
//! the environment the plan gives it.
//!
//! Each child gets its own process group, so a Ctrl-C in the terminal
//! reaches only the supervisor, which then stops the children in order
//! with SIGTERM (tokio's own `kill` would send SIGKILL).

use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::child::{Launch, Running, Stopped};
use super::plan::ChildSpec;

/// Starts a child of the plan as a process.
#[derive(Debug)]
pub(crate) struct ServiceLauncher {
    exe: PathBuf,
    spec: ChildSpec,
}

impl ServiceLauncher {
    /// Launches `spec` by running `exe serve <service>`.
    pub(crate) fn new(exe: PathBuf, spec: ChildSpec) -> Self {
        Self { exe, spec }
    }
}

impl Launch for ServiceLauncher {
    type Child = ServiceProcess;

    fn launch(&mut self) -> io::Result<ServiceProcess> {
        let mut command = Command::new(&self.exe);
        command
            .arg("serve")
            .arg(self.spec.service.as_str())
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .process_group(0)
            // Should the supervisor's task be dropped without a stop
            // (a panic), the child is killed rather than left behind.
            .kill_on_drop(true);
        for name in &self.spec.env_remove {
            command.env_remove(name);
        }

        Ok(ServiceProcess {
            child: command.spawn()?,
        })
    }
}

/// A running child process.
#[derive(Debug)]
pub(crate) struct ServiceProcess {
    child: Child,
}

impl Running for ServiceProcess {
    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    async fn stop(mut self, grace: Duration) -> Stopped {
        terminate(&self.child);

        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => Stopped::Gracefully(status),
            Ok(Err(error)) => Stopped::Lost(error),
            Err(_) => match self.child.kill().await {
                Ok(()) => Stopped::Killed,
                Err(error) => Stopped::Lost(error),
            },
        }
    }
}

/// Sends SIGTERM to a child that has not been reaped yet.
fn terminate(child: &Child) {
    // `id()` is `None` once the child was reaped: nothing to signal.
    let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) else {
        return;
    };
    // ESRCH (already exited, not yet reaped) is fine: wait() sees it.
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
}
