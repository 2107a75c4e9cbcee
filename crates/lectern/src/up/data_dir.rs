//! The data directory of a local system: created when missing, made
//! absolute (children run with paths that must not depend on their working
//! directory), and locked so two supervisors never share it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The lock file's name inside the data directory.
const LOCK_FILE: &str = "lectern.lock";

/// The data directory could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DataDirError {
    /// Creating or resolving it failed.
    #[error("cannot create the data directory {path}")]
    Create {
        /// The directory as given.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Its lock file could not be opened or locked.
    #[error("cannot lock {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Another supervisor holds it.
    #[error(
        "another `lectern up` is using {0}; stop it first or choose \
         another --data-dir"
    )]
    InUse(PathBuf),
}

/// A created, absolute, locked data directory. The lock is released when
/// this is dropped (or the process ends, however it ends).
#[derive(Debug)]
pub(crate) struct DataDir {
    path: PathBuf,
    _lock: Flock<File>,
}

impl DataDir {
    /// Creates `path` when missing, resolves it and locks it.
    pub(crate) fn open(path: &Path) -> Result<Self, DataDirError> {
        let create_error = |source| DataDirError::Create {
            path: path.to_owned(),
            source,
        };
        fs::create_dir_all(path).map_err(create_error)?;
        let path = fs::canonicalize(path).map_err(create_error)?;
        let lock = lock(&path)?;

        Ok(Self { path, _lock: lock })
    }

    /// The absolute path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A file inside it.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

fn lock(dir: &Path) -> Result<Flock<File>, DataDirError> {
    let path = dir.join(LOCK_FILE);
    let lock_error = |source| DataDirError::Lock {
        path: path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(lock_error)?;

    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((_, Errno::EWOULDBLOCK)) => Err(DataDirError::InUse(dir.to_owned())),
        Err((_, errno)) => Err(lock_error(io::Error::from(errno))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_created_and_made_absolute() {
        let base = tempfile::tempdir().unwrap();
        let wanted = base.path().join("a/b/../c");

        let dir = DataDir::open(&wanted).unwrap();
        assert!(dir.path().is_absolute());
        assert!(dir.path().is_dir());
        assert!(dir.path().ends_with("a/c"));
        assert_eq!(dir.file("book.db"), dir.path().join("book.db"));
    }

    #[test]
    fn a_second_supervisor_is_refused_until_the_first_lets_go() {
        let base = tempfile::tempdir().unwrap();

        let first = DataDir::open(base.path()).unwrap();
        let second = DataDir::open(base.path()).unwrap_err();
        assert!(matches!(second, DataDirError::InUse(_)), "{second}");

        drop(first);
        assert!(DataDir::open(base.path()).is_ok());
    }
}
