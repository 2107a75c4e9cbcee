//! The kind of material a record describes, from leader/06 (type of
//! record) and leader/07 (bibliographic level).

use serde::{Deserialize, Serialize};

use crate::record::Leader;

/// The kind of material, as the catalogue names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Material {
    /// Language material or manuscript text, not a serial.
    Book,
    /// A non-musical sound recording (leader/06 `i`).
    SoundRecording,
    /// A musical sound recording (leader/06 `j`).
    MusicRecording,
    /// Notated music, printed or manuscript (`c`, `d`).
    Score,
    /// A projected medium: film, video (`g`).
    Video,
    /// A cartographic item, printed or manuscript (`e`, `f`).
    Map,
    /// A computer file (`m`).
    ComputerFile,
    /// Language material issued in parts: a serial or integrating
    /// resource (leader/07 `b`, `i`, `s`).
    Serial,
    /// Mixed materials or a kit (`p`, `o`).
    Mixed,
    /// Anything else: graphics, objects, an unknown code.
    Other,
}

impl Material {
    /// Reads leader/06-07.
    pub fn from_leader(leader: &Leader) -> Self {
        match (leader.record_type(), leader.bibliographic_level()) {
            ('a' | 't', 'b' | 'i' | 's') => Material::Serial,
            ('a' | 't', _) => Material::Book,
            ('c' | 'd', _) => Material::Score,
            ('e' | 'f', _) => Material::Map,
            ('g', _) => Material::Video,
            ('i', _) => Material::SoundRecording,
            ('j', _) => Material::MusicRecording,
            ('m', _) => Material::ComputerFile,
            ('o' | 'p', _) => Material::Mixed,
            _ => Material::Other,
        }
    }

    /// The name stored in [`super::BibRecord::material`].
    pub fn as_str(self) -> &'static str {
        match self {
            Material::Book => "book",
            Material::SoundRecording => "sound_recording",
            Material::MusicRecording => "music_recording",
            Material::Score => "score",
            Material::Video => "video",
            Material::Map => "map",
            Material::ComputerFile => "computer_file",
            Material::Serial => "serial",
            Material::Mixed => "mixed",
            Material::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material(leader: &str) -> &'static str {
        Material::from_leader(&Leader::from_bytes(leader.as_bytes()).unwrap()).as_str()
    }

    #[test]
    fn leader_codes_map_to_names() {
        assert_eq!(material("00962njm  2200253 a 4500"), "music_recording");
        assert_eq!(material("00582nam  2200217 a 4500"), "book");
        assert_eq!(material("00582nas  2200217 a 4500"), "serial");
        assert_eq!(material("00663ncm a2200229Ia 4500"), "score");
        assert_eq!(material("00663ngm a2200229Ia 4500"), "video");
        assert_eq!(material("00663nkm a2200229Ia 4500"), "other");
    }
}
