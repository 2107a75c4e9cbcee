//! Property tests: ISBN arithmetic, MARC-8 decoding and the readers on
//! arbitrary bytes, and ISO 2709 write-then-read round trips.

use lectern_marc::charset::marc8_to_unicode;
use lectern_marc::isbn::{self, InvalidIsbn};
use lectern_marc::iso2709::{parse_record, to_iso2709, Iso2709Reader};
use lectern_marc::marcxml::MarcXmlReader;
use lectern_marc::{ControlField, DataField, Field, Leader, Record, Subfield, Tag};
use proptest::prelude::*;

const PYMARC_TEST: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/marc/pymarc-test.dat"
));
const BAD_ISBNS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/marc/badisbns.xml"
));

fn nine_digits() -> impl Strategy<Value = String> {
    "[0-9]{9}"
}

fn isbn10(body: &str) -> String {
    format!("{body}{}", isbn::isbn10_check_digit(body).unwrap())
}

/// A digit different from `d`.
fn other_digit(d: u8, shift: u8) -> u8 {
    b'0' + (d - b'0' + shift) % 10
}

proptest! {
    #[test]
    fn isbn10_to_13_round_trips(body in nine_digits()) {
        let ten = isbn10(&body);
        let thirteen = isbn::parse(&ten).unwrap();

        prop_assert_eq!(thirteen.len(), 13);
        prop_assert!(thirteen.starts_with("978"));
        prop_assert_eq!(&thirteen[3..12], body.as_str());
        prop_assert_eq!(isbn::parse(&thirteen), Ok(thirteen.clone()));
        prop_assert_eq!(isbn::isbn13_to_10(&thirteen), Some(ten));
    }

    #[test]
    fn hyphens_and_qualifiers_do_not_change_an_isbn(body in nine_digits()) {
        let ten = isbn10(&body);
        let dressed = format!("{}-{}-{} (pbk.) :", &ten[..1], &ten[1..5], &ten[5..]);

        prop_assert_eq!(isbn::parse(&dressed), isbn::parse(&ten));
    }

    #[test]
    fn a_changed_isbn10_digit_is_caught(
        body in nine_digits(),
        at in 0usize..9,
        shift in 1u8..10,
    ) {
        let mut bytes = isbn10(&body).into_bytes();
        bytes[at] = other_digit(bytes[at], shift);
        let changed = String::from_utf8(bytes).unwrap();

        prop_assert_eq!(isbn::parse(&changed), Err(InvalidIsbn::CheckDigit));
    }

    #[test]
    fn a_changed_isbn13_digit_is_caught(
        body in nine_digits(),
        at in 3usize..13,
        shift in 1u8..10,
    ) {
        let mut bytes = isbn::parse(&isbn10(&body)).unwrap().into_bytes();
        bytes[at] = other_digit(bytes[at], shift);
        let changed = String::from_utf8(bytes).unwrap();

        prop_assert_eq!(isbn::parse(&changed), Err(InvalidIsbn::CheckDigit));
    }

    #[test]
    fn marc8_decoding_takes_any_bytes(bytes in marc8_bytes()) {
        let decoded = marc8_to_unicode(&bytes);

        // Each byte yields at most one character; escapes and EACC
        // triples yield fewer.
        prop_assert!(decoded.text.chars().count() <= bytes.len());
    }

    #[test]
    fn plain_ascii_passes_through_marc8(text in "[ -~]{0,64}") {
        prop_assert_eq!(marc8_to_unicode(text.as_bytes()).text, text);
    }

    #[test]
    fn iso2709_reader_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let items = Iso2709Reader::new(&bytes[..]).count();
        prop_assert!(items <= bytes.len());
    }

    #[test]
    fn iso2709_reader_survives_damaged_real_records(
        flips in prop::collection::vec((0usize..PYMARC_TEST.len(), any::<u8>()), 1..8),
    ) {
        let mut bytes = PYMARC_TEST.to_vec();
        for (at, value) in flips {
            bytes[at] = value;
        }

        for item in Iso2709Reader::new(&bytes[..]) {
            if let Err(e) = item {
                prop_assert!(!e.is_fatal());
            }
        }
    }

    #[test]
    fn marcxml_reader_survives_damaged_real_xml(
        flips in prop::collection::vec((0usize..BAD_ISBNS.len(), any::<u8>()), 1..8),
    ) {
        let mut bytes = BAD_ISBNS.to_vec();
        for (at, value) in flips {
            bytes[at] = value;
        }

        let items = MarcXmlReader::new(&bytes[..]).take(100).count();
        prop_assert!(items <= 11);
    }

    #[test]
    fn written_records_read_back_the_same(record in record()) {
        let bytes = to_iso2709(&record).unwrap();
        let back = parse_record(&bytes).unwrap();

        prop_assert_eq!(&back.fields, &record.fields);
        prop_assert!(back.warnings.is_empty(), "{:?}", back.warnings);
        prop_assert_eq!(back.leader, expected_leader(&record, bytes.len()));
        prop_assert_eq!(to_iso2709(&back).unwrap(), bytes);
    }
}

/// Bytes weighted towards what makes MARC-8 interesting: escapes, set
/// names, combining marks and high bytes.
fn marc8_bytes() -> impl Strategy<Value = Vec<u8>> {
    let interesting = prop::sample::select(vec![
        0x1B, b'(', b')', b',', b'-', b'$', b'!', b'1', b'2', b'3', b'4', b'B', b'E', b'N', b'Q',
        b'S', b'b', b'g', b'p', b's', 0x88, 0x89, 0xE2, 0xE8, 0xF0, 0xFE, 0xA1,
    ]);
    let byte = prop_oneof![any::<u8>(), interesting];

    prop::collection::vec(byte, 0..256)
}

/// The leader the writer must produce: lengths computed, UTF-8 declared.
fn expected_leader(record: &Record, total: usize) -> Leader {
    let base = 24 + 12 * record.fields.len() + 1;
    let mut bytes = *record.leader.as_bytes();
    bytes[0..5].copy_from_slice(format!("{total:05}").as_bytes());
    bytes[9] = b'a';
    bytes[10..12].copy_from_slice(b"22");
    bytes[12..17].copy_from_slice(format!("{base:05}").as_bytes());
    bytes[20..24].copy_from_slice(b"4500");

    Leader::from_bytes(&bytes).unwrap()
}

fn text() -> impl Strategy<Value = String> {
    "[^\u{1d}\u{1e}\u{1f}]{0,24}"
}

fn control_field() -> impl Strategy<Value = Field> {
    ("00[1-9]", text()).prop_map(|(tag, value)| {
        Field::Control(ControlField {
            tag: Tag::new(&tag).unwrap(),
            value,
        })
    })
}

fn data_field() -> impl Strategy<Value = Field> {
    let subfield = ("[a-z0-9]", text()).prop_map(|(code, value)| Subfield {
        code: code.chars().next().unwrap(),
        value,
    });

    (
        "[1-9][0-9]{2}",
        "[ 0-9]",
        "[ 0-9a-z]",
        prop::collection::vec(subfield, 0..6),
    )
        .prop_map(|(tag, ind1, ind2, subfields)| {
            Field::Data(DataField {
                tag: Tag::new(&tag).unwrap(),
                ind1: ind1.chars().next().unwrap(),
                ind2: ind2.chars().next().unwrap(),
                subfields,
            })
        })
}

fn record() -> impl Strategy<Value = Record> {
    let field = prop_oneof![control_field(), data_field()];

    ("[ -~]{24}", prop::collection::vec(field, 0..20)).prop_map(|(leader, fields)| Record {
        leader: Leader::from_bytes(leader.as_bytes()).unwrap(),
        fields,
        warnings: Vec::new(),
    })
}
