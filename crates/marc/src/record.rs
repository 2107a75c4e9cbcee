//! The MARC record model: a leader, control fields and data fields.
//!
//! Every text here is already decoded to Unicode, whatever the record's
//! character set was on disk. The model knows nothing about ISO 2709 or
//! MARCXML; the readers in [`crate::iso2709`] and [`crate::marcxml`] build
//! it and [`crate::iso2709::to_iso2709`] writes it back.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The 24 bytes that open every MARC record, always ASCII.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Leader([u8; Leader::LEN]);

impl Leader {
    /// How long a leader is, in bytes.
    pub const LEN: usize = 24;

    /// Builds a leader from 24 ASCII bytes.
    ///
    /// Returns `None` when `bytes` is not exactly 24 printable ASCII bytes
    /// (space included).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let array: [u8; Self::LEN] = bytes.try_into().ok()?;

        array
            .iter()
            .all(|&b| is_printable(b))
            .then_some(Self(array))
    }

    /// Builds a leader from any bytes: too short is padded with spaces,
    /// too long is cut, and a byte that is not printable ASCII becomes a
    /// space. Returns the leader and whether anything had to be changed.
    pub fn lossy(bytes: &[u8]) -> (Self, bool) {
        let mut array = [b' '; Self::LEN];
        let mut changed = bytes.len() != Self::LEN;

        for (slot, &byte) in array.iter_mut().zip(bytes) {
            if is_printable(byte) {
                *slot = byte;
            } else {
                changed = true;
            }
        }

        (Self(array), changed)
    }

    /// The leader as text.
    pub fn as_str(&self) -> &str {
        // Every byte is printable ASCII (checked by each constructor), so
        // this conversion cannot fail; the fallback only keeps it total.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// The byte at `position` (0-based), as a character.
    pub fn at(&self, position: usize) -> char {
        self.0.get(position).map_or(' ', |&b| char::from(b))
    }

    /// Replaces the byte at `position` (0-based). Does nothing when the
    /// position is out of range or `value` is not printable ASCII.
    pub fn set(&mut self, position: usize, value: u8) {
        if let (Some(slot), true) = (self.0.get_mut(position), is_printable(value)) {
            *slot = value;
        }
    }

    /// Leader/05: record status (`n` new, `c` corrected, `d` deleted, ...).
    pub fn status(&self) -> char {
        self.at(5)
    }

    /// Leader/06: type of record (`a` language material, `j` musical
    /// sound recording, ...).
    pub fn record_type(&self) -> char {
        self.at(6)
    }

    /// Leader/07: bibliographic level (`m` monograph, `s` serial, ...).
    pub fn bibliographic_level(&self) -> char {
        self.at(7)
    }

    /// Leader/09: character coding scheme, blank for MARC-8, `a` for UTF-8.
    pub fn coding(&self) -> char {
        self.at(9)
    }
}

impl Default for Leader {
    /// A leader for a new, empty UTF-8 record of a book.
    fn default() -> Self {
        Self(*b"00000nam a2200000   4500")
    }
}

impl fmt::Debug for Leader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Leader({:?})", self.as_str())
    }
}

impl fmt::Display for Leader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Leader> for String {
    fn from(leader: Leader) -> Self {
        leader.as_str().to_owned()
    }
}

impl TryFrom<String> for Leader {
    type Error = InvalidLeader;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::from_bytes(text.as_bytes()).ok_or(InvalidLeader)
    }
}

/// A leader that is not 24 printable ASCII characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a leader is 24 printable ASCII characters")]
pub struct InvalidLeader;

/// A field tag: three printable ASCII characters, usually digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag([u8; 3]);

impl Tag {
    /// Builds a tag from three printable ASCII bytes (no space).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let array: [u8; 3] = bytes.try_into().ok()?;

        array
            .iter()
            .all(u8::is_ascii_graphic)
            .then_some(Self(array))
    }

    /// Builds a tag from text such as `"245"`.
    pub fn new(text: &str) -> Option<Self> {
        Self::from_bytes(text.as_bytes())
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        // Printable ASCII only (checked by the constructors).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Whether MARC 21 makes this a control field (tags `001` to `009`,
    /// and `00X` in general): no indicators, no subfields.
    pub fn is_control(&self) -> bool {
        self.0[0] == b'0' && self.0[1] == b'0'
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.as_str())
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Tag {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<Tag> for String {
    fn from(tag: Tag) -> Self {
        tag.as_str().to_owned()
    }
}

impl TryFrom<String> for Tag {
    type Error = InvalidTag;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::new(&text).ok_or(InvalidTag)
    }
}

/// A tag that is not three printable ASCII characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a tag is three printable ASCII characters")]
pub struct InvalidTag;

/// One subfield of a data field: a one-character code and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subfield {
    /// The code, such as `a` in `$a`.
    pub code: char,
    /// The text, decoded.
    pub value: String,
}

/// A control field (`001` to `009`): a tag and unstructured text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlField {
    /// The tag.
    pub tag: Tag,
    /// The text, decoded.
    pub value: String,
}

/// A data field: a tag, two indicators and subfields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataField {
    /// The tag.
    pub tag: Tag,
    /// First indicator (space when undefined).
    pub ind1: char,
    /// Second indicator (space when undefined).
    pub ind2: char,
    /// The subfields in their order in the record.
    pub subfields: Vec<Subfield>,
}

impl DataField {
    /// The values of every subfield with `code`, in order.
    pub fn values(&self, code: char) -> impl Iterator<Item = &str> {
        self.subfields
            .iter()
            .filter(move |s| s.code == code)
            .map(|s| s.value.as_str())
    }

    /// The first value of a subfield with `code`.
    pub fn first(&self, code: char) -> Option<&str> {
        self.values(code).next()
    }
}

/// A field of either kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Field {
    /// A control field.
    Control(ControlField),
    /// A data field.
    Data(DataField),
}

impl Field {
    /// The field's tag.
    pub fn tag(&self) -> Tag {
        match self {
            Field::Control(field) => field.tag,
            Field::Data(field) => field.tag,
        }
    }
}

/// One MARC record, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Record {
    /// The leader as it was read.
    pub leader: Leader,
    /// Every field, in its order in the record.
    pub fields: Vec<Field>,
    /// What the reader noticed and worked around: a character set that did
    /// not match the leader, a byte with no mapping, a missing indicator.
    pub warnings: Vec<String>,
}

impl Record {
    /// The text of the first control field with `tag`.
    pub fn control(&self, tag: &str) -> Option<&str> {
        self.fields.iter().find_map(|field| match field {
            Field::Control(c) if c.tag == tag => Some(c.value.as_str()),
            _ => None,
        })
    }

    /// Every data field with `tag`, in order.
    pub fn data_fields<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a DataField> {
        self.fields.iter().filter_map(move |field| match field {
            Field::Data(d) if d.tag == tag => Some(d),
            _ => None,
        })
    }

    /// Adds a warning unless the same text is already there.
    pub fn warn(&mut self, warning: impl Into<String>) {
        let warning = warning.into();

        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }
}

fn is_printable(byte: u8) -> bool {
    byte == b' ' || byte.is_ascii_graphic()
}
