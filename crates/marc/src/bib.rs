//! Mapping a MARC record to a plain bibliographic record: title, authors,
//! subjects, ISBNs, imprint, material, language and the copies a
//! catalogue should create.
//!
//! The mapping never fails: whatever is odd (an invalid ISBN, a copy
//! without a barcode, a character the reader could not decode) lands in
//! [`BibRecord::warnings`] and the rest is still mapped.

mod material;
mod text;

use serde::{Deserialize, Serialize};

use crate::isbn;
use crate::record::{DataField, Record};

pub use material::Material;
use text::{clean, first_year, trim_isbd, trim_name};

/// A bibliographic record as the catalogue stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BibRecord {
    /// `003:001` when 003 is present, else 001, trimmed.
    pub source_id: Option<String>,
    /// 245 `$a $b $n $p`, without the trailing ISBD punctuation.
    pub title: String,
    /// 100/110/111 `$a`, then 700/710/711 `$a`; trimmed, deduplicated.
    pub authors: Vec<String>,
    /// 600/610/650/651/655 `$a` with `$v $x $y $z` joined by ` -- `.
    pub subjects: Vec<String>,
    /// 020 `$a` (checked) and `$z` (cancelled, so never valid).
    pub isbns: Vec<Isbn>,
    /// 264 (publication first) or 260 `$b`.
    pub publisher: Option<String>,
    /// Four digits from 264/260 `$c`, else 008/07-10.
    pub year: Option<String>,
    /// The kind of material, from leader/06-07: see [`Material`].
    pub material: String,
    /// 008/35-37, a MARC language code such as `eng`.
    pub language: Option<String>,
    /// The copies (items) described in 949 or 852.
    pub copies: Vec<CopySpec>,
    /// Everything odd found while reading and mapping the record.
    pub warnings: Vec<String>,
}

/// An ISBN as found in the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isbn {
    /// When valid, the ISBN-13 as 13 digits; otherwise the text as
    /// written, trimmed.
    pub value: String,
    /// Whether the check digit matched (never for 020 `$z`).
    pub valid: bool,
}

/// One copy (item) to create for the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopySpec {
    /// The item's barcode.
    pub barcode: String,
    /// Shelving location.
    pub location: Option<String>,
    /// Owning library or branch.
    pub library: Option<String>,
}

/// Maps a MARC record to a [`BibRecord`]. Never fails; see
/// [`BibRecord::warnings`].
pub fn from_record(r: &Record) -> BibRecord {
    let mut warnings = r.warnings.clone();

    let title = title(r);
    if title.is_empty() {
        warnings.push("no title in 245 $a".into());
    }
    let (publisher, imprint_year) = imprint(r);

    BibRecord {
        source_id: source_id(r),
        title,
        authors: authors(r),
        subjects: subjects(r),
        isbns: isbns(r, &mut warnings),
        publisher,
        year: imprint_year.or_else(|| year_008(r)),
        material: Material::from_leader(&r.leader).as_str().to_owned(),
        language: language(r),
        copies: copies(r, &mut warnings),
        warnings,
    }
}

fn source_id(r: &Record) -> Option<String> {
    let id = r.control("001").map(str::trim).filter(|s| !s.is_empty())?;

    match r.control("003").map(str::trim).filter(|s| !s.is_empty()) {
        Some(org) => Some(format!("{org}:{id}")),
        None => Some(id.to_owned()),
    }
}

fn title(r: &Record) -> String {
    let Some(field) = r.data_fields("245").next() else {
        return String::new();
    };
    let parts: Vec<String> = field
        .subfields
        .iter()
        .filter(|s| matches!(s.code, 'a' | 'b' | 'n' | 'p'))
        .map(|s| clean(&s.value))
        .filter(|s| !s.is_empty())
        .collect();

    trim_isbd(&parts.join(" ")).to_owned()
}

fn authors(r: &Record) -> Vec<String> {
    let tags = ["100", "110", "111", "700", "710", "711"];
    let names = tags
        .iter()
        .flat_map(|tag| r.data_fields(tag))
        .filter_map(|field| field.first('a'))
        .map(|name| trim_name(&clean(name)).to_owned());

    dedupe(names)
}

fn subjects(r: &Record) -> Vec<String> {
    let tags = ["600", "610", "650", "651", "655"];
    let headings = tags
        .iter()
        .flat_map(|tag| r.data_fields(tag))
        .filter_map(heading);

    dedupe(headings)
}

/// `$a`, then its subdivisions (`$v` form, `$x` general, `$y`
/// chronological, `$z` geographic) in their order.
fn heading(field: &DataField) -> Option<String> {
    let main = trim_name(&clean(field.first('a')?)).to_owned();
    if main.is_empty() {
        return None;
    }

    let subdivisions = field
        .subfields
        .iter()
        .filter(|s| matches!(s.code, 'v' | 'x' | 'y' | 'z'))
        .map(|s| trim_name(&clean(&s.value)).to_owned())
        .filter(|s| !s.is_empty());

    let parts: Vec<String> = std::iter::once(main).chain(subdivisions).collect();

    Some(parts.join(" -- "))
}

fn isbns(r: &Record, warnings: &mut Vec<String>) -> Vec<Isbn> {
    let mut found: Vec<Isbn> = Vec::new();

    for field in r.data_fields("020") {
        for subfield in &field.subfields {
            let isbn = match subfield.code {
                'a' => checked_isbn(&subfield.value, warnings),
                'z' => as_written(&subfield.value).map(|value| Isbn {
                    value,
                    valid: false,
                }),
                _ => None,
            };
            if let Some(isbn) = isbn.filter(|i| !found.contains(i)) {
                found.push(isbn);
            }
        }
    }

    found
}

fn checked_isbn(text: &str, warnings: &mut Vec<String>) -> Option<Isbn> {
    let written = as_written(text)?;

    match isbn::parse(&written) {
        Ok(value) => Some(Isbn { value, valid: true }),
        Err(why) => {
            warnings.push(format!("invalid ISBN {written:?} in 020 $a: {why}"));
            Some(Isbn {
                value: written,
                valid: false,
            })
        }
    }
}

/// The ISBN text trimmed of spaces and a trailing ` :` or ` ;`; `None`
/// when nothing is left.
fn as_written(text: &str) -> Option<String> {
    let text = clean(text);
    let trimmed = text.trim_end_matches([':', ';', ' ']);

    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// Publisher and year from the imprint: 264 with second indicator 1
/// (publication) first, then any 264, then 260.
fn imprint(r: &Record) -> (Option<String>, Option<String>) {
    let publication = r.data_fields("264").filter(|f| f.ind2 == '1');
    let other = r.data_fields("264").filter(|f| f.ind2 != '1');
    let fields: Vec<&DataField> = publication
        .chain(other)
        .chain(r.data_fields("260"))
        .collect();

    let publisher = fields
        .iter()
        .flat_map(|f| f.values('b'))
        .map(|b| trim_name(&clean(b)).to_owned())
        .find(|b| !b.is_empty());
    let year = fields
        .iter()
        .flat_map(|f| f.values('c'))
        .find_map(|c| first_year(c).map(str::to_owned));

    (publisher, year)
}

/// 008/07-10 when it is four digits (9999 means "unknown").
fn year_008(r: &Record) -> Option<String> {
    let date = r.control("008")?.get(7..11)?;
    let digits = date.bytes().all(|b| b.is_ascii_digit());

    (digits && date != "9999").then(|| date.to_owned())
}

/// 008/35-37 when it is three letters.
fn language(r: &Record) -> Option<String> {
    let code = r.control("008")?.get(35..38)?;
    let letters = code.bytes().all(|b| b.is_ascii_alphabetic());

    letters.then(|| code.to_ascii_lowercase())
}

/// Copies from 949 (`$i` barcode, `$l` location, `$m` library) and 852
/// (`$p` barcode, `$b` library, `$c` shelving location).
fn copies(r: &Record, warnings: &mut Vec<String>) -> Vec<CopySpec> {
    let items = r.data_fields("949").map(|f| (f, ['i', 'l', 'm']));
    let holdings = r.data_fields("852").map(|f| (f, ['p', 'c', 'b']));
    let mut copies: Vec<CopySpec> = Vec::new();

    for (field, [barcode, location, library]) in items.chain(holdings) {
        let value = |code| field.first(code).map(clean).filter(|v| !v.is_empty());
        let Some(barcode_value) = value(barcode) else {
            warnings.push(format!(
                "a copy in {} has no barcode (${barcode}); skipped",
                field.tag
            ));
            continue;
        };
        if copies.iter().any(|c| c.barcode == barcode_value) {
            warnings.push(format!("barcode {barcode_value} appears twice; kept once"));
            continue;
        }

        copies.push(CopySpec {
            barcode: barcode_value,
            location: value(location),
            library: value(library),
        });
    }

    copies
}

/// Keeps the first of equal non-empty strings, in order.
fn dedupe(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();

    for item in items {
        if !item.is_empty() && !out.contains(&item) {
            out.push(item);
        }
    }

    out
}
