//! Records as clients send them, checked and made ready to store.
//!
//! [`RecordInput`] is what `POST /api/books` and the import take: the
//! fields of [`BibRecord`], all optional but the title, so a serialized
//! `BibRecord` and a hand-written `{"title": "..."}` are both accepted.
//! [`RecordInput::into_bib`] trims and checks it; [`Prepared`] adds what
//! the store needs: the record's key and its folded search columns.

use lectern_marc::bib::{BibRecord, CopySpec, Isbn, Material};
use lectern_marc::isbn;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fold::fold;

/// A record as a client sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RecordInput {
    #[serde(default)]
    source_id: Option<String>,
    title: String,
    #[serde(default)]
    authors: Vec<String>,
    #[serde(default)]
    subjects: Vec<String>,
    #[serde(default)]
    isbns: Vec<IsbnInput>,
    #[serde(default)]
    publisher: Option<String>,
    #[serde(default)]
    year: Option<String>,
    #[serde(default)]
    material: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    copies: Vec<CopyInput>,
    #[serde(default)]
    warnings: Vec<String>,
}

/// An ISBN as sent: `"978..."` or `{"value": "...", "valid": bool}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum IsbnInput {
    /// Just the text; checked here.
    Text(String),
    /// The shape `BibRecord` serializes to.
    Full {
        /// The ISBN as written or as 13 digits.
        value: String,
        /// The sender's verdict; `false` is kept (a cancelled ISBN may
        /// have a correct check digit), `true` is checked again.
        #[serde(default)]
        valid: Option<bool>,
    },
}

/// A copy inside a record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CopyInput {
    barcode: String,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    library: Option<String>,
}

/// Why a record was refused, in words for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct InvalidRecord(pub(crate) String);

impl RecordInput {
    /// Trims every field and checks the record.
    pub(crate) fn into_bib(self) -> Result<BibRecord, InvalidRecord> {
        let title = self.title.trim().to_owned();
        if title.is_empty() {
            return Err(InvalidRecord("title must not be empty".into()));
        }

        let record = BibRecord {
            source_id: non_empty(self.source_id),
            title,
            authors: trimmed_list(self.authors),
            subjects: trimmed_list(self.subjects),
            isbns: self.isbns.into_iter().filter_map(checked_isbn).collect(),
            publisher: non_empty(self.publisher),
            year: non_empty(self.year),
            material: material(self.material)?,
            language: non_empty(self.language),
            copies: copies(self.copies)?,
            warnings: self.warnings,
        };
        within_limits(&record)?;
        Ok(record)
    }
}

/// The longest title, in characters. MARC's 245 field fits in 9,999
/// bytes; real titles stay far below this.
const MAX_TITLE: usize = 2000;
/// The longest author, subject, publisher, year, language or source id.
const MAX_FIELD: usize = 500;
/// The most authors, subjects, ISBNs or warnings one record may list.
const MAX_LIST: usize = 200;

/// Refuses a record whose fields are longer than any real catalogue
/// needs, so one request cannot make every search page huge.
fn within_limits(record: &BibRecord) -> Result<(), InvalidRecord> {
    let too_long = |name: &str, max: usize| {
        InvalidRecord(format!("{name} is longer than {max} characters"))
    };
    if record.title.chars().count() > MAX_TITLE {
        return Err(too_long("the title", MAX_TITLE));
    }
    let singles = [
        ("source_id", &record.source_id),
        ("publisher", &record.publisher),
        ("year", &record.year),
        ("language", &record.language),
    ];
    for (name, value) in singles {
        if value
            .as_ref()
            .is_some_and(|v| v.chars().count() > MAX_FIELD)
        {
            return Err(too_long(name, MAX_FIELD));
        }
    }
    let lists = [
        ("authors", &record.authors),
        ("subjects", &record.subjects),
        ("warnings", &record.warnings),
    ];
    for (name, items) in lists {
        if items.len() > MAX_LIST {
            return Err(InvalidRecord(format!(
                "{name} lists more than {MAX_LIST} entries"
            )));
        }
        if items.iter().any(|i| i.chars().count() > MAX_FIELD) {
            return Err(too_long(&format!("an entry of {name}"), MAX_FIELD));
        }
    }
    if record.isbns.len() > MAX_LIST {
        return Err(InvalidRecord(format!(
            "isbns lists more than {MAX_LIST} entries"
        )));
    }
    Ok(())
}

/// `value` trimmed, `None` when nothing is left.
pub(crate) fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn trimmed_list(items: Vec<String>) -> Vec<String> {
    items
        .into_iter()
        .filter_map(|item| non_empty(Some(item)))
        .collect()
}

/// An ISBN is valid when the sender did not say otherwise and its check
/// digit matches; a valid one is stored as its 13 digits.
fn checked_isbn(input: IsbnInput) -> Option<Isbn> {
    let (value, claimed) = match input {
        IsbnInput::Text(value) => (value, None),
        IsbnInput::Full { value, valid } => (value, valid),
    };
    let value = non_empty(Some(value))?;
    if claimed == Some(false) {
        return Some(Isbn {
            value,
            valid: false,
        });
    }

    Some(match isbn::parse(&value) {
        Ok(isbn13) => Isbn {
            value: isbn13,
            valid: true,
        },
        Err(_) => Isbn {
            value,
            valid: false,
        },
    })
}

/// One of the names of [`Material`]; `book` when unset.
fn material(value: Option<String>) -> Result<String, InvalidRecord> {
    let Some(name) = non_empty(value) else {
        return Ok(Material::Book.as_str().to_owned());
    };
    let json = serde_json::Value::String(name.clone());

    match serde_json::from_value::<Material>(json) {
        Ok(material) => Ok(material.as_str().to_owned()),
        Err(_) => Err(InvalidRecord(format!(
            "material {name:?} is not one of book, sound_recording, \
             music_recording, score, video, map, computer_file, serial, \
             mixed, other"
        ))),
    }
}

fn copies(inputs: Vec<CopyInput>) -> Result<Vec<CopySpec>, InvalidRecord> {
    let mut copies: Vec<CopySpec> = Vec::with_capacity(inputs.len());

    for (i, input) in inputs.into_iter().enumerate() {
        let barcode = checked_barcode(&input.barcode)
            .map_err(|why| InvalidRecord(format!("copies[{i}]: {why}")))?;
        if copies.iter().any(|c| c.barcode == barcode) {
            return Err(InvalidRecord(format!(
                "barcode {barcode} appears twice in the record"
            )));
        }
        copies.push(CopySpec {
            barcode,
            location: non_empty(input.location),
            library: non_empty(input.library),
        });
    }

    Ok(copies)
}

/// The longest barcode accepted.
const MAX_BARCODE_LEN: usize = 64;

/// A barcode trimmed; it must not be empty, too long or hold control
/// characters.
pub(crate) fn checked_barcode(barcode: &str) -> Result<String, InvalidRecord> {
    let barcode = barcode.trim();
    if barcode.is_empty() {
        return Err(InvalidRecord("the barcode must not be empty".into()));
    }
    if barcode.chars().count() > MAX_BARCODE_LEN {
        return Err(InvalidRecord(format!(
            "the barcode is longer than {MAX_BARCODE_LEN} characters"
        )));
    }
    if barcode.chars().any(char::is_control) {
        return Err(InvalidRecord(
            "the barcode holds control characters".into(),
        ));
    }

    Ok(barcode.to_owned())
}

/// A checked record with its key and search columns.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// What identifies the record across imports; see [`record_key`].
    pub(crate) key: String,
    /// The record.
    pub(crate) record: BibRecord,
    /// The title, folded.
    pub(crate) title_fold: String,
    /// The authors, folded, one per line.
    pub(crate) authors_fold: String,
    /// The subjects, folded, one per line.
    pub(crate) subjects_fold: String,
    /// Every ISBN as a search token, space-separated and space-framed.
    pub(crate) isbn_keys: String,
}

impl Prepared {
    /// Computes the key and the search columns of `record`.
    pub(crate) fn new(record: BibRecord) -> Self {
        Self {
            key: record_key(&record),
            title_fold: fold(&record.title),
            authors_fold: fold(&record.authors.join("\n")),
            subjects_fold: fold(&record.subjects.join("\n")),
            isbn_keys: isbn_keys(&record.isbns),
            record,
        }
    }
}

/// `source_id` when present, else `isbn:` and the first valid ISBN-13,
/// else `hash:` and the SHA-256 of the folded title, authors and year.
pub(crate) fn record_key(record: &BibRecord) -> String {
    if let Some(id) = &record.source_id {
        return id.clone();
    }
    if let Some(isbn) = record.isbns.iter().find(|i| i.valid) {
        return format!("isbn:{}", isbn.value);
    }

    let text = format!(
        "{}|{}|{}",
        fold(&record.title),
        fold(&record.authors.join(";")),
        record.year.as_deref().unwrap_or_default()
    );
    format!("hash:{:x}", Sha256::digest(text.as_bytes()))
}

/// The search tokens of a record's ISBNs: ` 9780141439518 0000X `.
fn isbn_keys(isbns: &[Isbn]) -> String {
    let tokens: Vec<String> = isbns
        .iter()
        .filter_map(|i| compact_isbn(&i.value))
        .collect();

    if tokens.is_empty() {
        String::new()
    } else {
        format!(" {} ", tokens.join(" "))
    }
}

/// The digits (and `X`) of an ISBN-looking text: hyphens and spaces
/// dropped, an `ISBN` prefix and a trailing qualifier ignored. `None`
/// when no digits are left.
pub(crate) fn compact_isbn(text: &str) -> Option<String> {
    let upper = text.trim().to_uppercase();
    let body = upper.strip_prefix("ISBN").unwrap_or(&upper);
    let compact: String = body
        .trim_start_matches([':', ' '])
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, 'X' | '-' | ' '))
        .filter(|c| c.is_ascii_digit() || *c == 'X')
        .collect();

    (!compact.is_empty()).then_some(compact)
}

/// The tokens an ISBN query may match: its compact form and, when it is
/// a valid ISBN-10 or 13, the ISBN-13.
pub(crate) fn isbn_query_tokens(text: &str) -> Vec<String> {
    let Some(compact) = compact_isbn(text) else {
        return Vec::new();
    };
    let mut tokens = vec![compact.clone()];
    if let Ok(isbn13) = isbn::parse(&compact) {
        if isbn13 != compact {
            tokens.push(isbn13);
        }
    }

    tokens
}

/// Whether `text` is only what an ISBN is written with.
pub(crate) fn looks_like_isbn(text: &str) -> bool {
    let text = text.trim();
    let body = text
        .strip_prefix("ISBN")
        .or_else(|| text.strip_prefix("isbn"))
        .unwrap_or(text);
    let body = body.trim_start_matches([':', ' ']);

    !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, 'X' | 'x' | '-' | ' '))
        && body.chars().any(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: serde_json::Value) -> RecordInput {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_title_alone_is_a_record() {
        let bib = input(serde_json::json!({"title": "  Révélations "}))
            .into_bib()
            .unwrap();

        assert_eq!(bib.title, "Révélations");
        assert_eq!(bib.material, "book");
        assert!(bib.copies.is_empty());
    }

    #[test]
    fn fields_past_their_limits_are_refused() {
        let title = "t".repeat(MAX_TITLE + 1);
        let author = "a".repeat(MAX_FIELD + 1);
        let many: Vec<String> = (0..=MAX_LIST).map(|i| i.to_string()).collect();

        let long_title = input(serde_json::json!({ "title": title }));
        let long_author =
            input(serde_json::json!({ "title": "T", "authors": [author] }));
        let many_subjects =
            input(serde_json::json!({ "title": "T", "subjects": many }));
        let at_limit = input(serde_json::json!({
            "title": "t".repeat(MAX_TITLE),
            "authors": ["a".repeat(MAX_FIELD)],
        }));

        assert!(long_title.into_bib().is_err());
        assert!(long_author.into_bib().is_err());
        assert!(many_subjects.into_bib().is_err());
        assert!(at_limit.into_bib().is_ok());
    }

    #[test]
    fn an_empty_title_or_barcode_is_refused() {
        let empty_title = input(serde_json::json!({"title": "  "}));
        assert!(empty_title.into_bib().is_err());

        let empty_barcode = input(serde_json::json!({
            "title": "T", "copies": [{"barcode": " "}]
        }));
        let why = empty_barcode.into_bib().unwrap_err();
        assert!(why.0.contains("copies[0]"), "{why}");
    }

    #[test]
    fn twice_the_same_barcode_in_a_record_is_refused() {
        let twice = input(serde_json::json!({
            "title": "T", "copies": [{"barcode": "A"}, {"barcode": " A"}]
        }));
        assert!(twice.into_bib().is_err());
    }

    #[test]
    fn unknown_material_is_refused() {
        let odd = input(serde_json::json!({"title": "T", "material": "vinyl"}));
        assert!(odd.into_bib().is_err());

        let score =
            input(serde_json::json!({"title": "T", "material": "score"}));
        assert_eq!(score.into_bib().unwrap().material, "score");
    }

    #[test]
    fn isbns_are_checked_and_stored_as_isbn13() {
        let bib = input(serde_json::json!({
            "title": "T",
            "isbns": [
                "0-14-143951-3",
                {"value": "9780141439518", "valid": false},
                {"value": "0-14-143951-4", "valid": true}
            ]
        }))
        .into_bib()
        .unwrap();

        let got: Vec<_> =
            bib.isbns.iter().map(|i| (&*i.value, i.valid)).collect();
        assert_eq!(
            got,
            [
                ("9780141439518", true),
                ("9780141439518", false),
                ("0-14-143951-4", false)
            ]
        );
    }

    #[test]
    fn a_serialized_bib_record_is_accepted() {
        let bib = BibRecord {
            source_id: Some("x:1".into()),
            title: "Faust".into(),
            authors: vec!["Goethe, Johann Wolfgang von".into()],
            subjects: vec![],
            isbns: vec![],
            publisher: None,
            year: Some("1808".into()),
            material: "book".into(),
            language: Some("ger".into()),
            copies: vec![CopySpec {
                barcode: "B1".into(),
                location: None,
                library: Some("Main".into()),
            }],
            warnings: vec!["odd".into()],
        };
        let json = serde_json::to_value(&bib).unwrap();

        assert_eq!(input(json).into_bib().unwrap(), bib);
    }

    #[test]
    fn keys_prefer_source_id_then_isbn_then_hash() {
        let mut bib = input(serde_json::json!({
            "source_id": "ocm1", "title": "Les Misérables",
            "authors": ["Hugo, Victor"], "year": "1862",
            "isbns": ["9780140444308"]
        }))
        .into_bib()
        .unwrap();
        assert_eq!(record_key(&bib), "ocm1");

        bib.source_id = None;
        assert_eq!(record_key(&bib), "isbn:9780140444308");

        bib.isbns.clear();
        let hash = record_key(&bib);
        assert!(hash.starts_with("hash:"));
        bib.title = "LES MISERABLES".into();
        assert_eq!(record_key(&bib), hash, "the hash is of folded text");
    }

    #[test]
    fn isbn_queries_match_both_forms() {
        assert_eq!(
            isbn_query_tokens("0-14-143951-3"),
            ["0141439513", "9780141439518"]
        );
        assert_eq!(isbn_query_tokens("978-0-14-143951-8"), ["9780141439518"]);
        assert_eq!(
            isbn_query_tokens("ISBN 0-8044-2957-x"),
            ["080442957X", "9780804429573"]
        );
        assert!(isbn_query_tokens("abc").is_empty());
        assert!(looks_like_isbn("978-0-14-143951-8"));
        assert!(looks_like_isbn("isbn 080442957x"));
        assert!(!looks_like_isbn("hugo"));
        assert!(!looks_like_isbn("--"));
    }
}
