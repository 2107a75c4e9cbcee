//! When a request moves on to the next server: nginx's
//! `proxy_next_upstream`, `proxy_next_upstream_tries` and
//! `proxy_next_upstream_timeout`.
//!
//! Every failed attempt is a [`Failure`] tagged with the condition it
//! meets and whether anything may have reached the server. A request whose
//! bytes never left the gateway (the connection failed) may go to another
//! server whatever its method. Once sent, only a replayable request moves
//! on: an idempotent method, a request with an `Idempotency-Key`, or any
//! request when `non_idempotent` is listed.

use http::{Method, StatusCode};
use tokio::time::{Duration, Instant};

use crate::config::{NextUpstream, UpstreamConfig};
use crate::metrics::Outcome;

/// Why an attempt on one server failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Connection refused, reset or unreachable: nothing was sent.
    Connect,
    /// The connect timeout ran out: nothing was sent.
    ConnectTimeout,
    /// The connection broke before the response head, after the whole
    /// request was sent (or while sending a request without a body).
    Broken,
    /// The connection broke while the request body was being sent, and
    /// no response head could be read: the server stopped taking the
    /// body, which it may do to refuse it (see [`Failure::counts`]).
    BrokenSendingBody,
    /// The response head was not valid HTTP.
    InvalidHeader,
    /// No response head within the read timeout.
    ReadTimeout,
}

impl Failure {
    /// The `next_upstream` condition this failure meets.
    pub(crate) fn condition(self) -> NextUpstream {
        match self {
            Failure::Connect | Failure::Broken | Failure::BrokenSendingBody => {
                NextUpstream::Error
            }
            Failure::ConnectTimeout | Failure::ReadTimeout => {
                NextUpstream::Timeout
            }
            Failure::InvalidHeader => NextUpstream::InvalidHeader,
        }
    }

    /// Whether the request may have reached the server.
    pub(crate) fn sent(self) -> bool {
        !matches!(self, Failure::Connect | Failure::ConnectTimeout)
    }

    /// How the attempt is counted in the per-server metrics.
    pub(crate) fn outcome(self) -> Outcome {
        match self {
            Failure::Connect => Outcome::ConnectError,
            Failure::ConnectTimeout => Outcome::ConnectTimeout,
            Failure::Broken | Failure::BrokenSendingBody => Outcome::Error,
            Failure::InvalidHeader => Outcome::InvalidHeader,
            Failure::ReadTimeout => Outcome::ReadTimeout,
        }
    }

    /// Whether the failure counts against the server, for passive
    /// health (`max_fails`) and outlier ejection.
    ///
    /// The rule: a server is blamed only for what shows it broken:
    /// connection errors and timeouts, read timeouts, invalid answers,
    /// and a connection that broke with no response head after the
    /// whole request was sent (or there was no body). Any answer the
    /// server managed to send counts as an answer (a 4xx never counts),
    /// also when it came before the body was fully sent or the write
    /// then broke: the gateway reads and passes it on. A connection
    /// that broke while the body was still being sent, with no answer
    /// readable, does not count: services refuse oversized bodies by
    /// answering early and closing, and a client must not be able to
    /// mark servers down by sending large bodies.
    pub(crate) fn counts(self) -> bool {
        self != Failure::BrokenSendingBody
    }

    /// Whether it is a timeout (504) rather than a bad answer (502).
    pub(crate) fn is_timeout(self) -> bool {
        self.condition() == NextUpstream::Timeout
    }

    /// In words, for problem documents and logs.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Failure::Connect => "could not connect",
            Failure::ConnectTimeout => "did not accept a connection in time",
            Failure::Broken => "closed the connection before answering",
            Failure::BrokenSendingBody => {
                "closed the connection while the request body was sent"
            }
            Failure::InvalidHeader => "sent an invalid response",
            Failure::ReadTimeout => "did not answer in time",
        }
    }
}

/// The retry rules of one upstream.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    conditions: u32,
    tries: u32,
    timeout: Duration,
}

impl Policy {
    pub(crate) fn new(config: &UpstreamConfig) -> Self {
        let conditions = config
            .next_upstream
            .iter()
            .fold(0, |bits, c| bits | bit(*c));

        Self {
            conditions,
            tries: config.next_upstream_tries,
            timeout: config.next_upstream_timeout,
        }
    }

    fn has(&self, condition: NextUpstream) -> bool {
        self.conditions & bit(condition) != 0
    }

    /// The condition a status meets, if it is listed.
    pub(crate) fn listed_status(
        &self,
        status: StatusCode,
    ) -> Option<NextUpstream> {
        let condition = match status.as_u16() {
            500 => NextUpstream::Http500,
            502 => NextUpstream::Http502,
            503 => NextUpstream::Http503,
            504 => NextUpstream::Http504,
            403 => NextUpstream::Http403,
            404 => NextUpstream::Http404,
            429 => NextUpstream::Http429,
            _ => return None,
        };

        self.has(condition).then_some(condition)
    }

    /// Whether a listed status counts as a failure of the server: as in
    /// nginx, 403 and 404 move the request on but never count.
    pub(crate) fn counts_as_failure(condition: NextUpstream) -> bool {
        !matches!(condition, NextUpstream::Http403 | NextUpstream::Http404)
    }

    /// Whether a request that met `condition` on its `attempts`-th try,
    /// begun at `started`, may go to another server. `sent`: it may have
    /// reached the server; `replayable`: an idempotent method or a key;
    /// `resendable`: its body can be sent again (not a streamed one that
    /// has left).
    pub(crate) fn may_retry(
        &self,
        condition: NextUpstream,
        sent: bool,
        replayable: bool,
        resendable: bool,
        attempts: u32,
        started: Instant,
    ) -> bool {
        let listed = self.has(condition);
        let again = replayable || self.has(NextUpstream::NonIdempotent);
        let safe = resendable && (!sent || again);
        let tries_left = self.tries == 0 || attempts < self.tries;
        let in_time =
            self.timeout.is_zero() || started.elapsed() < self.timeout;

        listed && safe && tries_left && in_time
    }
}

fn bit(condition: NextUpstream) -> u32 {
    1 << condition as u32
}

/// Whether a request may be sent twice: an idempotent method (RFC 9110)
/// or a request carrying an `Idempotency-Key`.
pub(crate) fn is_replayable(method: &Method, has_key: bool) -> bool {
    let idempotent = matches!(
        *method,
        Method::GET
            | Method::HEAD
            | Method::PUT
            | Method::DELETE
            | Method::OPTIONS
            | Method::TRACE
    );

    idempotent || has_key
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn policy(conditions: &[NextUpstream], tries: u32) -> Policy {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut config = UpstreamConfig::with(vec![addr]);
        config.next_upstream = conditions.to_vec();
        config.next_upstream_tries = tries;

        Policy::new(&config)
    }

    #[tokio::test]
    async fn a_failed_connection_is_retried_whatever_the_method() {
        let p = policy(&[NextUpstream::Error], 0);
        let f = Failure::Connect;
        let post = is_replayable(&Method::POST, false);

        assert!(p.may_retry(
            f.condition(),
            f.sent(),
            post,
            true,
            1,
            Instant::now()
        ));
    }

    #[tokio::test]
    async fn a_sent_post_is_retried_only_with_a_key_or_non_idempotent() {
        let now = Instant::now();
        let p = policy(&[NextUpstream::Error], 0);
        let sent = Failure::Broken;
        let post = is_replayable(&Method::POST, false);
        let keyed = is_replayable(&Method::POST, true);

        assert!(!p.may_retry(sent.condition(), true, post, true, 1, now));
        assert!(p.may_retry(sent.condition(), true, keyed, true, 1, now));
        assert!(
            !p.may_retry(sent.condition(), true, keyed, false, 1, now),
            "a streamed body that left is never sent again"
        );

        let p = policy(&[NextUpstream::Error, NextUpstream::NonIdempotent], 0);
        assert!(p.may_retry(sent.condition(), true, post, true, 1, now));
    }

    #[tokio::test]
    async fn unlisted_conditions_and_spent_tries_stop_retries() {
        let now = Instant::now();
        let p = policy(&[NextUpstream::Error], 2);

        let retry = |p: &Policy, c, attempts| {
            p.may_retry(c, false, true, true, attempts, now)
        };
        assert!(!retry(&p, NextUpstream::Timeout, 1));
        assert!(retry(&p, NextUpstream::Error, 1));
        assert!(!retry(&p, NextUpstream::Error, 2));
        let off = policy(&[NextUpstream::Off], 0);
        assert!(!retry(&off, NextUpstream::Error, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn next_upstream_timeout_stops_retries() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut config = UpstreamConfig::with(vec![addr]);
        config.next_upstream_timeout = Duration::from_secs(5);
        let p = Policy::new(&config);
        let started = Instant::now();

        let e = NextUpstream::Error;
        assert!(p.may_retry(e, false, true, true, 1, started));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(!p.may_retry(e, false, true, true, 1, started));
    }

    #[test]
    fn only_listed_statuses_move_on_and_404_never_counts() {
        let p = policy(&[NextUpstream::Http502, NextUpstream::Http404], 0);

        assert_eq!(
            p.listed_status(StatusCode::BAD_GATEWAY),
            Some(NextUpstream::Http502)
        );
        assert_eq!(p.listed_status(StatusCode::SERVICE_UNAVAILABLE), None);
        assert_eq!(p.listed_status(StatusCode::OK), None);
        assert!(Policy::counts_as_failure(NextUpstream::Http502));
        assert!(!Policy::counts_as_failure(NextUpstream::Http404));
    }
}
