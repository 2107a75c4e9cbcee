//! Telling ISO 2709 from MARCXML by the first bytes, so an importer can
//! take either file without being told which.

use std::io::{self, BufRead};

use crate::error::RecordError;
use crate::iso2709::Iso2709Reader;
use crate::marcxml::MarcXmlReader;
use crate::record::Record;

/// The two MARC serialisations this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Binary ISO 2709.
    Iso2709,
    /// MARCXML.
    MarcXml,
}

impl Format {
    /// MARCXML when the first byte after a byte-order mark and whitespace
    /// is `<`, else ISO 2709 (whose records open with digits).
    pub fn sniff(head: &[u8]) -> Self {
        let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
        let first = head.iter().find(|b| !b.is_ascii_whitespace());

        if first == Some(&b'<') {
            Format::MarcXml
        } else {
            Format::Iso2709
        }
    }
}

/// Records from either format; see [`records`].
#[derive(Debug)]
pub enum Records<R> {
    /// Reading ISO 2709.
    Iso2709(Iso2709Reader<R>),
    /// Reading MARCXML.
    MarcXml(MarcXmlReader<R>),
}

/// Looks at the start of `input` and reads it with the matching reader.
///
/// # Errors
///
/// The I/O error, if the first read fails.
pub fn records<R: BufRead>(mut input: R) -> io::Result<Records<R>> {
    let format = Format::sniff(input.fill_buf()?);

    Ok(match format {
        Format::Iso2709 => Records::Iso2709(Iso2709Reader::new(input)),
        Format::MarcXml => Records::MarcXml(MarcXmlReader::new(input)),
    })
}

impl<R: BufRead> Iterator for Records<R> {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Records::Iso2709(reader) => reader.next(),
            Records::MarcXml(reader) => reader.next(),
        }
    }
}
