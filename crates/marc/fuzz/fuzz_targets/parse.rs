//! Feeds arbitrary bytes to both readers. Neither may panic; every record
//! either maps to a `BibRecord` and, when ISO 2709 can hold it, survives
//! a write-then-read round trip unchanged.

#![no_main]

use lectern_marc::iso2709::{parse_record, to_iso2709, Iso2709Reader};
use lectern_marc::marcxml::MarcXmlReader;
use lectern_marc::{bib, Record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for record in Iso2709Reader::new(data).flatten() {
        check(&record);
    }
    for record in MarcXmlReader::new(data).flatten() {
        check(&record);
    }
});

fn check(record: &Record) {
    let mapped = bib::from_record(record);
    assert!(mapped.copies.iter().all(|c| !c.barcode.is_empty()));

    // A write error (a delimiter inside a value, a control field with a
    // data tag) is a legitimate refusal; anything written must read back.
    let Ok(bytes) = to_iso2709(record) else {
        return;
    };
    let back = parse_record(&bytes).expect("a written record reads back");
    assert_eq!(back.fields, record.fields);
    assert_eq!(to_iso2709(&back).as_ref(), Ok(&bytes));
}
