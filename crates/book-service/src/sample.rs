//! The sample catalogue that ships inside Lectern: about thirty public
//! domain works (books, scores, sound recordings) in several languages,
//! so a newcomer's `lectern up` has something to search and lend.
//!
//! With `LECTERN_SAMPLE_CATALOGUE=true` it is loaded at start when the
//! catalogue is empty. Loading is the import's upsert, so two replicas
//! starting together on one database load it once between them.

use lectern_platform::db::Database;

use crate::api::prepare;
use crate::record::RecordInput;
use crate::store::{self, ImportCounts, Store};

/// The records, a JSON array of `BibRecord`.
const CATALOGUE: &str = include_str!("../sample/catalogue.json");

/// Why the sample catalogue could not be loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SampleError {
    /// The bundled JSON does not parse (a build defect).
    #[error("the bundled sample catalogue is not valid")]
    Parse(#[from] serde_json::Error),
    /// A bundled record is refused.
    #[error("the bundled sample catalogue has a bad record")]
    Record(#[source] crate::error::BookError),
    /// The database failed.
    #[error("cannot write the sample catalogue")]
    Store(#[from] crate::error::BookError),
    /// The transaction failed.
    #[error("cannot write the sample catalogue")]
    Database(#[from] sqlx::Error),
}

/// The bundled records, parsed.
pub(crate) fn records() -> Result<Vec<RecordInput>, serde_json::Error> {
    serde_json::from_str(CATALOGUE)
}

/// Loads the sample when the catalogue has no record; `None` when it
/// had some and nothing was done.
pub(crate) async fn load_if_empty(
    db: &Database,
) -> Result<Option<ImportCounts>, SampleError> {
    let store = Store::new(db.clone());
    if store.count_books().await? > 0 {
        return Ok(None);
    }

    let prepared = prepare(records()?).map_err(SampleError::Record)?;
    let mut tx = db.pool.begin().await?;
    let counts = store::import(&mut tx, prepared).await?;
    tx.commit().await?;

    tracing::info!(
        event.action = "sample-catalogue-loaded",
        imported = counts.imported,
        updated = counts.updated,
        copies = counts.copies,
        "Loaded the sample catalogue"
    );
    Ok(Some(counts))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use lectern_marc::isbn;

    use super::*;

    #[test]
    fn the_sample_parses_and_every_record_is_accepted() {
        let prepared = prepare(records().unwrap()).unwrap();

        assert!((25..=40).contains(&prepared.len()), "{}", prepared.len());
        let keys: HashSet<_> = prepared.iter().map(|p| &p.key).collect();
        assert_eq!(keys.len(), prepared.len(), "record keys are unique");
    }

    #[test]
    fn the_sample_is_varied() {
        let prepared = prepare(records().unwrap()).unwrap();
        let count = |material: &str| {
            prepared
                .iter()
                .filter(|p| p.record.material == material)
                .count()
        };

        assert!(count("score") >= 2);
        assert!(count("music_recording") + count("sound_recording") >= 2);
        let languages: HashSet<_> = prepared
            .iter()
            .filter_map(|p| p.record.language.as_deref())
            .collect();
        for language in ["fre", "ger", "spa", "eng"] {
            assert!(languages.contains(language), "{language}");
        }
    }

    #[test]
    fn sample_barcodes_are_unique_and_every_record_has_copies() {
        let prepared = prepare(records().unwrap()).unwrap();
        let mut seen = HashSet::new();

        for p in &prepared {
            assert!(
                (1..=3).contains(&p.record.copies.len()),
                "{}",
                p.record.title
            );
            for copy in &p.record.copies {
                assert!(copy.barcode.starts_with("LEC-"), "{}", copy.barcode);
                assert!(seen.insert(copy.barcode.clone()), "{}", copy.barcode);
            }
        }
    }

    #[test]
    fn sample_isbns_are_all_valid() {
        let raw: Vec<serde_json::Value> =
            serde_json::from_str(CATALOGUE).unwrap();

        for record in raw {
            for isbn_value in record["isbns"].as_array().into_iter().flatten() {
                let text = isbn_value["value"].as_str().unwrap();
                assert_eq!(isbn_value["valid"], true, "{text}");
                assert_eq!(isbn::parse(text).as_deref(), Ok(text), "{text}");
            }
        }
    }
}
