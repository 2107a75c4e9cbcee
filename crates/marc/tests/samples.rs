//! Reading the real sample files in `shared/data/marc` and checking
//! values a cataloguer can verify by eye.

use std::fs::File;
use std::io::BufReader;

use lectern_marc::bib::{self, BibRecord, CopySpec, Isbn};
use lectern_marc::iso2709::Iso2709Reader;
use lectern_marc::marcxml::MarcXmlReader;
use lectern_marc::{records, Damage, Record, RecordError};

macro_rules! sample {
    ($name:literal) => {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/marc/",
            $name
        )
    };
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every item of an ISO 2709 file, read from a byte slice.
fn iso(path: &str) -> Vec<Result<Record, RecordError>> {
    Iso2709Reader::new(&read(path)[..]).collect()
}

/// Only the good records; fails on any damaged one.
fn good(items: Vec<Result<Record, RecordError>>) -> Vec<Record> {
    items
        .into_iter()
        .map(|item| item.unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn bibs(records: &[Record]) -> Vec<BibRecord> {
    records.iter().map(bib::from_record).collect()
}

fn by_id<'a>(bibs: &'a [BibRecord], id: &str) -> &'a BibRecord {
    bibs.iter()
        .find(|b| b.source_id.as_deref() == Some(id))
        .unwrap_or_else(|| panic!("no record {id}"))
}

#[test]
fn jazz_has_1000_records_and_their_949_barcodes() {
    let records = good(iso(sample!("jazz_1k.mrc")));
    assert_eq!(records.len(), 1000);

    let bibs = bibs(&records);
    let copies: Vec<&CopySpec> = bibs.iter().flat_map(|b| &b.copies).collect();
    assert_eq!(copies.len(), 1238, "one copy per 949 field");
    assert!(copies
        .iter()
        .all(|c| c.barcode.len() == 14 && c.barcode.bytes().all(|b| b.is_ascii_digit())));

    let first = &bibs[0];
    assert_eq!(first.source_id.as_deref(), Some("03-0018137"));
    assert_eq!(first.title, "Friendly fire");
    assert_eq!(first.material, "music_recording");
    assert_eq!(first.publisher.as_deref(), Some("Blue Note"));
    assert_eq!(first.year.as_deref(), Some("1999"));
    assert_eq!(first.language.as_deref(), Some("eng"));
    assert_eq!(first.authors[..2], ["Lovano, Joe", "Osby, Greg"]);
    assert_eq!(
        first.copies,
        [CopySpec {
            barcode: "30007007467409".into(),
            location: Some("HUNT-AUDIO".into()),
            library: Some("HUNTINGTON".into()),
        }]
    );

    let barcodes: Vec<&str> = copies.iter().map(|c| c.barcode.as_str()).collect();
    assert_eq!(barcodes[1..3], ["30007007674582", "30007007465361"]);
    assert_eq!(barcodes[1236..], ["30007004596853", "30007002206604"]);
}

#[test]
fn jazz_reads_the_same_through_a_tiny_buffer() {
    let file = File::open(sample!("jazz_1k.mrc")).unwrap();
    let streamed = good(Iso2709Reader::new(BufReader::with_capacity(7, file)).collect());

    assert_eq!(streamed, good(iso(sample!("jazz_1k.mrc"))));
}

#[test]
fn french_titles_have_composed_accents() {
    let records = good(iso(sample!("lul_fre_100.mrc")));
    assert_eq!(records.len(), 100);
    assert!(records.iter().all(|r| r.warnings.is_empty()));

    let bibs = bibs(&records);
    let faguet = by_id(&bibs, "01-0011586");
    // MARC-8 has 0xE1 (grave) before "e"; Unicode wants one U+00E8.
    assert_eq!(
        faguet.title,
        "Dix-huiti\u{e8}me si\u{e8}cle : \u{e9}tudes litt\u{e9}raires"
    );
    assert_eq!(faguet.authors, ["Faguet, \u{c9}mile"]);
    assert_eq!(
        faguet.subjects,
        ["Litt\u{e9}rature fran\u{e7}aise -- 18e si\u{e8}cle -- Histoire et critique"]
    );
    assert_eq!(faguet.language.as_deref(), Some("fre"));

    let hotel_dieu = by_id(&bibs, "01-0135500");
    assert_eq!(
        hotel_dieu.title,
        "Histoire de l'H\u{f4}tel-Dieu de Qu\u{e9}bec"
    );
}

#[test]
fn damaged_records_are_reported_with_positions_and_reading_goes_on() {
    let items = iso(sample!("pymarc-bad_records.mrc"));
    assert_eq!(items.len(), 8);

    let errors: Vec<(usize, u64)> = items
        .iter()
        .filter_map(|item| item.as_ref().err())
        .map(|e| {
            assert!(!e.is_fatal());
            let position = e.position().unwrap();
            (position.index, position.offset)
        })
        .collect();
    assert_eq!(errors, [(1, 127), (2, 254), (3, 381), (4, 509), (5, 637)]);

    let damage = |i: usize| items[i].as_ref().unwrap_err().damage().cloned().unwrap();
    assert!(matches!(damage(1), Damage::BadBaseAddress(_)));
    assert!(matches!(damage(2), Damage::BadBaseAddress(_)));
    assert!(matches!(damage(3), Damage::BadDirectory(_)));
    assert!(matches!(damage(5), Damage::BadBaseAddress(_)));

    let title = "The pragmatic programmer : from journeyman to master";
    let first = items[0].as_ref().unwrap();
    assert_eq!(bib::from_record(first).title, title);
    assert!(items[6].as_ref().unwrap().fields.is_empty());
    assert_eq!(bib::from_record(items[7].as_ref().unwrap()).title, title);
}

#[test]
fn bad_isbns_are_kept_and_flagged_invalid() {
    let records = good(MarcXmlReader::new(&read(sample!("badisbns.xml"))[..]).collect());
    assert_eq!(records.len(), 10);

    let isbns: Vec<Vec<Isbn>> = bibs(&records).into_iter().map(|b| b.isbns).collect();
    let invalid = |v: &str| Isbn {
        value: v.into(),
        valid: false,
    };
    let valid = |v: &str| Isbn {
        value: v.into(),
        valid: true,
    };
    assert_eq!(isbns[0], [invalid("HL00361126")]);
    assert_eq!(isbns[1], [invalid("089542262X295")]);
    assert_eq!(
        isbns[2],
        [
            invalid("0553101315175"),
            valid("9780553204308"),
            valid("9780553268478"),
        ]
    );
    assert_eq!(isbns[4], [invalid("0440487331pbk.")]);
    assert_eq!(
        isbns[6],
        [invalid("978184533213X (hbk.)"), valid("9781845332136")]
    );
    assert_eq!(isbns[7], [invalid("(0373197527pbk.)")]);

    // In $a, so checked: a good EAN check digit but no 978/979 prefix.
    let last = bib::from_record(&records[9]);
    assert_eq!(last.isbns, [invalid("8901452100503")]);
    assert!(last.warnings[0].contains("8901452100503"));
}

#[test]
fn cyrillic_and_armenian_decode_from_a_file_mislabelled_marc8() {
    let records = good(iso(sample!("FSL.marc")));
    assert_eq!(records.len(), 52);
    assert!(records.iter().all(|r| r.leader.coding() == ' '));
    assert!(records
        .iter()
        .all(|r| r.warnings.iter().any(|w| w.contains("UTF-8"))));

    let bibs = bibs(&records);
    let russian = by_id(&bibs, "000538819");
    assert_eq!(russian.title, "Люди с чистой совестью : [Воспоминания]");
    assert_eq!(
        russian.authors,
        ["Вершигора, Петр Петрович", "Пчелко, И.И."]
    );
    assert_eq!(russian.publisher.as_deref(), Some("Правда"));

    let armenian = by_id(&bibs, "000539026");
    assert_eq!(armenian.title, "Արկածներ լուսնի վրայ");
    assert_eq!(armenian.authors, ["Գօլիարգօ"]);
}

#[test]
fn pymarc_utf8_xml_parses() {
    let records = good(MarcXmlReader::new(&read(sample!("pymarc-utf8.xml"))[..]).collect());
    assert_eq!(records.len(), 1);

    let record = &records[0];
    assert_eq!(record.leader.as_str(), "00640njm a2200205uu 4500");
    assert_eq!(record.control("001"), Some("ASP925318/clmu"));
    let contents = record.data_fields("505").next().unwrap();
    assert_eq!(contents.first('t'), Some("Pr\u{e9}ludes"));

    let bib = bib::from_record(record);
    assert_eq!(bib.title, "Zen Classics");
    assert_eq!(bib.publisher.as_deref(), Some("Virgin Classics"));
    assert_eq!(bib.year.as_deref(), Some("2008"));
}

#[test]
fn pymarc_test_dat_reads_with_isbns_converted() {
    let bibs = bibs(&good(iso(sample!("pymarc-test.dat"))));
    assert_eq!(bibs.len(), 10);

    let perl = by_id(&bibs, "IMchF:fol05865967");
    assert_eq!(perl.title, "Programming Perl");
    assert_eq!(
        perl.isbns[0],
        Isbn {
            value: "9780596000271".into(),
            valid: true,
        }
    );
}

#[test]
fn records_sniffs_the_format() {
    let xml = File::open(sample!("pymarc-utf8.xml")).unwrap();
    let mrc = File::open(sample!("pymarc-test.dat")).unwrap();

    assert_eq!(records(BufReader::new(xml)).unwrap().count(), 1);
    assert_eq!(records(BufReader::new(mrc)).unwrap().count(), 10);
}
