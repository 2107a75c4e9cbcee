//! The readers on small hand-made inputs: each kind of damage, framing
//! across the input's edges, and MARCXML's variations.

use lectern_marc::iso2709::{to_iso2709, Iso2709Reader};
use lectern_marc::marcxml::MarcXmlReader;
use lectern_marc::{Damage, DataField, Field, Record, RecordError, Subfield, Tag};

/// A valid record with one 245 field holding `title`.
fn record_bytes(title: &str) -> Vec<u8> {
    let record = Record {
        fields: vec![Field::Data(DataField {
            tag: Tag::new("245").unwrap(),
            ind1: '1',
            ind2: '0',
            subfields: vec![Subfield {
                code: 'a',
                value: title.into(),
            }],
        })],
        ..Record::default()
    };

    to_iso2709(&record).unwrap()
}

fn title(item: &Result<Record, RecordError>) -> &str {
    let record = item.as_ref().unwrap();
    record
        .data_fields("245")
        .next()
        .unwrap()
        .first('a')
        .unwrap()
}

fn damage(item: &Result<Record, RecordError>) -> (usize, u64, Damage) {
    let error = item.as_ref().unwrap_err();
    let position = error.position().unwrap();

    (
        position.index,
        position.offset,
        error.damage().unwrap().clone(),
    )
}

#[test]
fn a_wrong_length_costs_one_record() {
    let good = record_bytes("one");
    let mut bad = record_bytes("two");
    bad[4] = b'0';
    let input = [good.clone(), bad.clone(), b"\r\n".to_vec(), good.clone()].concat();

    let items: Vec<_> = Iso2709Reader::new(&input[..]).collect();

    assert_eq!(items.len(), 3);
    assert_eq!(title(&items[0]), "one");
    let (index, offset, why) = damage(&items[1]);
    assert_eq!((index, offset), (1, good.len() as u64));
    assert!(matches!(why, Damage::LengthMismatch { .. }));
    assert_eq!(title(&items[2]), "one");
}

#[test]
fn a_lost_terminator_costs_only_its_own_record() {
    let mut first = record_bytes("one");
    first.pop();
    let second = record_bytes("two");
    let input = [first.clone(), second, record_bytes("three")].concat();

    let items: Vec<_> = Iso2709Reader::new(&input[..]).collect();

    assert_eq!(items.len(), 3);
    let (index, offset, why) = damage(&items[0]);
    assert_eq!((index, offset), (0, 0));
    assert_eq!(
        why,
        Damage::LengthMismatch {
            declared: first.len() + 1,
            actual: first.len(),
        }
    );
    assert_eq!(title(&items[1]), "two");
    assert_eq!(title(&items[2]), "three");
}

#[test]
fn junk_before_a_record_is_reported_apart_from_it() {
    let input = [b"junk".to_vec(), record_bytes("kept")].concat();

    let items: Vec<_> = Iso2709Reader::new(&input[..]).collect();

    assert_eq!(items.len(), 2);
    let (_, _, why) = damage(&items[0]);
    assert_eq!(why, Damage::LengthNotNumeric("junk".into()));
    assert_eq!(title(&items[1]), "kept");
}

#[test]
fn a_non_numeric_length_is_reported() {
    let mut bad = record_bytes("x");
    bad[0] = b'x';

    let items: Vec<_> = Iso2709Reader::new(&bad[..]).collect();

    assert!(matches!(damage(&items[0]).2, Damage::LengthNotNumeric(_)));
}

#[test]
fn a_directory_past_the_end_is_reported() {
    let mut bad = record_bytes("title");
    // Directory entry 245 LLLL SSSSS starts at 24; make the start 00099.
    bad[31..36].copy_from_slice(b"00099");

    let items: Vec<_> = Iso2709Reader::new(&bad[..]).collect();

    assert!(matches!(damage(&items[0]).2, Damage::BadDirectory(_)));
}

#[test]
fn a_truncated_last_record_is_reported() {
    let good = record_bytes("one");
    let cut = &record_bytes("two")[..30];
    let input = [good.clone(), cut.to_vec()].concat();

    let items: Vec<_> = Iso2709Reader::new(&input[..]).collect();

    assert_eq!(items.len(), 2);
    assert_eq!(
        damage(&items[1]),
        (1, good.len() as u64, Damage::Truncated(30))
    );
}

#[test]
fn a_short_fragment_is_reported() {
    let input = b"0001\x1d".to_vec();

    let items: Vec<_> = Iso2709Reader::new(&input[..]).collect();

    assert_eq!(damage(&items[0]), (0, 0, Damage::TooShort(4)));
}

#[test]
fn runaway_bytes_without_a_terminator_are_cut_off() {
    let input = [vec![b'7'; 120_000], vec![0x1D], record_bytes("after")].concat();

    let items: Vec<_> = Iso2709Reader::new(&input[..]).collect();

    assert_eq!(damage(&items[0]), (0, 0, Damage::TooLong));
    assert_eq!(title(&items[1]), "after");
}

#[test]
fn io_errors_end_the_reader() {
    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk gone"))
        }
    }

    let items: Vec<_> = Iso2709Reader::from_reader(Failing).collect();

    assert_eq!(items.len(), 1);
    assert!(matches!(&items[0], Err(e @ RecordError::Io { .. }) if e.is_fatal()));
}

#[test]
fn a_marc8_record_has_its_ansel_decoded() {
    // Leader/09 blank (MARC-8) and ANSEL bytes: acute before "e".
    let bytes = b"00049     2200037   4500245001100000\x1e10\x1faCaf\xe2e.\x1e\x1d";

    let record = Iso2709Reader::new(&bytes[..]).next().unwrap().unwrap();

    assert_eq!(
        record.data_fields("245").next().unwrap().first('a'),
        Some("Caf\u{e9}.")
    );
    assert!(record.warnings.is_empty());
}

const XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<marc:collection xmlns:marc="http://www.loc.gov/MARC21/slim">
  <marc:record>
    <marc:leader>00000nam a2200000 a 4500</marc:leader>
    <marc:controlfield tag="001">one</marc:controlfield>
    <marc:datafield tag="245" ind1="1" ind2="0">
      <marc:subfield code="a">Tom &amp; Jerry <![CDATA[<live>]]></marc:subfield>
      <marc:subfield code="b"/>
    </marc:datafield>
  </marc:record>
  <marc:record>
    <marc:leader>00000nam a2200000 a 4500</marc:leader>
    <marc:datafield tag="24" ind1="1" ind2="0">
      <marc:subfield code="a">bad tag</marc:subfield>
    </marc:datafield>
  </marc:record>
  <marc:record>
    <marc:controlfield tag="001">no leader</marc:controlfield>
  </marc:record>
</marc:collection>"#;

#[test]
fn marcxml_reads_namespaced_records_and_skips_a_damaged_one() {
    let items: Vec<_> = MarcXmlReader::new(XML.as_bytes()).collect();
    assert_eq!(items.len(), 3);

    let first = items[0].as_ref().unwrap();
    assert_eq!(first.control("001"), Some("one"));
    let title = first.data_fields("245").next().unwrap();
    assert_eq!((title.ind1, title.ind2), ('1', '0'));
    assert_eq!(title.first('a'), Some("Tom & Jerry <live>"));
    assert_eq!(title.first('b'), Some(""));

    let (index, offset, why) = damage(&items[1]);
    assert_eq!(index, 1);
    let offset = usize::try_from(offset).unwrap();
    assert_eq!(&XML[offset..][..12], "<marc:record");
    assert!(matches!(why, Damage::BadXml(_)));

    let last = items[2].as_ref().unwrap();
    assert_eq!(last.control("001"), Some("no leader"));
    assert!(last.warnings[0].contains("no leader"));
}

#[test]
fn malformed_xml_ends_the_reader() {
    let xml = "<collection><record><leader>x</leader></oops></collection>";

    let items: Vec<_> = MarcXmlReader::new(xml.as_bytes()).collect();

    assert_eq!(items.len(), 1);
    assert!(matches!(&items[0], Err(e @ RecordError::Syntax { .. }) if e.is_fatal()));
}

#[test]
fn a_bare_record_root_is_read() {
    let xml = r#"<record xmlns="http://www.loc.gov/MARC21/slim">
      <leader>00000cjm a2200000 a 4500</leader>
      <datafield tag="100" ind1="1" ind2=" "><subfield code="a">Davis, Miles,</subfield></datafield>
    </record>"#;

    let records: Vec<_> = MarcXmlReader::new(xml.as_bytes()).collect();

    assert_eq!(records.len(), 1);
    let record = records[0].as_ref().unwrap();
    assert_eq!(record.leader.record_type(), 'j');
    assert_eq!(
        lectern_marc::bib::from_record(record).authors,
        ["Davis, Miles"]
    );
}
