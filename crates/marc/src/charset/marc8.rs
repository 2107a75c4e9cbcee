//! A MARC-8 decoder: ISO 2022 style escape sequences switch the G0 and G1
//! sets, and combining marks move from before their letter (MARC-8) to
//! after it (Unicode), then the text is put in NFC.

use unicode_normalization::UnicodeNormalization;

use super::tables::{self, Entry, Table};
use super::Issues;

const ESC: u8 = 0x1B;

/// A MARC-8 graphic character set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Set {
    /// ASCII, the default G0 set.
    Ascii,
    /// ANSEL extended Latin, the default G1 set.
    Ansel,
    Hebrew,
    Arabic,
    ArabicExt,
    Cyrillic,
    CyrillicExt,
    Greek,
    GreekSymbols,
    Subscript,
    Superscript,
    /// East Asian (EACC), three bytes a character.
    Cjk,
}

impl Set {
    /// The set named by the final byte of an escape sequence.
    fn from_final(byte: u8) -> Option<Self> {
        let set = match byte {
            b'B' => Set::Ascii,
            b'E' => Set::Ansel,
            b'2' => Set::Hebrew,
            b'3' => Set::Arabic,
            b'4' => Set::ArabicExt,
            b'N' => Set::Cyrillic,
            b'Q' => Set::CyrillicExt,
            b'S' => Set::Greek,
            b'g' => Set::GreekSymbols,
            b'b' => Set::Subscript,
            b'p' => Set::Superscript,
            b'1' => Set::Cjk,
            _ => return None,
        };

        Some(set)
    }

    fn table(self) -> Option<&'static Table> {
        let table = match self {
            Set::Ascii | Set::Cjk => return None,
            Set::Ansel => &tables::ANSEL,
            Set::Hebrew => &tables::HEBREW,
            Set::Arabic => &tables::ARABIC,
            Set::ArabicExt => &tables::ARABIC_EXT,
            Set::Cyrillic => &tables::CYRILLIC,
            Set::CyrillicExt => &tables::CYRILLIC_EXT,
            Set::Greek => &tables::GREEK,
            Set::GreekSymbols => &tables::GREEK_SYMBOLS,
            Set::Subscript => &tables::SUBSCRIPT,
            Set::Superscript => &tables::SUPERSCRIPT,
        };

        Some(table)
    }

    /// The set's name, for warnings.
    pub(super) fn name(self) -> &'static str {
        match self {
            Set::Ascii => "ASCII",
            Set::Ansel => "ANSEL",
            Set::Hebrew => "Hebrew",
            Set::Arabic => "basic Arabic",
            Set::ArabicExt => "extended Arabic",
            Set::Cyrillic => "basic Cyrillic",
            Set::CyrillicExt => "extended Cyrillic",
            Set::Greek => "Greek",
            Set::GreekSymbols => "Greek symbols",
            Set::Subscript => "subscripts",
            Set::Superscript => "superscripts",
            Set::Cjk => "East Asian (EACC)",
        }
    }
}

/// Which set an escape sequence designates, and into which half.
enum Designation {
    G0(Set),
    G1(Set),
}

/// Decodes the text of one field; the designated sets carry over from one
/// subfield to the next and are reset by [`Marc8::reset`] at each field.
#[derive(Debug)]
pub(super) struct Marc8 {
    g0: Set,
    g1: Set,
    /// Combining marks read but not yet placed after their base letter.
    pending: Vec<char>,
}

impl Default for Marc8 {
    fn default() -> Self {
        Self {
            g0: Set::Ascii,
            g1: Set::Ansel,
            pending: Vec::new(),
        }
    }
}

impl Marc8 {
    /// Back to ASCII and ANSEL, as at the start of every field.
    pub(super) fn reset(&mut self) {
        self.g0 = Set::Ascii;
        self.g1 = Set::Ansel;
        self.pending.clear();
    }

    /// Decodes `bytes` into Unicode text in NFC.
    pub(super) fn decode(&mut self, bytes: &[u8], issues: &mut Issues) -> String {
        if self.g0 == Set::Ascii && is_plain_ascii(bytes) {
            return bytes.iter().map(|&b| char::from(b)).collect();
        }

        let mut out = String::with_capacity(bytes.len() + 8);
        let mut combined = false;
        let mut rest = bytes;

        while let Some(&byte) = rest.first() {
            let used = if byte == ESC {
                self.escape(rest, issues)
            } else {
                combined |= self.character(byte, &mut out, issues);
                self.width(byte)
            };
            rest = rest.get(used..).unwrap_or_default();
        }

        if !self.pending.is_empty() {
            issues.dangling_marks += 1;
            out.extend(self.pending.drain(..));
        }

        if combined {
            out = out.nfc().collect();
        }

        out
    }

    /// How many bytes the character starting with `byte` takes: three
    /// for a graphic byte of a designated EACC set, else one.
    fn width(&self, byte: u8) -> usize {
        let cjk = match byte {
            0x21..=0x7E => self.g0 == Set::Cjk,
            0xA1..=0xFE => self.g1 == Set::Cjk,
            _ => false,
        };

        if cjk {
            3
        } else {
            1
        }
    }

    /// Decodes the character that starts with `byte` into `out`. Returns
    /// whether a combining mark was written.
    fn character(&mut self, byte: u8, out: &mut String, issues: &mut Issues) -> bool {
        match self.lookup(byte, issues) {
            Some(Entry::Combining(mark)) => {
                self.pending.push(mark);
                false
            }
            Some(Entry::Base(ch)) => {
                out.push(ch);
                let combined = !self.pending.is_empty();
                out.extend(self.pending.drain(..));
                combined
            }
            None => {
                out.push(char::REPLACEMENT_CHARACTER);
                let combined = !self.pending.is_empty();
                out.extend(self.pending.drain(..));
                combined
            }
        }
    }

    /// What `byte` stands for in the designated sets.
    fn lookup(&self, byte: u8, issues: &mut Issues) -> Option<Entry> {
        match byte {
            0x00..=0x1F => Some(Entry::Base(char::from(byte))),
            b' ' => Some(Entry::Base(' ')),
            0x21..=0x7E => in_set(self.g0, byte, issues),
            0x80..=0x9F => control_c1(byte, issues),
            0xA1..=0xFE => in_set(self.g1, byte, issues),
            0x7F => {
                issues.unmapped(byte, self.g0);
                None
            }
            _ => {
                issues.unmapped(byte, self.g1);
                None
            }
        }
    }

    /// Reads the escape sequence at the start of `rest` and returns how
    /// many bytes it takes.
    fn escape(&mut self, rest: &[u8], issues: &mut Issues) -> usize {
        match parse_escape(rest) {
            Ok((Designation::G0(set), used)) => {
                self.g0 = set;
                used
            }
            Ok((Designation::G1(set), used)) => {
                self.g1 = set;
                used
            }
            Err(skip) => {
                issues.bad_escapes += 1;
                skip
            }
        }
    }
}

/// What `byte` stands for in `set`.
fn in_set(set: Set, byte: u8, issues: &mut Issues) -> Option<Entry> {
    if set == Set::Cjk {
        // Limitation: the East Asian (EACC) table has about 16 000
        // entries and is not carried here; each EACC character becomes
        // U+FFFD and the record gets a warning.
        issues.cjk += 1;
        return Some(Entry::Base(char::REPLACEMENT_CHARACTER));
    }

    let Some(table) = set.table() else {
        return Some(Entry::Base(char::from(byte & 0x7F)));
    };

    if let Some(entry) = table.get(byte) {
        return Some(entry);
    }

    if byte < 0x80 {
        // A non-Latin G0 set leaves most ASCII punctuation and digits
        // out; records use them anyway, so read those bytes as ASCII.
        issues.ascii_fallback(byte, set);
        return Some(Entry::Base(char::from(byte)));
    }

    issues.unmapped(byte, set);
    None
}

/// Parses an escape sequence. An unknown or cut-short one is an error
/// carrying how many bytes to skip.
fn parse_escape(rest: &[u8]) -> Result<(Designation, usize), usize> {
    let Some(&kind) = rest.get(1) else {
        return Err(1);
    };

    match kind {
        b'(' | b',' => designate(rest, 2).map(|(set, n)| (Designation::G0(set), n)),
        b')' | b'-' => designate(rest, 2).map(|(set, n)| (Designation::G1(set), n)),
        b'$' => multibyte(rest),
        b's' => Ok((Designation::G0(Set::Ascii), 2)),
        b'g' => Ok((Designation::G0(Set::GreekSymbols), 2)),
        b'b' => Ok((Designation::G0(Set::Subscript), 2)),
        b'p' => Ok((Designation::G0(Set::Superscript), 2)),
        _ => Err(2),
    }
}

/// Reads a final byte at `at`, allowing the `!` intermediate that ANSEL's
/// designation (`ESC ) ! E`) carries. Returns the set and the bytes used,
/// or the bytes to skip.
fn designate(rest: &[u8], at: usize) -> Result<(Set, usize), usize> {
    let at = if rest.get(at) == Some(&b'!') {
        at + 1
    } else {
        at
    };
    let used = (at + 1).min(rest.len());

    rest.get(at)
        .and_then(|&byte| Set::from_final(byte))
        .map(|set| (set, at + 1))
        .ok_or(used)
}

/// `ESC $ F`, `ESC $ ( F`, `ESC $ , F` (G0) or `ESC $ ) F`, `ESC $ - F`
/// (G1).
fn multibyte(rest: &[u8]) -> Result<(Designation, usize), usize> {
    match rest.get(2) {
        None => Err(rest.len()),
        Some(b'(' | b',') => designate(rest, 3).map(|(set, n)| (Designation::G0(set), n)),
        Some(b')' | b'-') => designate(rest, 3).map(|(set, n)| (Designation::G1(set), n)),
        Some(_) => designate(rest, 2).map(|(set, n)| (Designation::G0(set), n)),
    }
}

/// The C1 controls MARC-8 uses: non-sort begin and end, and the
/// zero-width joiner and non-joiner.
fn control_c1(byte: u8, issues: &mut Issues) -> Option<Entry> {
    let ch = match byte {
        0x88 => '\u{98}',
        0x89 => '\u{9C}',
        0x8D => '\u{200D}',
        0x8E => '\u{200C}',
        _ => {
            issues.unmapped(byte, Set::Ansel);
            return None;
        }
    };

    Some(Entry::Base(ch))
}

/// Whether every byte is ASCII and none starts an escape sequence.
fn is_plain_ascii(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b < 0x80 && b != ESC)
}
