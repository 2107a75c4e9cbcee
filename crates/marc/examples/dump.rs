//! Prints every record of a MARC file (ISO 2709 or MARCXML) as one JSON
//! line with its mapped `BibRecord`; damaged records go to stderr.
//!
//! `cargo run -p lectern-marc --example dump -- FILE`

use std::fs::File;
use std::io::BufReader;
use std::process::ExitCode;

use lectern_marc::{bib, records};

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: dump FILE");
        return ExitCode::FAILURE;
    };

    match dump(&path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{path}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dump(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let input = BufReader::new(File::open(path)?);

    for item in records(input)? {
        match item {
            Ok(record) => {
                let line = serde_json::json!({
                    "record": &record,
                    "bib": bib::from_record(&record),
                });
                println!("{line}");
            }
            Err(e) => eprintln!("{e}"),
        }
    }

    Ok(())
}
