//! Writing a record as ISO 2709, in UTF-8.

use crate::error::WriteError;
use crate::record::{Field, Leader, Record};

use super::{FIELD_TERMINATOR, MAX_RECORD_LEN, RECORD_TERMINATOR, SUBFIELD_DELIMITER};

const MAX_FIELD_LEN: usize = 9_999;

/// Writes `record` as one ISO 2709 record.
///
/// The text is written as UTF-8, so leader/09 becomes `a`; the leader's
/// record length (00-04), indicator and subfield code counts (10-11),
/// base address (12-16) and entry map (20-23) are computed. Everything
/// else in the leader is kept. The record's warnings are not written.
///
/// # Errors
///
/// A [`WriteError`] when a value holds a MARC delimiter, a field or the
/// record is too long for the format, or a field's kind does not match
/// its tag.
pub fn to_iso2709(record: &Record) -> Result<Vec<u8>, WriteError> {
    let mut directory = Vec::with_capacity(record.fields.len() * 12);
    let mut data = Vec::with_capacity(record.fields.len() * 64);

    for field in &record.fields {
        let start = data.len();
        write_field(field, &mut data)?;
        let length = data.len() - start;
        if length > MAX_FIELD_LEN {
            return Err(WriteError::FieldTooLong(field.tag().to_string()));
        }

        directory.extend_from_slice(field.tag().as_str().as_bytes());
        directory.extend_from_slice(format!("{length:04}{start:05}").as_bytes());
    }

    let base = Leader::LEN + directory.len() + 1;
    let total = base + data.len() + 1;
    if total > MAX_RECORD_LEN {
        return Err(WriteError::RecordTooLong);
    }

    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&leader_for(record.leader, total, base));
    out.extend_from_slice(&directory);
    out.push(FIELD_TERMINATOR);
    out.extend_from_slice(&data);
    out.push(RECORD_TERMINATOR);

    Ok(out)
}

fn leader_for(leader: Leader, total: usize, base: usize) -> [u8; Leader::LEN] {
    let mut bytes = *leader.as_bytes();

    bytes[0..5].copy_from_slice(format!("{total:05}").as_bytes());
    bytes[9] = b'a';
    bytes[10..12].copy_from_slice(b"22");
    bytes[12..17].copy_from_slice(format!("{base:05}").as_bytes());
    bytes[20..24].copy_from_slice(b"4500");

    bytes
}

fn write_field(field: &Field, out: &mut Vec<u8>) -> Result<(), WriteError> {
    let tag = field.tag();
    let mismatch = || WriteError::KindMismatch(tag.to_string());

    match field {
        Field::Control(control) => {
            if !tag.is_control() {
                return Err(mismatch());
            }
            push_text(&control.value, tag.as_str(), out)?;
        }
        Field::Data(data) => {
            if tag.is_control() {
                return Err(mismatch());
            }
            out.push(ascii(data.ind1, tag.as_str())?);
            out.push(ascii(data.ind2, tag.as_str())?);
            for subfield in &data.subfields {
                out.push(SUBFIELD_DELIMITER);
                out.push(ascii_graphic(subfield.code, tag.as_str())?);
                push_text(&subfield.value, tag.as_str(), out)?;
            }
        }
    }
    out.push(FIELD_TERMINATOR);

    Ok(())
}

fn push_text(text: &str, tag: &str, out: &mut Vec<u8>) -> Result<(), WriteError> {
    let bytes = text.as_bytes();
    let delimiters = [RECORD_TERMINATOR, FIELD_TERMINATOR, SUBFIELD_DELIMITER];

    if bytes.iter().any(|b| delimiters.contains(b)) {
        return Err(WriteError::Delimiter(tag.to_owned()));
    }
    out.extend_from_slice(bytes);

    Ok(())
}

/// An indicator: printable ASCII or space.
fn ascii(ch: char, tag: &str) -> Result<u8, WriteError> {
    match u8::try_from(ch) {
        Ok(b) if b == b' ' || b.is_ascii_graphic() => Ok(b),
        _ => Err(WriteError::NotAscii(tag.to_owned())),
    }
}

/// A subfield code: printable ASCII, no space.
fn ascii_graphic(ch: char, tag: &str) -> Result<u8, WriteError> {
    match u8::try_from(ch) {
        Ok(b) if b.is_ascii_graphic() => Ok(b),
        _ => Err(WriteError::NotAscii(tag.to_owned())),
    }
}
