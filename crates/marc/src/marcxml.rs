//! MARCXML, the MARC 21 XML schema (`http://www.loc.gov/MARC21/slim`).
//!
//! Elements are matched by local name, so `marc:record` and a bare
//! `record` both work, inside a `collection` or as the document root.
//! MARCXML text is Unicode, so leader/09 is not consulted. A record whose
//! structure is unusable (a field without a usable tag) is reported and
//! skipped; XML that stops being well-formed ends the reader.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};

use quick_xml::events::{BytesStart, BytesText, Event};
use quick_xml::Reader;

use crate::error::{Damage, Position, RecordError};
use crate::record::{ControlField, DataField, Field, Leader, Record, Subfield, Tag};

/// Reads MARCXML records one at a time.
///
/// ```
/// use lectern_marc::marcxml::MarcXmlReader;
///
/// let xml = r#"<collection xmlns="http://www.loc.gov/MARC21/slim">
///   <record><leader>00000nam a2200000 a 4500</leader>
///     <datafield tag="245" ind1="0" ind2="0">
///       <subfield code="a">Pr&#233;ludes</subfield>
///     </datafield>
///   </record></collection>"#;
/// let record = MarcXmlReader::new(xml.as_bytes()).next().unwrap().unwrap();
/// assert_eq!(record.data_fields("245").next().unwrap().first('a'), Some("Préludes"));
/// ```
pub struct MarcXmlReader<R> {
    xml: Reader<R>,
    buf: Vec<u8>,
    index: usize,
    done: bool,
}

impl<R> std::fmt::Debug for MarcXmlReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarcXmlReader")
            .field("offset", &self.xml.buffer_position())
            .field("index", &self.index)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<R: Read> MarcXmlReader<BufReader<R>> {
    /// Reads from any [`Read`], buffering it.
    pub fn from_reader(input: R) -> Self {
        Self::new(BufReader::new(input))
    }
}

/// What went wrong inside one record.
enum Problem {
    /// The record is unusable; skip it.
    Damaged(Damage),
    /// The document is; stop.
    Fatal(RecordError),
}

type Step<T> = Result<T, Problem>;

impl<R: BufRead> MarcXmlReader<R> {
    /// Reads from a buffered input; a byte slice is one.
    pub fn new(input: R) -> Self {
        // Limitation: the document is read as UTF-8 whatever its XML
        // declaration says; text in another encoding (ISO-8859-1, UTF-16)
        // comes out with U+FFFD replacements and a warning per record.
        Self {
            xml: Reader::from_reader(input),
            buf: Vec::with_capacity(1024),
            index: 0,
            done: false,
        }
    }

    fn offset(&self) -> u64 {
        self.xml.buffer_position()
    }

    /// Reads up to the next `record` start tag. Returns its offset, or
    /// `None` at the end of the document.
    fn seek_record(&mut self) -> Result<Option<(u64, bool)>, RecordError> {
        loop {
            let before = self.offset();
            self.buf.clear();
            match self.xml.read_event_into(&mut self.buf) {
                Ok(Event::Start(e)) if e.local_name().as_ref() == b"record" => {
                    return Ok(Some((before, false)));
                }
                Ok(Event::Empty(e)) if e.local_name().as_ref() == b"record" => {
                    return Ok(Some((before, true)));
                }
                Ok(Event::Eof) => return Ok(None),
                Ok(_) => {}
                Err(e) => return Err(self.syntax(&e)),
            }
        }
    }

    fn syntax(&self, error: &quick_xml::Error) -> RecordError {
        RecordError::Syntax {
            offset: self.offset(),
            message: error.to_string(),
        }
    }

    /// Reads the content of a record up to its end tag.
    fn read_record(&mut self) -> Step<Record> {
        let mut builder = Builder::default();

        loop {
            self.buf.clear();
            let event = self.event()?;
            match event {
                Event::Start(e) => {
                    let start = Start::of(&e);
                    self.element(&start, false, &mut builder)?;
                }
                Event::Empty(e) => {
                    let start = Start::of(&e);
                    self.element(&start, true, &mut builder)?;
                }
                Event::End(e) if e.local_name().as_ref() == b"record" => break,
                Event::Eof => return Err(ends_inside()),
                _ => {}
            }
        }

        builder.finish()
    }

    fn event(&mut self) -> Step<Event<'static>> {
        match self.xml.read_event_into(&mut self.buf) {
            Ok(event) => Ok(event.into_owned()),
            Err(e) => Err(Problem::Fatal(self.syntax(&e))),
        }
    }

    /// Handles one child element of `record`.
    fn element(&mut self, start: &Start, empty: bool, builder: &mut Builder) -> Step<()> {
        match start.name.as_str() {
            "leader" => {
                let text = self.text(empty, builder)?;
                builder.leader(&text);
            }
            "controlfield" => {
                let text = self.text(empty, builder)?;
                builder.control(start, text);
            }
            "datafield" => {
                builder.open_data(start);
                if !empty {
                    self.subfields(builder)?;
                }
            }
            _ => {}
        }

        Ok(())
    }

    /// Reads `subfield` elements up to the end of the `datafield`.
    fn subfields(&mut self, builder: &mut Builder) -> Step<()> {
        loop {
            self.buf.clear();
            match self.event()? {
                Event::Start(e) if e.local_name().as_ref() == b"subfield" => {
                    let start = Start::of(&e);
                    let value = self.text(false, builder)?;
                    builder.subfield(&start, value);
                }
                Event::Empty(e) if e.local_name().as_ref() == b"subfield" => {
                    builder.subfield(&Start::of(&e), String::new());
                }
                Event::End(e) if e.local_name().as_ref() == b"datafield" => return Ok(()),
                Event::End(e) if e.local_name().as_ref() == b"record" => {
                    return Err(Problem::Damaged(Damage::BadXml(
                        "a datafield is not closed".into(),
                    )));
                }
                Event::Eof => return Err(ends_inside()),
                _ => {}
            }
        }
    }

    /// The text content of the element just opened, up to its end tag.
    fn text(&mut self, empty: bool, builder: &mut Builder) -> Step<String> {
        let mut text = String::new();
        if empty {
            return Ok(text);
        }

        let mut depth = 0usize;
        loop {
            self.buf.clear();
            match self.event()? {
                Event::Text(t) => text.push_str(&unescape(&t, builder)),
                Event::CData(c) => text.push_str(&String::from_utf8_lossy(&c)),
                Event::Start(_) => depth += 1,
                Event::End(_) if depth == 0 => return Ok(text),
                Event::End(_) => depth -= 1,
                Event::Eof => return Err(ends_inside()),
                _ => {}
            }
        }
    }

    fn damaged(&self, offset: u64, damage: Damage) -> RecordError {
        let position = Position {
            index: self.index,
            offset,
        };

        RecordError::Damaged { position, damage }
    }
}

impl<R: BufRead> Iterator for MarcXmlReader<R> {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }

        let (offset, empty) = match self.seek_record() {
            Ok(Some(found)) => found,
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(fatal) => {
                self.done = true;
                return Some(Err(fatal));
            }
        };

        let result = if empty {
            Builder::default().finish()
        } else {
            self.read_record()
        };

        let item = match result {
            Ok(record) => Ok(record),
            // Damage is only reported once the record's end tag (or the
            // document's end) has been read, so the next call starts clean.
            Err(Problem::Damaged(damage)) => Err(self.damaged(offset, damage)),
            Err(Problem::Fatal(fatal)) => {
                self.done = true;
                Err(fatal)
            }
        };
        self.index += 1;

        Some(item)
    }
}

impl<R: BufRead> std::iter::FusedIterator for MarcXmlReader<R> {}

fn ends_inside() -> Problem {
    Problem::Damaged(Damage::BadXml("the document ends inside it".into()))
}

/// The parts of a start tag that MARCXML uses.
struct Start {
    name: String,
    tag: Option<String>,
    ind1: Option<String>,
    ind2: Option<String>,
    code: Option<String>,
}

impl Start {
    fn of(e: &BytesStart<'_>) -> Self {
        let mut start = Start {
            name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
            tag: None,
            ind1: None,
            ind2: None,
            code: None,
        };

        for attr in e.attributes().flatten() {
            let value = match attr.unescape_value() {
                Ok(value) => value.into_owned(),
                Err(_) => String::from_utf8_lossy(&attr.value).into_owned(),
            };
            match attr.key.local_name().as_ref() {
                b"tag" => start.tag = Some(value),
                b"ind1" => start.ind1 = Some(value),
                b"ind2" => start.ind2 = Some(value),
                b"code" => start.code = Some(value),
                _ => {}
            }
        }

        start
    }
}

/// Text with entities resolved; on a bad entity or bad UTF-8, the raw
/// text and a warning.
fn unescape<'a>(text: &'a BytesText<'_>, builder: &mut Builder) -> Cow<'a, str> {
    if let Ok(clean) = text.unescape() {
        return clean;
    }

    builder.warn("text with an unknown entity or invalid UTF-8 kept as written");
    let raw = String::from_utf8_lossy(text.as_ref()).into_owned();

    match quick_xml::escape::unescape(&raw) {
        Ok(clean) => Cow::Owned(clean.into_owned()),
        Err(_) => Cow::Owned(raw),
    }
}

/// Collects one record's parts as they arrive.
#[derive(Default)]
struct Builder {
    leader: Option<Leader>,
    fields: Vec<Field>,
    warnings: Vec<String>,
    damage: Option<Damage>,
    /// Whether the last field opened is a data field subfields go to.
    in_data: bool,
}

impl Builder {
    fn warn(&mut self, warning: &str) {
        if !self.warnings.iter().any(|w| w == warning) {
            self.warnings.push(warning.to_owned());
        }
    }

    fn leader(&mut self, text: &str) {
        let (leader, changed) = Leader::lossy(text.as_bytes());
        if changed {
            self.warn("the leader is not 24 ASCII characters; padded or cut");
        }
        self.leader = Some(leader);
    }

    fn tag(&mut self, start: &Start) -> Option<Tag> {
        let text = start.tag.as_deref().unwrap_or_default();
        let tag = Tag::new(text);

        if tag.is_none() && self.damage.is_none() {
            self.damage = Some(Damage::BadXml(format!("{} with tag {text:?}", start.name)));
        }

        tag
    }

    fn control(&mut self, start: &Start, value: String) {
        self.in_data = false;
        if let Some(tag) = self.tag(start) {
            self.fields
                .push(Field::Control(ControlField { tag, value }));
        }
    }

    fn open_data(&mut self, start: &Start) {
        let Some(tag) = self.tag(start) else {
            self.in_data = false;
            return;
        };
        self.in_data = true;
        let ind1 = self.indicator(tag, start.ind1.as_deref());
        let ind2 = self.indicator(tag, start.ind2.as_deref());

        self.fields.push(Field::Data(DataField {
            tag,
            ind1,
            ind2,
            subfields: Vec::new(),
        }));
    }

    fn indicator(&mut self, tag: Tag, value: Option<&str>) -> char {
        let mut chars = value.unwrap_or(" ").chars();
        let ind = chars.next().unwrap_or(' ');

        if chars.next().is_some() || !(ind == ' ' || ind.is_ascii_graphic()) {
            self.warn(&format!(
                "field {tag} has an indicator that is not one ASCII character"
            ));
            return ' ';
        }

        ind
    }

    fn subfield(&mut self, start: &Start, value: String) {
        let mut chars = start.code.as_deref().unwrap_or_default().chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_graphic() => c,
            _ => {
                self.warn("a subfield code is not one ASCII character; read as '?'");
                '?'
            }
        };

        match self.fields.last_mut() {
            Some(Field::Data(field)) if self.in_data => {
                field.subfields.push(Subfield { code, value });
            }
            _ => {}
        }
    }

    fn finish(mut self) -> Step<Record> {
        if let Some(damage) = self.damage {
            return Err(Problem::Damaged(damage));
        }

        let leader = self.leader.unwrap_or_else(|| {
            self.warn("the record has no leader; a blank one stands in");
            Leader::lossy(b"").0
        });

        Ok(Record {
            leader,
            fields: self.fields,
            warnings: self.warnings,
        })
    }
}
