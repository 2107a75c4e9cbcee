//! Folding text for search, so that case and accents never matter.
//!
//! Stored columns and query words go through [`fold`]: lower case,
//! Unicode NFD with the combining marks removed, and a few letters that
//! are not decomposable spelled out (`œ` as `oe`, `ß` as `ss`...). Search
//! then compares folded text with `LIKE`, which behaves the same on
//! SQLite and PostgreSQL.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// The escape character used in every `LIKE ... ESCAPE` clause.
pub(crate) const LIKE_ESCAPE: char = '\\';

/// `text` in lower case, without accents and with ligatures spelled out.
pub(crate) fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let lower = text.to_lowercase();

    for c in lower.nfd().filter(|c| !is_combining_mark(*c)) {
        match c {
            'œ' => out.push_str("oe"),
            'æ' => out.push_str("ae"),
            'ß' => out.push_str("ss"),
            'ø' => out.push('o'),
            'ł' => out.push('l'),
            'đ' => out.push('d'),
            other => out.push(other),
        }
    }

    out
}

/// The folded words of a query, split on whitespace.
pub(crate) fn words(text: &str) -> Vec<String> {
    fold(text).split_whitespace().map(str::to_owned).collect()
}

/// A `LIKE` pattern matching `word` anywhere, with `%`, `_` and the
/// escape character taken literally.
pub(crate) fn contains_pattern(word: &str) -> String {
    let mut pattern = String::with_capacity(word.len() + 2);
    pattern.push('%');
    for c in word.chars() {
        if matches!(c, '%' | '_' | LIKE_ESCAPE) {
            pattern.push(LIKE_ESCAPE);
        }
        pattern.push(c);
    }
    pattern.push('%');

    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_accents_fold_away() {
        assert_eq!(fold("Révélations"), "revelations");
        assert_eq!(fold("Les MISÉRABLES"), "les miserables");
        assert_eq!(fold("Ça, c'est l'Été"), "ca, c'est l'ete");
        assert_eq!(fold("Niño Ångström Dvořák"), "nino angstrom dvorak");
    }

    #[test]
    fn ligatures_and_special_letters_are_spelled_out() {
        assert_eq!(fold("Mœurs"), "moeurs");
        assert_eq!(fold("ŒUVRES"), "oeuvres");
        assert_eq!(fold("Cæsar"), "caesar");
        assert_eq!(fold("Der Prozeß"), "der prozess");
        assert_eq!(fold("Søren"), "soren");
        assert_eq!(fold("Bolesław"), "boleslaw");
        assert_eq!(fold("ŁÓDŹ"), "lodz");
    }

    #[test]
    fn other_scripts_are_lowercased_and_kept() {
        assert_eq!(fold("Преступление"), "преступление");
        assert_eq!(fold("Ὅμηρος"), "ομηρος");
    }

    #[test]
    fn words_split_on_any_whitespace() {
        assert_eq!(words("  Victor\tHUGO \n"), ["victor", "hugo"]);
        assert!(words("   ").is_empty());
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("abc"), "%abc%");
        assert_eq!(contains_pattern("50%"), "%50\\%%");
        assert_eq!(contains_pattern("a_b"), "%a\\_b%");
        assert_eq!(contains_pattern("a\\b"), "%a\\\\b%");
    }
}
