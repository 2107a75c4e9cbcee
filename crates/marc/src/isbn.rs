//! ISBN-10 and ISBN-13: reading them as cataloguers write them, checking
//! the check digit, and converting ISBN-10 to ISBN-13.
//!
//! Input may carry hyphens, spaces, an `ISBN` prefix and a trailing
//! qualifier such as `(pbk.)` or `: $12.95`; those are ignored. The result
//! of a successful parse is always the 13 digits of the ISBN-13.

/// Why a text is not a valid ISBN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidIsbn {
    /// No digits where the ISBN should start.
    #[error("no ISBN digits found")]
    Empty,
    /// Neither 10 nor 13 characters once hyphens and spaces are dropped.
    #[error("{0} characters, not 10 or 13")]
    Length(usize),
    /// An `X` anywhere but the last place of an ISBN-10.
    #[error("an X is only allowed as the last character of an ISBN-10")]
    MisplacedX,
    /// The check digit does not match the other digits.
    #[error("the check digit does not match")]
    CheckDigit,
    /// Thirteen digits that do not start with 978 or 979 (an EAN that is
    /// not a book number).
    #[error("an ISBN-13 starts with 978 or 979")]
    Prefix,
}

/// Parses an ISBN-10 or ISBN-13 and returns it as 13 digits.
///
/// ```
/// use lectern_marc::isbn;
///
/// assert_eq!(isbn::parse("0-306-40615-2 (pbk.)").unwrap(), "9780306406157");
/// assert_eq!(isbn::parse("978-0-306-40615-7").unwrap(), "9780306406157");
/// assert!(isbn::parse("0-306-40615-3").is_err());
/// ```
///
/// # Errors
///
/// [`InvalidIsbn`] says what is wrong.
pub fn parse(text: &str) -> Result<String, InvalidIsbn> {
    let compact = compact(text);

    match compact.len() {
        0 => Err(InvalidIsbn::Empty),
        10 => isbn10_to_13(&compact),
        13 => check13(&compact).map(|()| compact),
        n => Err(InvalidIsbn::Length(n)),
    }
}

/// Converts a valid ISBN-10 (10 characters, no hyphens) to its ISBN-13.
///
/// # Errors
///
/// [`InvalidIsbn`] when `isbn10` is not a valid ISBN-10.
pub fn isbn10_to_13(isbn10: &str) -> Result<String, InvalidIsbn> {
    check10(isbn10)?;

    let mut isbn13 = String::with_capacity(13);
    isbn13.push_str("978");
    isbn13.push_str(&isbn10[..9]);
    let check = isbn13_check_digit(&isbn13).ok_or(InvalidIsbn::CheckDigit)?;
    isbn13.push(check);

    Ok(isbn13)
}

/// Converts a valid ISBN-13 with prefix 978 to its ISBN-10; `None` for
/// anything else (979 numbers have no ISBN-10).
pub fn isbn13_to_10(isbn13: &str) -> Option<String> {
    check13(isbn13).ok()?;
    let body = isbn13.strip_prefix("978")?.get(..9)?;
    let check = isbn10_check_digit(body)?;

    Some(format!("{body}{check}"))
}

/// The ISBN-10 check character (`0`-`9` or `X`) for nine digits.
pub fn isbn10_check_digit(first9: &str) -> Option<char> {
    let digits = digits(first9, 9)?;
    let sum: u32 = digits
        .iter()
        .zip((2..=10).rev())
        .map(|(d, weight)| d * weight)
        .sum();

    match (11 - sum % 11) % 11 {
        10 => Some('X'),
        n => char::from_digit(n, 10),
    }
}

/// The ISBN-13 check digit for twelve digits.
pub fn isbn13_check_digit(first12: &str) -> Option<char> {
    let digits = digits(first12, 12)?;
    let sum: u32 = digits
        .iter()
        .zip([1, 3].into_iter().cycle())
        .map(|(d, weight)| d * weight)
        .sum();

    char::from_digit((10 - sum % 10) % 10, 10)
}

fn check10(isbn10: &str) -> Result<(), InvalidIsbn> {
    let Some(body) = isbn10.get(..9) else {
        return Err(InvalidIsbn::Length(isbn10.chars().count()));
    };
    if isbn10.len() != 10 {
        return Err(InvalidIsbn::Length(isbn10.chars().count()));
    }
    if body.contains(['X', 'x']) {
        return Err(InvalidIsbn::MisplacedX);
    }

    let expected = isbn10_check_digit(body).ok_or(InvalidIsbn::CheckDigit)?;
    let given = isbn10.get(9..).and_then(|c| c.chars().next());
    let given = given.map(|c| c.to_ascii_uppercase());
    if given == Some(expected) {
        Ok(())
    } else {
        Err(InvalidIsbn::CheckDigit)
    }
}

fn check13(isbn13: &str) -> Result<(), InvalidIsbn> {
    if isbn13.contains(['X', 'x']) {
        return Err(InvalidIsbn::MisplacedX);
    }
    let (Some(body), Some(given)) = (isbn13.get(..12), isbn13.get(12..)) else {
        return Err(InvalidIsbn::Length(isbn13.chars().count()));
    };
    if isbn13.len() != 13 {
        return Err(InvalidIsbn::Length(isbn13.chars().count()));
    }

    let expected = isbn13_check_digit(body).ok_or(InvalidIsbn::CheckDigit)?;
    if !given.starts_with(expected) {
        return Err(InvalidIsbn::CheckDigit);
    }
    if !(body.starts_with("978") || body.starts_with("979")) {
        return Err(InvalidIsbn::Prefix);
    }

    Ok(())
}

/// Exactly `n` ASCII digits, as numbers.
fn digits(text: &str, n: usize) -> Option<Vec<u32>> {
    if text.len() != n {
        return None;
    }

    text.chars().map(|c| c.to_digit(10)).collect()
}

/// The leading ISBN characters of `text`: digits and `X` with any
/// prefix, hyphens and spaces dropped, stopping at the first other
/// character (where qualifiers start).
fn compact(text: &str) -> String {
    let rest = strip_prefix(text.trim_start());

    rest.chars()
        .take_while(|&c| c.is_ascii_digit() || is_isbn_x(c) || is_separator(c))
        .filter(|&c| !is_separator(c))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Drops a leading `ISBN`, `ISBN-10`, `ISBN-13` and a colon.
fn strip_prefix(text: &str) -> &str {
    let Some(head) = text.get(..4) else {
        return text;
    };
    if !head.eq_ignore_ascii_case("isbn") {
        return text;
    }

    let rest = text.get(4..).unwrap_or_default();
    let rest = ["-10", "-13", "10", "13"]
        .iter()
        .find_map(|p| rest.strip_prefix(p))
        .unwrap_or(rest);

    rest.trim_start_matches([':', ' '])
}

fn is_isbn_x(c: char) -> bool {
    c == 'X' || c == 'x'
}

fn is_separator(c: char) -> bool {
    matches!(c, '-' | ' ' | '\u{2010}'..='\u{2015}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isbn10_with_x_check_digit_converts() {
        assert_eq!(parse("0-8044-2957-X").unwrap(), "9780804429573");
        assert_eq!(parse("080442957x").unwrap(), "9780804429573");
    }

    #[test]
    fn qualifiers_and_prefixes_are_ignored() {
        assert_eq!(
            parse("ISBN 0306406152 (v. 1 : pbk.)").unwrap(),
            "9780306406157"
        );
        assert_eq!(
            parse("ISBN-13: 978-0-306-40615-7").unwrap(),
            "9780306406157"
        );
        assert_eq!(parse("  9780306406157 :").unwrap(), "9780306406157");
    }

    #[test]
    fn each_failure_is_named() {
        assert_eq!(parse("(pbk.)"), Err(InvalidIsbn::Empty));
        assert_eq!(parse("12345"), Err(InvalidIsbn::Length(5)));
        assert_eq!(parse("089542262X295"), Err(InvalidIsbn::MisplacedX));
        assert_eq!(parse("0306406153"), Err(InvalidIsbn::CheckDigit));
        // A valid EAN-13 check digit, but not a book number.
        assert_eq!(parse("8901452100503"), Err(InvalidIsbn::Prefix));
    }

    #[test]
    fn isbn13_back_to_10() {
        assert_eq!(isbn13_to_10("9780306406157").as_deref(), Some("0306406152"));
        assert_eq!(isbn13_to_10("9791090636071"), None);
    }
}
