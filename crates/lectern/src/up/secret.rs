//! The token secret of a local system, kept in the data directory.
//!
//! Generated on the first start (32 random bytes, hex) and written with
//! mode 0600; read again on every later start, so tokens issued before a
//! restart stay valid.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The shortest secret the services accept.
const MIN_LEN: usize = 16;

/// The secret file could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretError {
    /// Reading, writing or protecting the file failed.
    #[error("cannot use the token secret file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file holds something too short to be a secret.
    #[error(
        "the token secret in {0} is shorter than {MIN_LEN} characters; \
         delete the file to make a new one (this signs everyone out)"
    )]
    TooShort(PathBuf),
}

/// What [`load_or_create`] found.
#[derive(Debug)]
pub(crate) struct Secret {
    /// The secret.
    pub(crate) value: String,
    /// Whether it was made just now.
    pub(crate) created: bool,
    /// Whether the file was readable by others and was made private.
    pub(crate) tightened: bool,
}

/// Reads the secret in `path`, or makes one there when it is missing.
pub(crate) fn load_or_create(path: &Path) -> Result<Secret, SecretError> {
    let io_error = |source| SecretError::Io {
        path: path.to_owned(),
        source,
    };

    match create(path) {
        Ok(value) => Ok(Secret {
            value,
            created: true,
            tightened: false,
        }),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let tightened = make_private(path).map_err(io_error)?;
            let value = read(path)?;
            Ok(Secret {
                value,
                created: false,
                tightened,
            })
        }
        Err(e) => Err(io_error(e)),
    }
}

/// Writes a new secret; fails with `AlreadyExists` when there is one.
fn create(path: &Path) -> io::Result<String> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let value = generate();
    file.write_all(format!("{value}\n").as_bytes())?;
    file.sync_all()?;

    Ok(value)
}

fn read(path: &Path) -> Result<String, SecretError> {
    let text = fs::read_to_string(path).map_err(|source| SecretError::Io {
        path: path.to_owned(),
        source,
    })?;
    let value = text.trim().to_owned();
    if value.len() < MIN_LEN {
        return Err(SecretError::TooShort(path.to_owned()));
    }

    Ok(value)
}

/// Sets mode 0600 when group or others may read the file; answers
/// whether it had to.
fn make_private(path: &Path) -> io::Result<bool> {
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(false);
    }
    fs::set_permissions(path, Permissions::from_mode(0o600))?;

    Ok(true)
}

/// 32 random bytes as 64 hex digits.
fn generate() -> String {
    let bytes: [u8; 32] = rand::random();

    bytes.iter().fold(String::with_capacity(64), |mut hex, b| {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_first_start_makes_a_private_secret_and_later_ones_reuse_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token-secret");

        let first = load_or_create(&path).unwrap();
        assert!(first.created);
        assert_eq!(first.value.len(), 64);
        assert!(first.value.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(mode(&path), 0o600);

        let again = load_or_create(&path).unwrap();
        assert!(!again.created);
        assert_eq!(again.value, first.value);
    }

    #[test]
    fn two_systems_get_different_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(&dir.path().join("a")).unwrap();
        let b = load_or_create(&dir.path().join("b")).unwrap();

        assert_ne!(a.value, b.value);
    }

    #[test]
    fn a_readable_secret_is_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token-secret");
        fs::write(&path, "0123456789abcdef0123\n").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();

        let secret = load_or_create(&path).unwrap();
        assert!(secret.tightened);
        assert_eq!(secret.value, "0123456789abcdef0123");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_short_secret_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token-secret");
        fs::write(&path, "short\n").unwrap();

        let err = load_or_create(&path).unwrap_err();
        assert!(matches!(err, SecretError::TooShort(_)), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "short\n");
    }
}
