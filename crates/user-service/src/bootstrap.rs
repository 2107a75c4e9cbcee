//! The first admin account, made on the first start.
//!
//! When no admin exists, `admin` is created with `LECTERN_ADMIN_PASSWORD`
//! or, when that is unset, a generated password that is printed once on
//! stderr (not in the JSON logs) and saved in `$LECTERN_DATA_DIR/
//! admin-password`, readable by this user only.
//!
//! Replicas starting together cannot make two admins: the username is
//! unique, and the one whose insert fails leaves it to the one that won.
//! The password file is written inside the transaction that creates the
//! account, before it commits: if the process dies in between, no account
//! exists and the next start writes a new file for a new password.

use std::io::Write;
use std::path::{Path, PathBuf};

use lectern_platform::auth::Role;
use lectern_platform::db::{is_unique_violation, Database};

use crate::accounts::store;
use crate::passwords::{random_password, HashError, Passwords};
use crate::Config;

/// The first admin's username.
pub(crate) const ADMIN_USERNAME: &str = "admin";

/// The file, in the data directory, that holds a generated password.
pub(crate) const PASSWORD_FILE: &str = "admin-password";

/// Why the first admin could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BootstrapError {
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The password could not be hashed.
    #[error("cannot hash the admin password")]
    Hashing(#[from] HashError),
    /// The password file could not be written.
    #[error("cannot write the admin password to {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Creates `admin` unless an admin account exists.
pub(crate) async fn ensure_admin(
    db: &Database,
    passwords: &Passwords,
    config: &Config,
) -> Result<(), BootstrapError> {
    if store::admin_exists(&db.pool).await? {
        return Ok(());
    }
    let generated = config.admin_password.is_none();
    let password = config
        .admin_password
        .clone()
        .unwrap_or_else(random_password);
    let hash = passwords.hash(password.clone()).await?;

    let mut tx = db.pool.begin().await?;
    let inserted = store::insert(&mut tx, ADMIN_USERNAME, &hash, Role::Admin).await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            tx.rollback().await?;
            return Ok(someone_else_made_it(db).await?);
        }
        Err(e) => return Err(e.into()),
    }
    let file = if generated {
        Some(save_password(&config.data_dir, &password).await?)
    } else {
        None
    };
    tx.commit().await?;

    tracing::info!(
        event.action = "admin-created",
        user.target.name = ADMIN_USERNAME,
        "Created the first admin account"
    );
    if let Some(file) = file {
        announce(&password, &file);
    }
    Ok(())
}

/// Another replica created `admin` first; says so, or warns when the name
/// belongs to an account that is not an admin.
async fn someone_else_made_it(db: &Database) -> Result<(), sqlx::Error> {
    if store::admin_exists(&db.pool).await? {
        tracing::info!(
            event.action = "admin-bootstrap-skipped",
            "Another replica created the first admin account"
        );
    } else {
        tracing::warn!(
            event.action = "admin-bootstrap-blocked",
            "No admin account exists, and the name admin is taken by an \
             account that is not an admin"
        );
    }
    Ok(())
}

/// Prints the generated password once, for the person starting Lectern.
fn announce(password: &str, file: &Path) {
    eprintln!(
        "\nLectern created the first admin account.\n  \
         username: {ADMIN_USERNAME}\n  \
         password: {password}\n\
         The password is also saved in {}, readable only by this user.\n\
         Sign in, keep it somewhere safe, and it will not be shown again.\n",
        file.display()
    );
}

async fn save_password(dir: &Path, password: &str) -> Result<PathBuf, BootstrapError> {
    let dir = dir.to_owned();
    let content = format!("{password}\n");
    let path = dir.join(PASSWORD_FILE);
    let target = path.clone();
    let write = move || write_secret(&dir, &target, &content);
    let written = match tokio::task::spawn_blocking(write).await {
        Ok(result) => result,
        Err(e) => Err(std::io::Error::other(e.to_string())),
    };
    match written {
        Ok(()) => Ok(path),
        Err(source) => Err(BootstrapError::File { path, source }),
    }
}

/// Writes `content` to `target` so that no other user can read it at any
/// moment: a new file created with mode 0600, synced, then renamed over
/// `target` (replacing, never following, whatever was there).
fn write_secret(dir: &Path, target: &Path, content: &str) -> std::io::Result<()> {
    create_private_dir(dir)?;
    let unique = uuid::Uuid::new_v4().simple();
    let temp = dir.join(format!(".{PASSWORD_FILE}.{unique}.tmp"));
    let written = write_new_private(&temp, content);
    let result = written.and_then(|()| std::fs::rename(&temp, target));
    if result.is_err() {
        drop(std::fs::remove_file(&temp));
    }
    result?;
    sync_dir(dir);
    Ok(())
}

fn write_new_private(path: &Path, content: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    // Limitation: off unix the file gets the platform's default access.
    let mut file = options.open(path)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Makes the rename durable where the platform allows syncing a directory.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = std::fs::File::open(dir) {
        drop(handle.sync_all());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_replace_old_files_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(PASSWORD_FILE);
        std::fs::write(&target, "old").unwrap();

        write_secret(dir.path(), &target, "new\n").unwrap();

        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }
}
