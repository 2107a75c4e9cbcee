//! What can go wrong while reading and writing records.
//!
//! A damaged record is reported as a [`RecordError::Damaged`] with its
//! [`Position`]; the readers then carry on with the next record. Only a
//! failing input stream or XML that no longer parses ends a reader.

use std::fmt;
use std::io;

/// Where a record starts in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// 0-based index of the record among every record and damaged record
    /// met so far in this input.
    pub index: usize,
    /// Byte offset of the record's first byte in the input.
    pub offset: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record {} at byte {}", self.index, self.offset)
    }
}

/// Why one record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// Leader/00-04 is not five digits.
    #[error("the record length in the leader is not a number: {0:?}")]
    LengthNotNumeric(String),
    /// Leader/00-04 disagrees with where the record terminator is.
    #[error("the leader says {declared} bytes but the record has {actual}")]
    LengthMismatch {
        /// The length in the leader.
        declared: usize,
        /// The bytes up to and including the record terminator.
        actual: usize,
    },
    /// Fewer bytes than a leader before the record terminator.
    #[error("only {0} bytes before the record terminator")]
    TooShort(usize),
    /// More than 99 999 bytes without a record terminator.
    #[error("more than 99999 bytes without a record terminator")]
    TooLong,
    /// The input ended inside the record.
    #[error("the input ends after {0} bytes of this record")]
    Truncated(usize),
    /// Leader/12-16 is not a number, or points outside the record, or not
    /// just after a field terminator.
    #[error("bad base address of data: {0}")]
    BadBaseAddress(String),
    /// The directory cannot be read.
    #[error("bad directory: {0}")]
    BadDirectory(String),
    /// A MARCXML record whose structure cannot be read.
    #[error("bad MARCXML record: {0}")]
    BadXml(String),
}

/// A record that could not be read, or an input that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// One record is damaged; the reader goes on with the next one.
    #[error("{position}: {damage}")]
    Damaged {
        /// Where the damaged record starts.
        position: Position,
        /// What is wrong with it.
        damage: Damage,
    },
    /// Reading the input failed; the reader stops.
    #[error("reading the input failed before byte {offset}")]
    Io {
        /// Bytes consumed before the failure.
        offset: u64,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The MARCXML document stopped being well-formed; the reader stops.
    #[error("the XML is malformed near byte {offset}: {message}")]
    Syntax {
        /// Where the parser stopped.
        offset: u64,
        /// The parser's explanation.
        message: String,
    },
}

impl RecordError {
    /// Whether the reader stopped after this error (`false` means the
    /// next call may yield more records).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, RecordError::Damaged { .. })
    }

    /// Where the damaged record starts, for a damaged record.
    pub fn position(&self) -> Option<Position> {
        match self {
            RecordError::Damaged { position, .. } => Some(*position),
            _ => None,
        }
    }

    /// What is wrong, for a damaged record.
    pub fn damage(&self) -> Option<&Damage> {
        match self {
            RecordError::Damaged { damage, .. } => Some(damage),
            _ => None,
        }
    }
}

/// A record that cannot be written as ISO 2709.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// A value holds a byte that ISO 2709 reserves as a delimiter
    /// (0x1D, 0x1E or 0x1F).
    #[error("field {0} holds a MARC delimiter character")]
    Delimiter(String),
    /// A field is longer than the directory can describe (9 999 bytes).
    #[error("field {0} is longer than 9999 bytes")]
    FieldTooLong(String),
    /// The record is longer than the leader can describe (99 999 bytes).
    #[error("the record is longer than 99999 bytes")]
    RecordTooLong,
    /// A control field with a data tag, or the other way round, which a
    /// reader would not read back as the same kind.
    #[error("field {0} does not match the kind its tag implies")]
    KindMismatch(String),
    /// An indicator or subfield code that is not one printable ASCII byte.
    #[error("field {0} has an indicator or subfield code that is not ASCII")]
    NotAscii(String),
}
