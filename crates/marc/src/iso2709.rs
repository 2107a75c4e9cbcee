//! ISO 2709, the binary MARC exchange format (`.mrc`, `.dat`).
//!
//! [`Iso2709Reader`] frames records on the record terminator (0x1D), so a
//! damaged record costs only itself: it is reported with its index and
//! byte offset and reading resumes just after its terminator.
//! [`to_iso2709`] writes a record back, in UTF-8.

mod parse;
mod write;

use std::io::{self, BufRead, BufReader, Read};

use crate::error::{Damage, Position, RecordError};
use crate::record::Record;

pub use parse::parse_record;
pub use write::to_iso2709;

/// Ends a record.
pub(crate) const RECORD_TERMINATOR: u8 = 0x1D;
/// Ends a field, and the directory.
pub(crate) const FIELD_TERMINATOR: u8 = 0x1E;
/// Starts a subfield.
pub(crate) const SUBFIELD_DELIMITER: u8 = 0x1F;
/// The largest length a leader can state.
const MAX_RECORD_LEN: usize = 99_999;

/// Reads ISO 2709 records one at a time.
///
/// Yields `Ok(record)` for each readable record and
/// [`RecordError::Damaged`] for each damaged one, then goes on. An I/O
/// error ends the iteration. Bytes between records that are line breaks,
/// spaces or NUL are skipped. Never panics, whatever the input.
///
/// ```
/// use lectern_marc::iso2709::Iso2709Reader;
///
/// let bytes: &[u8] = b"00026     2200025   4500\x1e\x1d";
/// let records: Vec<_> = Iso2709Reader::new(bytes).collect();
/// assert_eq!(records.len(), 1);
/// assert!(records[0].as_ref().unwrap().fields.is_empty());
/// ```
#[derive(Debug)]
pub struct Iso2709Reader<R> {
    input: R,
    /// Bytes of the record being framed (reused between records).
    buf: Vec<u8>,
    /// Offset of the next unread input byte.
    offset: u64,
    /// Index the next record or damaged record gets.
    index: usize,
    /// Offset of the chunk in `buf`.
    chunk_offset: u64,
    /// Where in `buf` a record found inside a damaged chunk starts; it is
    /// yielded before anything new is read.
    embedded: Option<usize>,
    done: bool,
}

impl<R: Read> Iso2709Reader<BufReader<R>> {
    /// Reads from any [`Read`], buffering it.
    pub fn from_reader(input: R) -> Self {
        Self::new(BufReader::new(input))
    }
}

impl<R: BufRead> Iso2709Reader<R> {
    /// Reads from a buffered input; a byte slice is one.
    pub fn new(input: R) -> Self {
        Self {
            input,
            buf: Vec::with_capacity(4096),
            offset: 0,
            index: 0,
            chunk_offset: 0,
            embedded: None,
            done: false,
        }
    }

    /// Skips separators, then frames the next record into `self.buf`.
    /// Returns where it started and whether its terminator was found, or
    /// `None` at the end of the input.
    fn frame(&mut self) -> io::Result<Option<(u64, Framed)>> {
        self.buf.clear();
        if !self.skip_separators()? {
            return Ok(None);
        }

        let start = self.offset;
        let framed = self.read_to_terminator()?;

        Ok(Some((start, framed)))
    }

    /// Consumes bytes that may sit between records. Returns whether any
    /// input is left.
    fn skip_separators(&mut self) -> io::Result<bool> {
        loop {
            let available = fill(&mut self.input)?;
            if available.is_empty() {
                return Ok(false);
            }

            let skip = available
                .iter()
                .take_while(|&&b| matches!(b, b'\n' | b'\r' | b' ' | b'\t' | 0))
                .count();
            let more = skip < available.len();
            self.consume(skip);

            if more {
                return Ok(true);
            }
        }
    }

    /// Reads up to and including the next record terminator, keeping at
    /// most [`MAX_RECORD_LEN`] bytes.
    fn read_to_terminator(&mut self) -> io::Result<Framed> {
        let mut seen = 0usize;

        loop {
            let available = fill(&mut self.input)?;
            if available.is_empty() {
                return Ok(Framed::Truncated(seen));
            }

            let (take, found) = match memchr::memchr(RECORD_TERMINATOR, available) {
                Some(at) => (at + 1, true),
                None => (available.len(), false),
            };
            let room = (MAX_RECORD_LEN + 1).saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&available[..take.min(room)]);
            seen += take;
            self.consume(take);

            if found {
                return Ok(if seen > MAX_RECORD_LEN {
                    Framed::TooLong
                } else {
                    Framed::Complete
                });
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.input.consume(n);
        self.offset += n as u64;
    }

    /// Parses the chunk in `buf`. A chunk whose length is wrong may hold
    /// a whole record after the damaged part; that record is kept for the
    /// next call, so a lost terminator costs one record, not two.
    fn parse_chunk(&mut self) -> Result<Record, Damage> {
        let damage = match parse_record(&self.buf) {
            Ok(record) => return Ok(record),
            Err(damage) => damage,
        };
        let length = matches!(
            damage,
            Damage::LengthNotNumeric(_) | Damage::LengthMismatch { .. }
        );

        match parse::embedded_record(&self.buf).filter(|_| length) {
            Some(start) => {
                self.embedded = Some(start);
                Err(parse::length_damage(&self.buf[..start]))
            }
            None => Err(damage),
        }
    }

    /// Yields the record found inside the last damaged chunk.
    fn take_embedded(&mut self) -> Option<Result<Record, RecordError>> {
        let start = self.embedded.take()?;
        let position = self.next_position(self.chunk_offset + start as u64);
        let parsed = parse_record(&self.buf[start..]);

        Some(parsed.map_err(|damage| RecordError::Damaged { position, damage }))
    }

    fn next_position(&mut self, offset: u64) -> Position {
        let position = Position {
            index: self.index,
            offset,
        };
        self.index += 1;

        position
    }
}

/// `fill_buf`, retried when a signal interrupted it.
fn fill<R: BufRead>(input: &mut R) -> io::Result<&[u8]> {
    // Asking twice keeps the borrow checker happy: the second call only
    // hands back what the first one buffered.
    while let Err(e) = input.fill_buf() {
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }

    input.fill_buf()
}

/// How framing one record ended.
enum Framed {
    /// Found its terminator.
    Complete,
    /// Found its terminator, too far away for a real record.
    TooLong,
    /// The input ended after this many bytes.
    Truncated(usize),
}

impl<R: BufRead> Iterator for Iso2709Reader<R> {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(item) = self.take_embedded() {
            return Some(item);
        }
        if self.done {
            return None;
        }

        let (offset, framed) = match self.frame() {
            Ok(Some(found)) => found,
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(source) => {
                self.done = true;
                let offset = self.offset;
                return Some(Err(RecordError::Io { offset, source }));
            }
        };

        self.chunk_offset = offset;
        let position = self.next_position(offset);
        let parsed = match framed {
            Framed::Complete => self.parse_chunk(),
            Framed::TooLong => Err(Damage::TooLong),
            Framed::Truncated(len) => Err(Damage::Truncated(len)),
        };

        Some(parsed.map_err(|damage| RecordError::Damaged { position, damage }))
    }
}

impl<R: BufRead> std::iter::FusedIterator for Iso2709Reader<R> {}
