//! Durations and sizes written the way nginx writes them.
//!
//! A duration is a number followed by `ms`, `s`, `m` or `h` (`"500ms"`,
//! `"10s"`, `"1m"`); a bare number means seconds, as in nginx. A size is a
//! number followed by nothing (bytes), `k` or `m` (`"16m"`). Both accept
//! plain integers in TOML as well (`fail_timeout = 10`).

use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// A duration or size that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a valid {1}")]
pub(crate) struct UnitError(String, &'static str);

/// Reads `"10s"`, `"500ms"`, `"1m"`, `"2h"` or `"10"` (seconds).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let bad = || UnitError(text.to_owned(), "duration");
    let (number, unit) = split_unit(text.trim());
    let value: u64 = number.parse().map_err(|_| bad())?;

    let millis = match unit {
        "ms" => Some(value),
        "" | "s" => value.checked_mul(1_000),
        "m" => value.checked_mul(60_000),
        "h" => value.checked_mul(3_600_000),
        _ => None,
    };

    millis.map(Duration::from_millis).ok_or_else(bad)
}

/// Reads `"1024"`, `"8k"` or `"16m"` as a number of bytes.
pub(crate) fn parse_size(text: &str) -> Result<u64, UnitError> {
    let bad = || UnitError(text.to_owned(), "size");
    let (number, unit) = split_unit(text.trim());
    let value: u64 = number.parse().map_err(|_| bad())?;

    let factor = match unit.to_ascii_lowercase().as_str() {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return Err(bad()),
    };

    value.checked_mul(factor).ok_or_else(bad)
}

fn split_unit(text: &str) -> (&str, &str) {
    let at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());

    text.split_at(at)
}

/// Serde adapter for durations: `#[serde(with = "units::duration")]`.
pub(crate) mod duration {
    use super::{de, parse_duration, Deserializer, Duration, Visitor};

    pub(crate) fn deserialize<'de, D>(d: D) -> Result<Duration, D::Error>
    where
        D: Deserializer<'de>,
    {
        d.deserialize_any(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(
            &self,
            f: &mut std::fmt::Formatter<'_>,
        ) -> std::fmt::Result {
            f.write_str("a duration such as \"10s\" or \"500ms\"")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse_duration(v).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v)
                .map(Duration::from_secs)
                .map_err(|_| E::custom("a duration cannot be negative"))
        }
    }
}

/// Serde adapter for sizes in bytes: `#[serde(with = "units::size")]`.
pub(crate) mod size {
    use super::{de, parse_size, Deserializer, Visitor};

    pub(crate) fn deserialize<'de, D>(d: D) -> Result<u64, D::Error>
    where
        D: Deserializer<'de>,
    {
        d.deserialize_any(SizeVisitor)
    }

    struct SizeVisitor;

    impl Visitor<'_> for SizeVisitor {
        type Value = u64;

        fn expecting(
            &self,
            f: &mut std::fmt::Formatter<'_>,
        ) -> std::fmt::Result {
            f.write_str("a size such as \"16m\", \"8k\" or 1024")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            parse_size(v).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("a size cannot be negative"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_nginx() {
        let d = |s| parse_duration(s).unwrap();

        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("10s"), Duration::from_secs(10));
        assert_eq!(d("10"), Duration::from_secs(10));
        assert_eq!(d("2m"), Duration::from_secs(120));
        assert_eq!(d("1h"), Duration::from_secs(3600));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes_read_like_nginx() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("8k").unwrap(), 8192);
        assert_eq!(parse_size("16M").unwrap(), 16 << 20);
        assert!(parse_size("16x").is_err());
        assert!(parse_size("m").is_err());
    }
}
