//! A point in time by which a request must be answered, and how it travels
//! to the next hop as a header value.
//!
//! A caller's deadline goes with its request so that no hop waits longer
//! than its caller: the sender encodes the time it has left in whole
//! milliseconds ([`Deadline::encode`], rounded down), the receiver turns that
//! back into a deadline on its own clock ([`Deadline::decode`]). Nothing
//! here knows HTTP; the values are plain strings for a header named
//! [`DEADLINE_HEADER`].

use std::time::Duration;

use tokio::time::Instant;

use crate::error::Retryable;

/// The header that carries the time a request has left, in milliseconds.
pub const DEADLINE_HEADER: &str = "x-lectern-deadline-ms";

/// Stands for "no deadline" when a duration is too large to add.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The instant by which a request must be answered, on tokio's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// The deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Self {
        Self::after_from(Instant::now(), timeout)
    }

    /// The deadline at `instant`.
    pub fn at(instant: Instant) -> Self {
        Self { at: instant }
    }

    /// The instant itself.
    pub fn instant(self) -> Instant {
        self.at
    }

    /// The time left, zero once the deadline has passed.
    pub fn remaining(self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// True once the deadline has passed.
    pub fn is_expired(self) -> bool {
        self.remaining().is_zero()
    }

    /// The earlier of this deadline and `limit` from now: a hop that
    /// received a deadline caps it with its own limit.
    #[must_use]
    pub fn within(self, limit: Duration) -> Self {
        self.min(Self::after(limit))
    }

    /// The header value: the milliseconds left, rounded down, so that the
    /// next hop never waits longer than this one.
    pub fn encode(self) -> String {
        let millis = self.remaining().as_millis();

        u64::try_from(millis).unwrap_or(u64::MAX).to_string()
    }

    /// The deadline a header value describes, counted from now.
    ///
    /// Accepts ASCII digits, with surrounding spaces or tabs; anything else
    /// is an [`InvalidDeadline`]. A receiver should cap the result with its
    /// own limit ([`Deadline::within`]).
    // Limitation: the time the request spent on the wire is not subtracted,
    // so the receiver's deadline falls later than its caller's by that
    // transit time.
    pub fn decode(value: &str) -> Result<Self, InvalidDeadline> {
        let millis = parse_millis(value)?;

        Ok(Self::after(Duration::from_millis(millis)))
    }

    fn after_from(now: Instant, timeout: Duration) -> Self {
        let at = now
            .checked_add(timeout)
            .or_else(|| now.checked_add(FAR_FUTURE))
            .unwrap_or(now);

        Self { at }
    }
}

fn parse_millis(value: &str) -> Result<u64, InvalidDeadline> {
    let digits = value.trim_matches([' ', '\t']);

    if digits.is_empty() {
        return Err(InvalidDeadline::new("empty"));
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidDeadline::new("not a whole number of ms"));
    }

    digits
        .parse()
        .map_err(|_| InvalidDeadline::new("out of range"))
}

/// A deadline header value that is not a whole number of milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid deadline header value: {reason}")]
pub struct InvalidDeadline {
    reason: &'static str,
}

impl InvalidDeadline {
    fn new(reason: &'static str) -> Self {
        Self { reason }
    }
}

impl Retryable for InvalidDeadline {
    fn is_retryable(&self) -> bool {
        false
    }
}

/// The caller's deadline passed before the call could finish.
///
/// Not retryable: no time is left for another attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error("the caller's deadline passed")]
pub struct DeadlineExceeded {
    _private: (),
}

impl DeadlineExceeded {
    /// A new `DeadlineExceeded`.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Retryable for DeadlineExceeded {
    fn is_retryable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn encode_gives_the_whole_milliseconds_left() {
        let deadline = Deadline::after(Duration::from_millis(1500));

        tokio::time::advance(Duration::from_micros(250_400)).await;

        assert_eq!(deadline.encode(), "1249");
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_deadline_encodes_as_zero() {
        let deadline = Deadline::after(Duration::from_millis(10));

        tokio::time::advance(Duration::from_millis(11)).await;

        assert!(deadline.is_expired());
        assert_eq!(deadline.encode(), "0");
    }

    #[tokio::test(start_paused = true)]
    async fn decode_counts_from_now() {
        let decoded = Deadline::decode(" 2500\t").unwrap();

        assert_eq!(decoded.remaining(), Duration::from_millis(2500));
        assert_eq!(
            decoded.instant(),
            Instant::now() + Duration::from_millis(2500)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn round_trip_never_waits_longer_than_the_caller() {
        let caller = Deadline::after(Duration::from_micros(3_999_999));

        let next_hop = Deadline::decode(&caller.encode()).unwrap();

        assert!(next_hop <= caller);
        assert_eq!(next_hop.remaining(), Duration::from_millis(3999));
    }

    #[test]
    fn decode_rejects_what_is_not_a_number() {
        for bad in ["", "  ", "-5", "+5", "1.5", "12ms", "0x10", "1 2"] {
            assert!(Deadline::decode(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn decode_rejects_overflow() {
        let err = Deadline::decode("99999999999999999999").unwrap_err();

        assert_eq!(
            err.to_string(),
            "invalid deadline header value: out of range"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_value_does_not_overflow_the_clock() {
        let far = Deadline::decode(&u64::MAX.to_string()).unwrap();

        assert!(far.remaining() >= FAR_FUTURE);
    }

    #[tokio::test(start_paused = true)]
    async fn within_caps_a_received_deadline() {
        let received = Deadline::after(Duration::from_secs(60));

        let capped = received.within(Duration::from_secs(5));

        assert_eq!(capped.remaining(), Duration::from_secs(5));
    }
}
