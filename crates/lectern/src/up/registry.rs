//! `<data-dir>/pids.json`: which processes the supervisor is running,
//! where they listen, and how often they were restarted.
//!
//! Rewritten (to a temporary file, then renamed, so a reader never sees
//! half of it) whenever a child starts or dies, and removed when the
//! supervisor stops. Operators and tests use it to find a replica's pid.
//!
//! ```json
//! {"supervisor": 4100, "gateway": "http://127.0.0.1:8080",
//!  "children": [{"name": "book-service-1", "service": "book-service",
//!                "address": "127.0.0.1:40123", "pid": 4107,
//!                "restarts": 0}]}
//! ```
//! `pid` is `null` while a child waits to be restarted.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

use super::plan::ChildSpec;

/// The document.
#[derive(Debug, Serialize)]
struct PidFile {
    supervisor: u32,
    gateway: String,
    children: Vec<Entry>,
}

/// One child.
#[derive(Debug, Serialize)]
struct Entry {
    name: String,
    service: &'static str,
    address: SocketAddr,
    pid: Option<u32>,
    restarts: u32,
    #[serde(skip)]
    launched: bool,
}

/// The shared, file-backed list of children.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    path: PathBuf,
    state: Arc<Mutex<PidFile>>,
}

impl Registry {
    /// A registry of `children` (none running yet), written to `path`.
    pub(crate) fn new(path: PathBuf, gateway: String, children: &[ChildSpec]) -> Self {
        let entries = children
            .iter()
            .map(|c| Entry {
                name: c.name.clone(),
                service: c.service.as_str(),
                address: c.address,
                pid: None,
                restarts: 0,
                launched: false,
            })
            .collect();
        let state = PidFile {
            supervisor: std::process::id(),
            gateway,
            children: entries,
        };

        Self {
            path,
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Records that `name` now runs as `pid`; every start after the
    /// first counts as a restart.
    pub(crate) fn started(&self, name: &str, pid: Option<u32>) -> io::Result<()> {
        self.update(name, |entry| {
            if entry.launched {
                entry.restarts += 1;
            }
            entry.launched = true;
            entry.pid = pid;
        })
    }

    /// Records that `name` is not running.
    pub(crate) fn exited(&self, name: &str) -> io::Result<()> {
        self.update(name, |entry| entry.pid = None)
    }

    /// Deletes the file (the supervisor is stopping).
    pub(crate) fn remove(&self) -> io::Result<()> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut Entry)) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = state.children.iter_mut().find(|e| e.name == name) {
            change(entry);
        }

        // Written under the lock, so files land in the order of changes.
        write_atomically(&self.path, &state)
    }
}

fn write_atomically(path: &Path, doc: &PidFile) -> io::Result<()> {
    let text = serde_json::to_string_pretty(doc).map_err(io::Error::other)?;
    let partial = path.with_extension("json.partial");
    fs::write(&partial, text + "\n")?;

    fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::up::plan::{plan, PlanInput};

    fn registry(dir: &Path) -> Registry {
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let input = PlanInput {
            data_dir: dir.to_owned(),
            secret: "x".repeat(32),
            gateway: addr(8080),
            book: vec![addr(4001), addr(4002)],
            user: addr(4010),
            borrowing: addr(4020),
            supervisor_pid: 1,
        };
        let path = dir.join("pids.json");

        Registry::new(path, "http://127.0.0.1:8080".into(), &plan(&input))
    }

    fn read(dir: &Path) -> Value {
        let text = fs::read_to_string(dir.join("pids.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn child<'a>(doc: &'a Value, name: &str) -> &'a Value {
        let children = doc["children"].as_array().unwrap();
        children.iter().find(|c| c["name"] == name).unwrap()
    }

    #[test]
    fn the_file_follows_starts_deaths_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path());

        registry.started("book-service-2", Some(100)).unwrap();
        let doc = read(dir.path());
        assert_eq!(doc["supervisor"], std::process::id());
        assert_eq!(doc["gateway"], "http://127.0.0.1:8080");
        assert_eq!(doc["children"].as_array().unwrap().len(), 5);
        let entry = child(&doc, "book-service-2");
        assert_eq!(entry["pid"], 100);
        assert_eq!(entry["service"], "book-service");
        assert_eq!(entry["address"], "127.0.0.1:4002");
        assert_eq!(entry["restarts"], 0);
        assert!(child(&doc, "gateway")["pid"].is_null());

        registry.exited("book-service-2").unwrap();
        assert!(child(&read(dir.path()), "book-service-2")["pid"].is_null());

        registry.started("book-service-2", Some(101)).unwrap();
        let doc = read(dir.path());
        assert_eq!(child(&doc, "book-service-2")["pid"], 101);
        assert_eq!(child(&doc, "book-service-2")["restarts"], 1);
        assert!(!dir.path().join("pids.json.partial").exists());
    }

    #[test]
    fn remove_deletes_the_file_and_tolerates_its_absence() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path());
        registry.started("gateway", Some(7)).unwrap();

        registry.remove().unwrap();
        assert!(!dir.path().join("pids.json").exists());
        registry.remove().unwrap();
    }
}
