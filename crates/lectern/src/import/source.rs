//! Reading one MARC file into batches of catalogue records.
//!
//! Runs on a blocking thread (parsing is CPU work on a synchronous
//! reader) and hands batches to the uploader through a small channel, so
//! reading the next batch overlaps sending the last one. A damaged
//! record, or one without a title (which the catalogue would refuse,
//! failing its whole batch), is reported and skipped; the reader goes on.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lectern_marc::bib::{self, BibRecord};
use lectern_marc::iso2709::Iso2709Reader;
use lectern_marc::marcxml::MarcXmlReader;
use lectern_marc::{Format, RecordError, Records};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// How a file's format is chosen: by its extension, else by its first
/// byte.
pub(crate) fn format_by_name(path: &Path) -> Option<Format> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();

    match extension.as_str() {
        "mrc" | "dat" | "marc" => Some(Format::Iso2709),
        "xml" => Some(Format::MarcXml),
        _ => None,
    }
}

/// Records ready to send, in file order.
#[derive(Debug)]
pub(crate) struct Batch {
    /// 0-based number of the batch within its file.
    pub(crate) number: usize,
    /// The `Idempotency-Key` every try of this batch carries.
    pub(crate) key: String,
    /// The records.
    pub(crate) records: Vec<BibRecord>,
    /// Bytes of the file read when the batch was complete.
    pub(crate) bytes_read: u64,
}

/// What the reader tells the uploader.
#[derive(Debug)]
pub(crate) enum Item {
    /// A batch to send.
    Batch(Batch),
    /// A record that is not sent.
    Skipped {
        /// Its index among the file's records (damaged ones included).
        index: usize,
        /// Where it starts, when the reader knows.
        offset: Option<u64>,
        /// Why.
        reason: String,
    },
    /// The rest of the file cannot be read; nothing follows.
    Stopped(String),
}

/// What one reading needs besides the file.
#[derive(Debug, Clone)]
pub(crate) struct ReadOptions {
    /// Records per batch.
    pub(crate) batch_size: usize,
    /// Unique to this run of the importer (see [`batch_key`]).
    pub(crate) run: String,
}

/// Reads `path`, sending its items on `tx` until the file ends or the
/// receiver is gone. Blocking: run it on a blocking thread.
pub(crate) fn read(path: &Path, options: &ReadOptions, tx: &mpsc::Sender<Item>) {
    let send = |item| tx.blocking_send(item).is_ok();

    let hash = match file_hash(path) {
        Ok(hash) => hash,
        Err(error) => {
            send(Item::Stopped(format!("cannot read it: {error}")));
            return;
        }
    };
    let (records, bytes) = match open(path) {
        Ok(opened) => opened,
        Err(error) => {
            send(Item::Stopped(format!("cannot read it: {error}")));
            return;
        }
    };

    let mut batcher = Batcher::new(options, hash, bytes);
    for (index, result) in records.enumerate() {
        let item = match result {
            Ok(record) => batcher.push(index, bib::from_record(&record)),
            Err(error) => Some(skipped_or_stopped(index, error)),
        };
        let stop = matches!(item, Some(Item::Stopped(_)));
        if item.is_some_and(|item| !send(item)) || stop {
            return;
        }
    }
    if let Some(batch) = batcher.finish() {
        send(batch);
    }
}

/// Collects records into batches.
struct Batcher {
    size: usize,
    run: String,
    hash: String,
    bytes: Arc<AtomicU64>,
    number: usize,
    records: Vec<BibRecord>,
}

impl Batcher {
    fn new(options: &ReadOptions, hash: String, bytes: Arc<AtomicU64>) -> Self {
        Self {
            size: options.batch_size.max(1),
            run: options.run.clone(),
            hash,
            bytes,
            number: 0,
            records: Vec::with_capacity(options.batch_size),
        }
    }

    /// Adds a record; answers a full batch, or why the record is skipped.
    fn push(&mut self, index: usize, record: BibRecord) -> Option<Item> {
        if record.title.trim().is_empty() {
            return Some(Item::Skipped {
                index,
                offset: None,
                reason: "it has no title (245 $a)".into(),
            });
        }
        self.records.push(record);

        (self.records.len() >= self.size).then(|| self.take())
    }

    fn finish(mut self) -> Option<Item> {
        (!self.records.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> Item {
        let fresh = Vec::with_capacity(self.size);
        let records = std::mem::replace(&mut self.records, fresh);
        let number = self.number;
        self.number += 1;

        Item::Batch(Batch {
            number,
            key: batch_key(&self.run, &self.hash, number),
            records,
            bytes_read: self.bytes.load(Ordering::Relaxed),
        })
    }
}

/// The `Idempotency-Key` of a batch: the run, the file's SHA-256 and the
/// batch's number. Retries of a batch within a run carry the same key,
/// so a batch stored before its answer was lost is not stored twice; a
/// later run has another key, so importing the file again really upserts
/// again (and reports the records as updated).
pub(crate) fn batch_key(run: &str, file_hash: &str, number: usize) -> String {
    let short = file_hash.get(..32).unwrap_or(file_hash);

    format!("lectern-import-{run}-{short}-{number}")
}

fn skipped_or_stopped(index: usize, error: RecordError) -> Item {
    match error.position() {
        Some(position) if !error.is_fatal() => Item::Skipped {
            index: position.index,
            offset: Some(position.offset),
            reason: error
                .damage()
                .map_or_else(|| error.to_string(), ToString::to_string),
        },
        _ => Item::Stopped(format!("reading stopped at record {index}: {error}")),
    }
}

/// The file's records, and a counter of the bytes read so far.
fn open(path: &Path) -> io::Result<(Records<BufReader<Counting>>, Arc<AtomicU64>)> {
    let bytes = Arc::new(AtomicU64::new(0));
    let counting = Counting {
        inner: File::open(path)?,
        count: bytes.clone(),
    };
    let input = BufReader::with_capacity(64 * 1024, counting);

    let records = match format_by_name(path) {
        Some(Format::Iso2709) => Records::Iso2709(Iso2709Reader::new(input)),
        Some(Format::MarcXml) => Records::MarcXml(MarcXmlReader::new(input)),
        None => lectern_marc::records(input)?,
    };

    Ok((records, bytes))
}

/// SHA-256 of the file, as hex.
fn file_hash(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher)?;

    Ok(format!("{:x}", hasher.finalize()))
}

/// A reader that counts the bytes it hands out.
struct Counting {
    inner: File,
    count: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);

        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn shared(name: &str) -> PathBuf {
        let dir = env!("CARGO_MANIFEST_DIR");
        Path::new(dir).join("../../../shared/data/marc").join(name)
    }

    /// Reads a whole file through the channel, as the uploader would.
    fn read_all(path: &Path, batch_size: usize) -> Vec<Item> {
        let (tx, mut rx) = mpsc::channel(1024);
        let options = ReadOptions {
            batch_size,
            run: "r1".into(),
        };
        read(path, &options, &tx);
        drop(tx);

        let mut items = Vec::new();
        while let Ok(item) = rx.try_recv() {
            items.push(item);
        }
        items
    }

    fn batches(items: &[Item]) -> Vec<&Batch> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Batch(b) => Some(b),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn formats_come_from_the_extension_first() {
        let by = |name: &str| format_by_name(Path::new(name));

        assert_eq!(by("a.mrc"), Some(Format::Iso2709));
        assert_eq!(by("a.DAT"), Some(Format::Iso2709));
        assert_eq!(by("dir/a.marc"), Some(Format::Iso2709));
        assert_eq!(by("a.xml"), Some(Format::MarcXml));
        assert_eq!(by("a.txt"), None);
        assert_eq!(by("records"), None);
    }

    #[test]
    fn a_file_is_cut_into_numbered_batches_with_stable_keys() {
        let items = read_all(&shared("jazz_1k.mrc"), 300);
        let found = batches(&items);

        let sizes: Vec<usize> = found.iter().map(|b| b.records.len()).collect();
        assert_eq!(sizes, [300, 300, 300, 100]);
        let numbers: Vec<usize> = found.iter().map(|b| b.number).collect();
        assert_eq!(numbers, [0, 1, 2, 3]);
        assert!(found[0].key.starts_with("lectern-import-r1-"));
        assert!(found[3].key.ends_with("-3"));
        assert_eq!(items.len(), 4, "no record of this file is skipped");

        let again = read_all(&shared("jazz_1k.mrc"), 300);
        assert_eq!(batches(&again)[2].key, found[2].key);
        let total = std::fs::metadata(shared("jazz_1k.mrc")).unwrap().len();
        assert_eq!(found[3].bytes_read, total);
    }

    #[test]
    fn damaged_records_are_skipped_with_their_position() {
        let items = read_all(&shared("pymarc-bad_records.mrc"), 500);

        let skipped: Vec<(usize, Option<u64>)> = items
            .iter()
            .filter_map(|i| match i {
                Item::Skipped { index, offset, .. } => Some((*index, *offset)),
                _ => None,
            })
            .collect();
        let damaged = [(1, 127), (2, 254), (3, 381), (4, 509), (5, 637)]
            .map(|(index, offset)| (index, Some(offset)));
        assert_eq!(skipped[..5], damaged, "{items:?}");
        // A readable record without 245 is skipped too, without offset.
        assert_eq!(skipped[5], (6, None), "{items:?}");
        assert_eq!(batches(&items)[0].records.len(), 2);
    }

    #[test]
    fn marcxml_is_recognised_without_an_extension() {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("records");
        std::fs::copy(shared("pymarc-utf8.xml"), &copy).unwrap();

        let items = read_all(&copy, 500);
        let found = batches(&items);
        assert_eq!(found.len(), 1, "{items:?}");
        assert!(!found[0].records[0].title.is_empty());
    }

    #[test]
    fn a_missing_file_stops_with_a_reason() {
        let items = read_all(Path::new("/nonexistent/x.mrc"), 10);

        assert_eq!(items.len(), 1);
        assert!(matches!(&items[0], Item::Stopped(why) if why.contains("cannot read")));
    }

    #[test]
    fn keys_differ_by_run_file_and_batch() {
        let hash = "ab".repeat(32);
        let key = batch_key("run1", &hash, 7);

        assert_eq!(key, format!("lectern-import-run1-{}-7", "ab".repeat(16)));
        assert_ne!(key, batch_key("run2", &hash, 7));
        assert_ne!(key, batch_key("run1", &"cd".repeat(32), 7));
        assert_ne!(key, batch_key("run1", &hash, 8));
        assert!(key.len() <= 255);
    }
}
