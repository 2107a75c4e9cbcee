//! Circulation policy: loan length, renewals, and due dates in the
//! library's time zone.
//!
//! A loan is due at the end of its due day where the library is: the local
//! date of checkout plus `LOAN_DAYS`, at 23:59:59 local time, stored as the
//! UTC instant that is. The offset is the one in force on the due day, so
//! a loan that spans a daylight-saving change still ends at local midnight.

use chrono::{
    DateTime, Days, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime,
};
use chrono::{TimeZone, Utc};
use chrono_tz::Tz;

/// The last second of a local day.
const LAST_SECOND: NaiveTime = match NaiveTime::from_hms_opt(23, 59, 59) {
    Some(time) => time,
    None => panic!("23:59:59 is a valid time"),
};

/// How far back [`end_of_day`] looks for a local time that exists, in
/// minutes. The longest real gap (Samoa skipping 30 December 2011) is a
/// whole day.
const MAX_GAP_MINUTES: i64 = 48 * 60;

/// The rules a checkout and a renewal follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `LOAN_DAYS`: days from the checkout (or renewal) day to the due day.
    pub loan_days: u32,
    /// `MAX_RENEWALS`: renewals allowed per loan.
    pub max_renewals: u32,
    /// `LIBRARY_TIMEZONE`: where "the end of the day" is.
    pub timezone: Tz,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            loan_days: 14,
            max_renewals: 2,
            timezone: Tz::UTC,
        }
    }
}

impl Policy {
    /// When a loan made, or renewed, at `now` is due. (A renewal never
    /// shortens a loan: the store keeps the later of this and the current
    /// due time.)
    pub fn due_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = now.with_timezone(&self.timezone).date_naive();
        let due_day = today
            .checked_add_days(Days::new(u64::from(self.loan_days)))
            .unwrap_or(NaiveDate::MAX);
        end_of_day(self.timezone, due_day)
    }
}

/// The last instant of local day `day` in `tz`, in UTC.
///
/// 23:59:59 local, taking the later instant when the clock goes back
/// across it (it happens twice) and the last second before the jump when
/// the clock skips it.
pub fn end_of_day(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    let last = day.and_time(LAST_SECOND);

    (0..=MAX_GAP_MINUTES)
        .find_map(|minutes| {
            latest_instant(tz, last - Duration::minutes(minutes))
        })
        // No time zone skips two days, so this fallback (the
        // wall time read as UTC) is never reached with real zone data.
        .unwrap_or_else(|| Utc.from_utc_datetime(&last))
}

/// The latest UTC instant showing `local` in `tz`, if any does.
fn latest_instant(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(at) | LocalResult::Ambiguous(_, at) => {
            Some(at.with_timezone(&Utc))
        }
        LocalResult::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn policy(zone: &str) -> Policy {
        Policy {
            timezone: zone.parse().unwrap(),
            ..Policy::default()
        }
    }

    #[test]
    fn utc_loans_end_at_the_last_second_of_the_due_day() {
        let due = policy("UTC").due_at(utc("2025-01-10T00:00:00Z"));
        assert_eq!(due, utc("2025-01-24T23:59:59Z"));
    }

    #[test]
    fn paris_across_the_march_change_uses_summer_time() {
        // 30 March 2025: 02:00 CET becomes 03:00 CEST.
        let due = policy("Europe/Paris").due_at(utc("2025-03-20T10:00:00Z"));
        assert_eq!(due, utc("2025-04-03T21:59:59Z"));
    }

    #[test]
    fn paris_due_on_the_change_day_itself() {
        let due = policy("Europe/Paris").due_at(utc("2025-03-16T10:00:00Z"));
        assert_eq!(due, utc("2025-03-30T21:59:59Z"));
    }

    #[test]
    fn paris_across_the_october_change_uses_winter_time() {
        // 26 October 2025: 03:00 CEST becomes 02:00 CET.
        let due = policy("Europe/Paris").due_at(utc("2025-10-20T10:00:00Z"));
        assert_eq!(due, utc("2025-11-03T22:59:59Z"));
    }

    #[test]
    fn new_york_across_the_march_change() {
        // 9 March 2025: 02:00 EST becomes 03:00 EDT.
        let due =
            policy("America/New_York").due_at(utc("2025-03-01T15:00:00Z"));
        assert_eq!(due, utc("2025-03-16T03:59:59Z"));
    }

    #[test]
    fn new_york_checkout_day_is_the_local_day() {
        // 03:00 UTC on 1 March is still 28 February in New York.
        let due =
            policy("America/New_York").due_at(utc("2025-03-01T03:00:00Z"));
        assert_eq!(due, utc("2025-03-15T03:59:59Z"));
    }

    #[test]
    fn new_york_across_the_november_change() {
        // 2 November 2025: 02:00 EDT becomes 01:00 EST.
        let due =
            policy("America/New_York").due_at(utc("2025-10-25T15:00:00Z"));
        assert_eq!(due, utc("2025-11-09T04:59:59Z"));
    }

    #[test]
    fn lord_howe_half_hour_shift_in_april() {
        // 6 April 2025: 02:00 +11:00 becomes 01:30 +10:30.
        let due =
            policy("Australia/Lord_Howe").due_at(utc("2025-03-30T01:00:00Z"));
        assert_eq!(due, utc("2025-04-13T13:29:59Z"));
    }

    #[test]
    fn lord_howe_half_hour_shift_in_october() {
        // 5 October 2025: 02:00 +10:30 becomes 02:30 +11:00.
        let due =
            policy("Australia/Lord_Howe").due_at(utc("2025-09-28T01:00:00Z"));
        assert_eq!(due, utc("2025-10-12T12:59:59Z"));
    }

    #[test]
    fn a_repeated_last_hour_takes_the_later_instant() {
        // Santiago, 5 April 2025: midnight -03:00 goes back to 23:00
        // -04:00, so 23:59:59 happens twice; the day ends at the second.
        let end =
            end_of_day("America/Santiago".parse().unwrap(), day(2025, 4, 5));
        assert_eq!(end, utc("2025-04-06T03:59:59Z"));
    }

    #[test]
    fn a_skipped_day_ends_just_before_the_jump() {
        // Samoa skipped 30 December 2011: 29 Dec 23:59:59 -10:00 was
        // followed by 31 Dec 00:00:00 +14:00.
        let end =
            end_of_day("Pacific/Apia".parse().unwrap(), day(2011, 12, 30));
        assert_eq!(end, utc("2011-12-30T09:59:59Z"));
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }
}
