//! Cleaning catalogue text: control characters out, whitespace folded,
//! NFC, and the ISBD punctuation that ends a MARC subfield trimmed.

use unicode_normalization::{is_nfc, UnicodeNormalization};

/// Drops control characters (such as MARC-8's non-sort marks), folds
/// runs of whitespace into one space, trims, and puts the text in NFC.
pub(super) fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());

    for c in text.chars() {
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out.truncate(out.trim_end().len());

    if is_nfc(&out) {
        out
    } else {
        out.nfc().collect()
    }
}

/// Trims the punctuation ISBD puts between areas: ` /`, ` :`, ` ;`,
/// ` =`, `,` and a final period (an ellipsis stays).
pub(super) fn trim_isbd(text: &str) -> &str {
    let mut text = text.trim_end();

    loop {
        let trimmed = strip_separator(text).trim_end();
        if trimmed.len() == text.len() {
            return text;
        }
        text = trimmed;
    }
}

/// Like [`trim_isbd`], but a period after an initial (`Bach, J. S.`)
/// stays, since it belongs to the name.
pub(super) fn trim_name(text: &str) -> &str {
    let mut text = text.trim_end();

    loop {
        let trimmed = match text.strip_suffix('.') {
            Some(before) if ends_with_initial(before) => text,
            _ => strip_separator(text).trim_end(),
        };
        if trimmed.len() == text.len() {
            return text;
        }
        text = trimmed;
    }
}

fn strip_separator(text: &str) -> &str {
    if text.ends_with("...") {
        return text;
    }

    text.strip_suffix(['/', ':', ';', '=', ',', '.'])
        .unwrap_or(text)
}

/// Whether `text` ends with a lone capital letter, like the `J` of
/// `Smith, J`.
fn ends_with_initial(text: &str) -> bool {
    let mut chars = text.chars().rev();

    match (chars.next(), chars.next()) {
        (Some(letter), None) => letter.is_uppercase(),
        (Some(letter), Some(before)) => {
            letter.is_uppercase() && (before == ' ' || before == '.' || before == '-')
        }
        _ => false,
    }
}

/// The first run of exactly four ASCII digits, such as the year in
/// `c1989.` or `[1995?]`.
pub(super) fn first_year(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut start = 0;

    while start < bytes.len() {
        let run = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if run == 4 {
            return text.get(start..start + 4);
        }
        start += run.max(1);
    }

    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isbd_endings_are_trimmed() {
        assert_eq!(trim_isbd("Friendly fire /"), "Friendly fire");
        assert_eq!(trim_isbd("piano, vocal, guitar."), "piano, vocal, guitar");
        assert_eq!(trim_isbd("Songs :"), "Songs");
        assert_eq!(trim_isbd("And then..."), "And then...");
    }

    #[test]
    fn names_keep_the_period_of_an_initial() {
        assert_eq!(trim_name("Hunt, Andrew,"), "Hunt, Andrew");
        assert_eq!(trim_name("Bach, J. S."), "Bach, J. S.");
        assert_eq!(trim_name("Ellington, Duke."), "Ellington, Duke");
    }

    #[test]
    fn clean_drops_controls_and_folds_space() {
        assert_eq!(clean("\u{98}The\u{9c}  old\tman "), "The old man");
        assert_eq!(clean("cafe\u{301}"), "caf\u{e9}");
    }

    #[test]
    fn years_are_four_digit_runs() {
        assert_eq!(first_year("c1989."), Some("1989"));
        assert_eq!(first_year("03 Nov 2008"), Some("2008"));
        assert_eq!(first_year("[19--?]"), None);
        assert_eq!(first_year("12345"), None);
    }
}
