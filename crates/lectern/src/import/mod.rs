//! `lectern import`: MARC files into the catalogue, through the gateway.
//!
//! Signs in, then for each file reads its records (ISO 2709 or MARCXML),
//! maps each with `lectern_marc::bib::from_record`, and posts them in
//! batches to `POST /api/books/import`, each batch with its own
//! `Idempotency-Key`. A batch whose call gets no answer, or a 429, 502,
//! 503 or 504, is tried again with backoff, at most five times; an
//! expired token is renewed once. Damaged records are reported with
//! file, index and byte offset, and skipped. Exits 0 when every batch was
//! stored, 1 when any was not, when a file could not be read to its end,
//! or when no record at all was found to store; 2 when no password is
//! available.

mod api;
mod report;
mod source;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::mpsc;

use crate::cli::ImportArgs;
use api::{Api, CallError, MAX_TRIES};
use report::{Progress, Totals};
use source::{Batch, Item, ReadOptions};

/// The variable a password may come in instead of a file.
const PASSWORD_VAR: &str = "LECTERN_PASSWORD";

/// The longest one call may take; a batch of 1000 records with their
/// copies is written in one transaction.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// No password could be found.
#[derive(Debug, thiserror::Error)]
#[error(
    "no password: set {PASSWORD_VAR} or point --password-file at a file \
     holding it (cannot read {path}: {source})"
)]
struct NoPassword {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// Runs `lectern import`.
pub(crate) async fn run(args: ImportArgs) -> ExitCode {
    let password = match password(&args.password_file) {
        Ok(password) => password,
        Err(error) => {
            eprintln!("lectern import: {error}");
            return ExitCode::from(2);
        }
    };

    match import(&args, &password).await {
        Ok(totals) if totals.complete() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("lectern import: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `LECTERN_PASSWORD`, else the first line of the password file.
fn password(file: &Path) -> Result<String, NoPassword> {
    if let Ok(password) = std::env::var(PASSWORD_VAR) {
        if !password.is_empty() {
            return Ok(password);
        }
    }
    let text = std::fs::read_to_string(file).map_err(|source| NoPassword {
        path: file.to_owned(),
        source,
    })?;

    Ok(text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_owned())
}

async fn import(args: &ImportArgs, password: &str) -> anyhow::Result<Totals> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(CALL_TIMEOUT)
        .build()
        .context("cannot make an HTTP client")?;
    let mut api = Api::new(http, &args.url)?;

    let total_bytes = args
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let progress = Progress::new(total_bytes);
    let mut session = Session {
        api: &mut api,
        user: &args.user,
        password,
        progress: &progress,
        totals: Totals::default(),
        bytes_before: 0,
    };
    let started = Instant::now();

    session.sign_in().await?;
    let options = ReadOptions {
        batch_size: usize::from(args.batch_size),
        run: uuid::Uuid::new_v4().simple().to_string(),
    };
    for file in &args.files {
        session.import_file(file, &options).await;
    }

    progress.finish();
    let totals = session.totals;
    print!("{}", totals.summary(args.files.len(), started.elapsed()));
    Ok(totals)
}

/// One run of the importer: the signed-in API, the bar and the totals.
struct Session<'a> {
    api: &'a mut Api,
    user: &'a str,
    password: &'a str,
    progress: &'a Progress,
    totals: Totals,
    /// Bytes of the files finished before the current one.
    bytes_before: u64,
}

impl Session<'_> {
    /// Signs in, trying again while the gateway cannot answer.
    async fn sign_in(&mut self) -> anyhow::Result<()> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.api.sign_in(self.user, self.password).await {
                Ok(()) => return Ok(()),
                Err(error) if error.retryable() && tries < MAX_TRIES => {
                    self.wait_to_retry("signing in", tries, &error).await;
                }
                Err(error) => {
                    let user = self.user;
                    return Err(error).context(format!("cannot sign in as {user}"));
                }
            }
        }
    }

    /// Reads `path` on a blocking thread and sends its batches.
    async fn import_file(&mut self, path: &Path, options: &ReadOptions) {
        let (tx, mut rx) = mpsc::channel(2);
        let reading = {
            let path = path.to_owned();
            let options = options.clone();
            tokio::task::spawn_blocking(move || source::read(&path, &options, &tx))
        };
        let name = path.display().to_string();

        while let Some(item) = rx.recv().await {
            match item {
                Item::Batch(batch) => self.send(&name, batch).await,
                Item::Skipped {
                    index,
                    offset,
                    reason,
                } => {
                    self.totals.skipped += 1;
                    let at = at_byte(offset);
                    self.progress
                        .note(&format!("{name}: skipped record {index}{at}: {reason}"));
                }
                Item::Stopped(reason) => {
                    self.totals.unreadable_files += 1;
                    self.progress.note(&format!("{name}: {reason}"));
                }
            }
        }

        if let Err(error) = reading.await {
            self.totals.unreadable_files += 1;
            self.progress
                .note(&format!("{name}: reading failed: {error}"));
        }
        self.bytes_before += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    }

    /// Sends one batch until it is stored, refused, or out of tries.
    async fn send(&mut self, file: &str, batch: Batch) {
        let body = Api::import_body(&batch.records);
        let what = format!("{file}: batch {}", batch.number);
        let mut tries = 0;
        let mut signed_in_again = false;

        let outcome = loop {
            tries += 1;
            match self.api.import(&batch.key, body.clone()).await {
                Err(error) if error.retryable() && tries < MAX_TRIES => {
                    self.wait_to_retry(&what, tries, &error).await;
                }
                Err(error) if error.is_unauthorized() && !signed_in_again => {
                    signed_in_again = true;
                    if let Err(error) = self.sign_in().await {
                        break Err(BatchError::SignIn(error));
                    }
                }
                other => break other.map_err(BatchError::Call),
            }
        };

        match outcome {
            Ok(counts) => self.totals.stored(&batch.records, counts),
            Err(error) => {
                self.totals.failed(&batch.records);
                let n = batch.records.len();
                self.progress
                    .note(&format!("{what} ({n} records) was not stored: {error}"));
            }
        }
        self.progress
            .update(self.bytes_before + batch.bytes_read, self.totals.stored);
    }

    async fn wait_to_retry(&self, what: &str, tries: u32, error: &CallError) {
        let delay = api::retry_delay(tries, error);
        self.progress.note(&format!(
            "{what}: {error}; trying again in {:.1} s (try {} of {MAX_TRIES})",
            delay.as_secs_f64(),
            tries + 1
        ));
        tokio::time::sleep(delay).await;
    }
}

/// " at byte N", when the offset is known.
fn at_byte(offset: Option<u64>) -> String {
    offset.map(|o| format!(" at byte {o}")).unwrap_or_default()
}

/// Why a batch was not stored.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    /// The import call failed.
    #[error(transparent)]
    Call(CallError),
    /// Signing in again, after the token was refused, failed.
    #[error("{0:#}")]
    SignIn(anyhow::Error),
}
