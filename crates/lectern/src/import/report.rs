//! What the importer tells the human: a progress bar while it runs
//! (hidden when stderr is not a terminal), notes about skipped records and
//! failed batches on stderr, and the summary on stdout at the end.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lectern_marc::bib::BibRecord;

use super::api::ImportCounts;

/// The running totals of an import.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Records in batches the catalogue stored.
    pub(crate) stored: u64,
    /// Of those, new records.
    pub(crate) imported: u64,
    /// Of those, records that existed and were updated.
    pub(crate) updated: u64,
    /// Copies written.
    pub(crate) copies: u64,
    /// Records not sent: damaged, or without a title.
    pub(crate) skipped: u64,
    /// Invalid ISBNs in stored records, kept and flagged as invalid.
    pub(crate) invalid_isbns: u64,
    /// Batches the catalogue did not store.
    pub(crate) failed_batches: u64,
    /// Records in those batches.
    pub(crate) failed_records: u64,
    /// Files that could not be read to their end.
    pub(crate) unreadable_files: u64,
}

impl Totals {
    /// Counts a stored batch.
    pub(crate) fn stored(&mut self, records: &[BibRecord], counts: ImportCounts) {
        self.stored += records.len() as u64;
        self.imported += counts.imported;
        self.updated += counts.updated;
        self.copies += counts.copies;
        self.invalid_isbns += records
            .iter()
            .flat_map(|r| &r.isbns)
            .filter(|isbn| !isbn.valid)
            .count() as u64;
    }

    /// Counts a batch that was not stored.
    pub(crate) fn failed(&mut self, records: &[BibRecord]) {
        self.failed_batches += 1;
        self.failed_records += records.len() as u64;
    }

    /// Whether everything read was stored (skipped records allowed) and
    /// there was something to store: a file with no MARC record in it,
    /// empty or not MARC at all, is a failed import, not a quiet success.
    pub(crate) fn complete(&self) -> bool {
        self.failed_batches == 0 && self.unreadable_files == 0 && self.stored > 0
    }

    /// The summary printed at the end.
    pub(crate) fn summary(&self, files: usize, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64();
        let rate = per_second(self.stored, elapsed);
        let mut text = format!(
            "lectern import: {} records stored from {files} file(s) in {secs:.1} s\n",
            self.stored
        );
        let rows = [
            ("imported", self.imported.to_string()),
            ("updated", self.updated.to_string()),
            ("skipped", self.skipped.to_string()),
            ("copies", self.copies.to_string()),
            ("invalid ISBNs flagged", self.invalid_isbns.to_string()),
            ("failed batches", self.failed_batches.to_string()),
            ("records/s", format!("{rate:.0}")),
        ];
        for (label, value) in rows {
            // Writing to a String cannot fail.
            let _ = writeln!(text, "  {:<22} {value}", format!("{label}:"));
        }
        if self.failed_batches > 0 || self.unreadable_files > 0 {
            let _ = writeln!(
                text,
                "  not stored: {} records in failed batches; {} file(s) not \
                 read to the end",
                self.failed_records, self.unreadable_files
            );
        }
        if self.stored == 0 && self.failed_batches == 0 {
            let _ = writeln!(
                text,
                "  no MARC record was found to store: is this a MARC21 \
                 (ISO 2709) or MARCXML file?"
            );
        }

        text
    }
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// The progress bar: bytes of input done, with records and rate in its
/// message, so the ETA follows the files' sizes.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: ProgressBar,
    started: Instant,
}

impl Progress {
    /// A bar over `total_bytes`, drawn only when stderr is a terminal.
    pub(crate) fn new(total_bytes: u64) -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let template = "{spinner} [{elapsed_precise}] [{wide_bar}] \
                        {percent:>3}% {msg} (ETA {eta})";
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(total_bytes), target);
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));

        Self {
            bar,
            started: Instant::now(),
        }
    }

    /// Moves the bar to `bytes` done with `records` stored so far.
    pub(crate) fn update(&self, bytes: u64, records: u64) {
        let rate = per_second(records, self.started.elapsed());
        self.bar.set_position(bytes);
        self.bar
            .set_message(format!("{records} records, {rate:.0}/s"));
    }

    /// Prints a line on stderr without tearing the bar.
    pub(crate) fn note(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use lectern_marc::bib::Isbn;

    use super::*;

    fn record(valid: &[bool]) -> BibRecord {
        BibRecord {
            source_id: None,
            title: "T".into(),
            authors: vec![],
            subjects: vec![],
            isbns: valid
                .iter()
                .map(|v| Isbn {
                    value: "x".into(),
                    valid: *v,
                })
                .collect(),
            publisher: None,
            year: None,
            material: "book".into(),
            language: None,
            copies: vec![],
            warnings: vec![],
        }
    }

    #[test]
    fn an_import_that_stored_nothing_is_not_complete() {
        let nothing_read = Totals::default();
        let all_skipped = Totals {
            skipped: 197,
            ..Totals::default()
        };
        let one_stored = Totals {
            stored: 1,
            skipped: 5,
            ..Totals::default()
        };

        assert!(!nothing_read.complete());
        assert!(!all_skipped.complete());
        assert!(one_stored.complete());
    }

    #[test]
    fn stored_batches_add_up_and_invalid_isbns_are_counted() {
        let mut totals = Totals::default();
        let batch = [record(&[true, false]), record(&[false])];
        let counts = ImportCounts {
            imported: 1,
            updated: 1,
            copies: 3,
        };
        totals.stored(&batch, counts);
        totals.stored(&batch, counts);

        assert_eq!(totals.stored, 4);
        assert_eq!(totals.imported, 2);
        assert_eq!(totals.updated, 2);
        assert_eq!(totals.copies, 6);
        assert_eq!(totals.invalid_isbns, 4);
        assert!(totals.complete());

        totals.failed(&batch);
        assert!(!totals.complete());
        assert_eq!(totals.failed_records, 2);
    }

    #[test]
    fn the_summary_lists_every_count() {
        let totals = Totals {
            stored: 1000,
            imported: 990,
            updated: 10,
            copies: 1238,
            skipped: 2,
            invalid_isbns: 5,
            ..Totals::default()
        };
        let text = totals.summary(1, Duration::from_secs(4));

        let value = |label: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(&format!("{label}:")))
                .map(str::trim)
                .unwrap_or_else(|| panic!("{label} missing in {text}"))
                .to_owned()
        };
        assert_eq!(value("imported"), "990");
        assert_eq!(value("updated"), "10");
        assert_eq!(value("skipped"), "2");
        assert_eq!(value("copies"), "1238");
        assert_eq!(value("invalid ISBNs flagged"), "5");
        assert_eq!(value("failed batches"), "0");
        assert_eq!(value("records/s"), "250");
        assert!(!text.contains("not stored"));
    }
}
