//! Parsing one ISO 2709 record whose bytes are already framed: the
//! leader, the directory, then each field, decoded to Unicode.

use crate::charset::TextDecoder;
use crate::error::Damage;
use crate::record::{ControlField, DataField, Field, Leader, Record, Subfield, Tag};

use super::{FIELD_TERMINATOR, RECORD_TERMINATOR, SUBFIELD_DELIMITER};

/// One directory entry is a tag (3), a length (4) and a start (5).
const ENTRY_LEN: usize = 12;

/// Parses one record: `raw` runs from the first byte of the leader to the
/// record terminator (0x1D), which must be its last byte.
///
/// # Errors
///
/// A [`Damage`] when the length, base address or directory is wrong.
pub fn parse_record(raw: &[u8]) -> Result<Record, Damage> {
    let Some((&RECORD_TERMINATOR, body)) = raw.split_last() else {
        return Err(Damage::Truncated(raw.len()));
    };
    if raw.len() < Leader::LEN + 1 {
        return Err(Damage::TooShort(body.len()));
    }

    check_length(raw)?;
    let base = base_address(raw)?;
    let entries = directory(raw, base)?;
    let (leader, leader_changed) = Leader::lossy(&raw[..Leader::LEN]);

    let mut record = Record {
        leader,
        fields: Vec::with_capacity(entries.len()),
        warnings: Vec::new(),
    };
    if leader_changed {
        record.warn("the leader has bytes that are not ASCII; they became spaces");
    }

    let mut decoder = TextDecoder::new(leader.coding());
    for entry in &entries {
        let field = field_bytes(body, base, entry, &mut record)?;
        let field = read_field(entry.tag, field, &mut decoder, &mut record);
        record.fields.push(field);
    }
    decoder.finish(&mut record.warnings);

    Ok(record)
}

/// Where a complete, readable record starts inside a damaged chunk, as
/// when a record lost its terminator and ran into the next one.
/// Only the first few places whose length fits are parsed, so a chunk
/// crafted to look like many records cannot make this quadratic.
pub(super) fn embedded_record(raw: &[u8]) -> Option<usize> {
    const MAX_TRIES: usize = 8;

    (1..raw.len().saturating_sub(Leader::LEN))
        .filter(|&start| number(&raw[start..start + 5]) == Some(raw.len() - start))
        .take(MAX_TRIES)
        .find(|&start| parse_record(&raw[start..]).is_ok())
}

/// The damage of the bytes before an embedded record.
pub(super) fn length_damage(before: &[u8]) -> Damage {
    let head = before.get(..5).unwrap_or(before);

    match number(head) {
        Some(declared) if head.len() == 5 => Damage::LengthMismatch {
            declared,
            actual: before.len(),
        },
        _ => Damage::LengthNotNumeric(lossy(head)),
    }
}

/// Leader/00-04 must equal the record's real length.
fn check_length(raw: &[u8]) -> Result<(), Damage> {
    let declared = number(&raw[0..5]).ok_or_else(|| Damage::LengthNotNumeric(lossy(&raw[0..5])))?;

    if declared == raw.len() {
        Ok(())
    } else {
        Err(Damage::LengthMismatch {
            declared,
            actual: raw.len(),
        })
    }
}

/// Leader/12-16: where the data starts, just after the directory's field
/// terminator.
fn base_address(raw: &[u8]) -> Result<usize, Damage> {
    let text = &raw[12..17];
    let base = number(text)
        .ok_or_else(|| Damage::BadBaseAddress(format!("{:?} is not a number", lossy(text))))?;

    if base <= Leader::LEN || base >= raw.len() {
        return Err(Damage::BadBaseAddress(format!(
            "{base} is outside the record's {} bytes",
            raw.len()
        )));
    }
    if raw[base - 1] != FIELD_TERMINATOR {
        return Err(Damage::BadBaseAddress(format!(
            "no field terminator before byte {base}"
        )));
    }

    Ok(base)
}

/// One directory entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: Tag,
    length: usize,
    start: usize,
}

/// Reads the directory between the leader and the base address.
fn directory(raw: &[u8], base: usize) -> Result<Vec<Entry>, Damage> {
    let bytes = &raw[Leader::LEN..base - 1];

    if bytes.len() % ENTRY_LEN != 0 {
        return Err(Damage::BadDirectory(format!(
            "{} bytes long, not a multiple of {ENTRY_LEN}",
            bytes.len()
        )));
    }

    bytes.chunks_exact(ENTRY_LEN).map(entry).collect()
}

fn entry(bytes: &[u8]) -> Result<Entry, Damage> {
    let bad = || Damage::BadDirectory(format!("unreadable entry {:?}", lossy(bytes)));

    let tag = Tag::from_bytes(&bytes[0..3]).ok_or_else(bad)?;
    let length = number(&bytes[3..7]).ok_or_else(bad)?;
    let start = number(&bytes[7..12]).ok_or_else(bad)?;

    Ok(Entry { tag, length, start })
}

/// The bytes of one field without its terminator. `body` is the record
/// without its record terminator.
fn field_bytes<'a>(
    body: &'a [u8],
    base: usize,
    entry: &Entry,
    record: &mut Record,
) -> Result<&'a [u8], Damage> {
    let start = base + entry.start;
    let field = body.get(start..start + entry.length).ok_or_else(|| {
        Damage::BadDirectory(format!(
            "field {} ({} bytes at {}) runs past the record's end",
            entry.tag, entry.length, entry.start
        ))
    })?;

    if let Some((&FIELD_TERMINATOR, content)) = field.split_last() {
        return Ok(content);
    }

    record.warn(format!("field {} has no field terminator", entry.tag));
    Ok(field)
}

fn read_field(tag: Tag, bytes: &[u8], decoder: &mut TextDecoder, record: &mut Record) -> Field {
    decoder.start_field(bytes);

    if tag.is_control() {
        let value = decoder.decode(bytes);
        return Field::Control(ControlField { tag, value });
    }

    Field::Data(read_data_field(tag, bytes, decoder, record))
}

fn read_data_field(
    tag: Tag,
    bytes: &[u8],
    decoder: &mut TextDecoder,
    record: &mut Record,
) -> DataField {
    let mut parts = bytes.split(|&b| b == SUBFIELD_DELIMITER);
    let head = parts.next().unwrap_or_default();
    let (ind1, ind2) = indicators(tag, head, record);

    let mut subfields = Vec::new();
    for part in parts {
        match part.split_first() {
            Some((&code, value)) => subfields.push(Subfield {
                code: subfield_code(tag, code, record),
                value: decoder.decode(value),
            }),
            None => record.warn(format!("field {tag} has an empty subfield")),
        }
    }

    DataField {
        tag,
        ind1,
        ind2,
        subfields,
    }
}

/// The two indicators from the bytes before the first subfield.
fn indicators(tag: Tag, head: &[u8], record: &mut Record) -> (char, char) {
    if head.len() != 2 {
        record.warn(format!(
            "field {tag} has {} bytes before its first subfield, not 2 \
             indicators",
            head.len()
        ));
    }

    let ind = |i: usize| match head.get(i) {
        Some(&b) if b == b' ' || b.is_ascii_graphic() => char::from(b),
        _ => ' ',
    };

    (ind(0), ind(1))
}

fn subfield_code(tag: Tag, code: u8, record: &mut Record) -> char {
    if code.is_ascii_graphic() {
        return char::from(code);
    }

    record.warn(format!(
        "field {tag} has subfield code 0x{code:02X}, read as '?'"
    ));
    '?'
}

/// An unsigned decimal number written with ASCII digits only.
fn number(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }

    Some(
        digits
            .iter()
            .fold(0, |n, &d| n * 10 + usize::from(d - b'0')),
    )
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
