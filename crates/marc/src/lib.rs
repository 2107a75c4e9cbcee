//! MARC 21 for Lectern: read bibliographic records from ISO 2709
//! (`.mrc`) and MARCXML files, decode MARC-8 and UTF-8 text to Unicode,
//! and map each record to the plain [`bib::BibRecord`] the catalogue
//! stores.
//!
//! This crate knows nothing about HTTP or databases. Readers are
//! iterators that yield one `Result` per record: a damaged record is
//! reported with its position and reading goes on; no input makes them
//! panic.
//!
//! Known limits: East Asian (EACC) MARC-8 text becomes U+FFFD with a
//! warning (see [`charset`]), and MARCXML is read as UTF-8 only.
//!
//! ```
//! use lectern_marc::{bib, iso2709::Iso2709Reader};
//!
//! let bytes: &[u8] = b"00049     2200037   4500245001100000\x1e10\x1faCaf\xe2e.\x1e\x1d";
//! let record = Iso2709Reader::new(bytes).next().unwrap().unwrap();
//! assert_eq!(bib::from_record(&record).title, "Caf\u{e9}");
//! ```

pub mod bib;
pub mod charset;
pub mod error;
pub mod format;
pub mod isbn;
pub mod iso2709;
pub mod marcxml;
pub mod record;

pub use error::{Damage, Position, RecordError, WriteError};
pub use format::{records, Format, Records};
pub use record::{ControlField, DataField, Field, Leader, Record, Subfield, Tag};
