//! Character sets: turning the bytes of an ISO 2709 field into Unicode.
//!
//! Leader/09 `a` means UTF-8 and blank means MARC-8. Real files do not
//! always say the truth, so each field is looked at on its own: a field of
//! a "MARC-8" record whose bytes are well-formed UTF-8 with at least one
//! multi-byte character and no escape sequence is read as UTF-8 (ANSEL
//! text practically never forms valid UTF-8, since its combining marks
//! precede ASCII letters). Whatever is worked around ends up as a warning
//! on the record, never as a panic or a lost record.
//!
//! Every MARC-8 graphic set is decoded (ASCII, ANSEL, Hebrew, basic and
//! extended Arabic and Cyrillic, Greek, Greek symbols, subscripts and
//! superscripts) except East Asian EACC: see the limitation noted where
//! EACC bytes are met.

mod marc8;
mod tables;

use marc8::{Marc8, Set};

/// Text decoded from MARC-8, with what the decoder had to work around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text, in Unicode NFC.
    pub text: String,
    /// Bytes with no mapping, unknown escape sequences, and the like.
    pub warnings: Vec<String>,
}

/// Decodes one run of MARC-8 bytes (starting in ASCII and ANSEL) to
/// Unicode. Never fails: a byte with no mapping becomes U+FFFD and a
/// warning.
pub fn marc8_to_unicode(bytes: &[u8]) -> Decoded {
    let mut issues = Issues::default();
    let text = Marc8::default().decode(bytes, &mut issues);
    let mut warnings = Vec::new();
    issues.report(&mut warnings);

    Decoded { text, warnings }
}

/// The character coding the leader declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declared {
    Utf8,
    Marc8,
    /// Neither blank nor `a`; read as MARC-8.
    Unknown(char),
}

/// How one field's bytes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Utf8,
    Marc8,
}

/// Decodes the fields of one ISO 2709 record.
#[derive(Debug)]
pub(crate) struct TextDecoder {
    declared: Declared,
    scheme: Scheme,
    marc8: Marc8,
    issues: Issues,
}

impl TextDecoder {
    /// A decoder for a record whose leader/09 is `coding`.
    pub(crate) fn new(coding: char) -> Self {
        let declared = match coding {
            'a' => Declared::Utf8,
            ' ' => Declared::Marc8,
            other => Declared::Unknown(other),
        };
        let scheme = match declared {
            Declared::Utf8 => Scheme::Utf8,
            _ => Scheme::Marc8,
        };

        Self {
            declared,
            scheme,
            marc8: Marc8::default(),
            issues: Issues::default(),
        }
    }

    /// Prepares for a new field whose complete bytes are `field`.
    pub(crate) fn start_field(&mut self, field: &[u8]) {
        self.marc8.reset();
        self.scheme = match self.declared {
            Declared::Utf8 => Scheme::Utf8,
            Declared::Marc8 | Declared::Unknown(_) if looks_like_utf8(field) => {
                self.issues.utf8_in_marc8 += 1;
                Scheme::Utf8
            }
            Declared::Marc8 | Declared::Unknown(_) => Scheme::Marc8,
        };
    }

    /// Decodes part of the current field (a subfield or a control field).
    pub(crate) fn decode(&mut self, bytes: &[u8]) -> String {
        match self.scheme {
            Scheme::Marc8 => self.marc8.decode(bytes, &mut self.issues),
            Scheme::Utf8 => self.utf8(bytes),
        }
    }

    fn utf8(&mut self, bytes: &[u8]) -> String {
        if let Ok(text) = std::str::from_utf8(bytes) {
            return text.to_owned();
        }

        self.issues.invalid_utf8 += 1;
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// Appends the warnings for everything worked around in this record.
    pub(crate) fn finish(self, warnings: &mut Vec<String>) {
        if let Declared::Unknown(coding) = self.declared {
            warnings.push(format!(
                "leader/09 is {coding:?}, neither blank (MARC-8) nor 'a' \
                 (UTF-8); read as MARC-8"
            ));
        }

        self.issues.report(warnings);
    }
}

/// Whether a field of a record declared MARC-8 is really UTF-8.
fn looks_like_utf8(field: &[u8]) -> bool {
    let has_high = field.iter().any(|&b| b >= 0x80);
    let has_escape = field.contains(&0x1B);

    has_high && !has_escape && std::str::from_utf8(field).is_ok()
}

/// Counts of what the decoders worked around in one record.
#[derive(Debug, Default)]
pub(crate) struct Issues {
    unmapped: usize,
    first_unmapped: Option<(u8, Set)>,
    ascii_fallback: usize,
    first_fallback: Option<(u8, Set)>,
    cjk: usize,
    bad_escapes: usize,
    dangling_marks: usize,
    invalid_utf8: usize,
    utf8_in_marc8: usize,
}

impl Issues {
    fn unmapped(&mut self, byte: u8, set: Set) {
        self.unmapped += 1;
        self.first_unmapped.get_or_insert((byte, set));
    }

    fn ascii_fallback(&mut self, byte: u8, set: Set) {
        self.ascii_fallback += 1;
        self.first_fallback.get_or_insert((byte, set));
    }

    /// Turns the counts into one warning per kind of problem.
    fn report(self, out: &mut Vec<String>) {
        if let Some((byte, set)) = self.first_unmapped {
            out.push(format!(
                "MARC-8: {} byte(s) with no character, replaced by U+FFFD \
                 (first: 0x{byte:02X} in {})",
                self.unmapped,
                set.name()
            ));
        }
        if let Some((byte, set)) = self.first_fallback {
            out.push(format!(
                "MARC-8: {} byte(s) missing from their set, read as ASCII \
                 (first: 0x{byte:02X} in {})",
                self.ascii_fallback,
                set.name()
            ));
        }
        if self.cjk > 0 {
            out.push(format!(
                "MARC-8: {} East Asian (EACC) character(s) replaced by \
                 U+FFFD: EACC is not supported",
                self.cjk
            ));
        }
        self.report_rest(out);
    }

    fn report_rest(&self, out: &mut Vec<String>) {
        if self.bad_escapes > 0 {
            out.push(format!(
                "MARC-8: {} unknown or incomplete escape sequence(s) skipped",
                self.bad_escapes
            ));
        }
        if self.dangling_marks > 0 {
            out.push(format!(
                "MARC-8: {} subfield(s) end with a combining mark and no \
                 letter for it",
                self.dangling_marks
            ));
        }
        if self.invalid_utf8 > 0 {
            out.push(format!(
                "{} value(s) are not valid UTF-8; bad bytes replaced by \
                 U+FFFD",
                self.invalid_utf8
            ));
        }
        if self.utf8_in_marc8 > 0 {
            out.push(format!(
                "the leader says MARC-8 but {} field(s) are UTF-8; read as \
                 UTF-8",
                self.utf8_in_marc8
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8]) -> String {
        marc8_to_unicode(bytes).text
    }

    #[test]
    fn acute_before_the_letter_becomes_one_composed_letter() {
        assert_eq!(text(b"caf\xe2e"), "caf\u{e9}");
        assert!(marc8_to_unicode(b"caf\xe2e").warnings.is_empty());
    }

    #[test]
    fn two_marks_on_one_letter_compose_in_nfc() {
        // Vietnamese: circumflex then acute on "e" is U+1EBF.
        assert_eq!(text(b"\xe3\xe2e"), "\u{1ebf}");
    }

    #[test]
    fn marks_without_a_precomposed_form_follow_their_letter() {
        // "t" with the ligature halves of "ts": t U+FE20 s U+FE21.
        assert_eq!(text(b"\xebt\xecs"), "t\u{fe20}s\u{fe21}");
    }

    #[test]
    fn special_latin_letters_map() {
        assert_eq!(
            text(b"\xa1\xb6uvre \xc3 \xc7"),
            "\u{141}\u{153}uvre \u{a9} \u{df}"
        );
    }

    #[test]
    fn cyrillic_escape_switches_g0_until_reset() {
        let decoded = text(b"\x1b(NMOSKWA\x1bs ok");
        assert_eq!(decoded, "\u{43c}\u{43e}\u{441}\u{43a}\u{432}\u{430} ok");
    }

    #[test]
    fn greek_with_its_own_combining_accent() {
        // Basic Greek: 0x22 is a combining acute before alpha (0x61).
        assert_eq!(text(b"\x1b(S\x22a\x1b(B"), "\u{3ac}");
    }

    #[test]
    fn hebrew_in_g1() {
        assert_eq!(text(b"\x1b)2\xe0"), "\u{5d0}");
    }

    #[test]
    fn sub_and_superscripts() {
        assert_eq!(text(b"H\x1bb2\x1bsO x\x1bp2\x1bs"), "H\u{2082}O x\u{b2}");
    }

    #[test]
    fn cjk_is_replaced_and_reported() {
        let decoded = marc8_to_unicode(b"\x1b$1\x21\x30\x21\x1b(B!");
        assert_eq!(decoded.text, "\u{fffd}!");
        assert!(decoded.warnings[0].contains("EACC"));
    }

    #[test]
    fn unknown_escape_and_unmapped_byte_are_reported() {
        let decoded = marc8_to_unicode(b"a\x1bZb\xff");
        assert_eq!(decoded.text, "ab\u{fffd}");
        assert_eq!(decoded.warnings.len(), 2);
    }

    #[test]
    fn utf8_field_in_marc8_record_is_read_as_utf8() {
        let mut decoder = TextDecoder::new(' ');
        let field = "Ереван".as_bytes();
        decoder.start_field(field);
        assert_eq!(decoder.decode(field), "Ереван");

        let mut warnings = Vec::new();
        decoder.finish(&mut warnings);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn invalid_utf8_is_decoded_lossily_with_a_warning() {
        let mut decoder = TextDecoder::new('a');
        decoder.start_field(b"ab\xffc");
        assert_eq!(decoder.decode(b"ab\xffc"), "ab\u{fffd}c");

        let mut warnings = Vec::new();
        decoder.finish(&mut warnings);
        assert!(warnings[0].contains("not valid UTF-8"));
    }
}
