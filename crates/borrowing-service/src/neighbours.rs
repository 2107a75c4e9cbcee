//! What checkout asks the neighbours: a member's eligibility from
//! user-service and a copy's details from book-service, each with a
//! stated fallback.
//!
//! Both lookups go through a platform [`ServiceClient`]: a service token,
//! the caller's deadline, and the resilience stack (retries for these
//! GETs, a bulkhead, a circuit breaker per neighbour, a per-attempt call
//! timeout), with several book-service replicas tried in turn.
//!
//! Every good answer is kept in a fallback cache (in this process, or in
//! Redis when `REDIS_URL` is set). When the live call fails for a reason
//! that is the neighbour's (down, slow, failing, breaker open), the last
//! good answer is used if it is younger than its cache's age limit
//! (`ELIGIBILITY_CACHE_MAX_AGE_SECS`, `COPY_CACHE_MAX_AGE_SECS`; zero
//! turns that fallback off); it comes back marked [`Stale`] with its age,
//! and the log says so. Otherwise the lookup says the neighbour could not
//! answer, and checkout answers 503 with `Retry-After`: a member or
//! barcode never seen is never guessed. A suspension is kept like any
//! answer, so a cached "suspended" refuses too, and once the age limit
//! passes no cached answer, "active" or not, is used.

use std::time::Duration;

use lectern_platform::cache::{CacheBackend, FallbackStore};
use lectern_platform::client::{CallError, ServiceClient};
use lectern_platform::metrics::Metrics;
use lectern_platform::server::Deadline;
use lectern_resilience::{Answer, FallbackCache};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The name this service gives itself in its service tokens.
const CALLER: &str = crate::SERVICE_NAME;

/// What user-service says about a member's right to borrow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eligibility {
    /// The member's id.
    pub member_id: String,
    /// The member's card number.
    pub card_number: String,
    /// `active` or `suspended`.
    pub status: String,
    /// How many loans the member may have open at once.
    pub loan_limit: i64,
}

/// What book-service says about a copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyDetails {
    /// The copy's barcode.
    pub barcode: String,
    /// The record the copy belongs to.
    pub book_id: String,
    /// The record's title.
    pub title: String,
    /// Whether the copy may leave the library.
    pub loanable: bool,
}

/// Why a lookup gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The neighbour answered that the thing does not exist.
    #[error("no {what} {name:?}")]
    NotFound {
        /// `member` or `copy`.
        what: &'static str,
        /// The id, card number or barcode asked for.
        name: String,
    },
    /// The neighbour could not answer (down, slow, failing, refusing this
    /// service, or its breaker is open) and nothing young enough was
    /// cached.
    #[error("{0}")]
    Unavailable(#[source] CallError),
}

/// An answer taken from a fallback cache because the neighbour could not
/// give a live one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// What the answer is about: `member eligibility` or `copy details`.
    pub what: &'static str,
    /// How long ago the neighbour gave it.
    pub age: Duration,
}

/// A lookup's answer, and whether it came from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Looked<T> {
    /// The answer.
    pub value: T,
    /// Set when the answer is a cached one.
    pub stale: Option<Stale>,
}

/// The two neighbours checkout asks, and their fallback caches.
#[derive(Debug)]
pub struct Neighbours {
    /// user-service.
    pub users: ServiceClient,
    /// book-service (one or several replicas).
    pub books: ServiceClient,
    /// `None` when its age limit is zero: no fallback.
    eligibility: Option<FallbackStore<Eligibility>>,
    /// `None` when its age limit is zero: no fallback.
    copies: Option<FallbackStore<CopyDetails>>,
}

impl Neighbours {
    /// Clients for user-service and book-service as `config` says, their
    /// stacks reported in `metrics`, their caches kept in `backend`.
    pub fn new(
        config: &Config,
        metrics: &Metrics,
        backend: &CacheBackend,
    ) -> Self {
        let client = |dependency, urls: &str| {
            ServiceClient::with_policy(
                dependency,
                CALLER,
                urls,
                config.common.keys.clone(),
                config.call_timeout,
                &config.calls,
            )
            .observed_by(metrics)
        };
        let eligibility = format!("{CALLER}:eligibility");
        let copies = format!("{CALLER}:copy");

        Self {
            users: client("user-service", &config.user_service_url),
            books: client("book-service", &config.book_service_url),
            eligibility: store(
                backend,
                &eligibility,
                config.eligibility_max_age,
            ),
            copies: store(backend, &copies, config.copy_max_age),
        }
    }

    /// `GET /internal/members/{id_or_card}/eligibility` on user-service,
    /// or the cached answer when it cannot answer.
    pub async fn member_eligibility(
        &self,
        id_or_card: &str,
        deadline: Option<Deadline>,
    ) -> Result<Looked<Eligibility>, LookupError> {
        let path = format!(
            "/internal/members/{}/eligibility",
            path_segment(id_or_card)
        );
        let cache = self.eligibility.as_ref();
        let answer = fetch(&self.users, &path, deadline, cache, id_or_card)
            .await
            .map_err(|e| lookup_error(e, "member", id_or_card))?;

        if let Answer::Fresh(member) = &answer {
            self.remember_member(id_or_card, member).await;
        }
        Ok(looked(answer, "member eligibility", id_or_card))
    }

    /// `GET /internal/copies/{barcode}` on book-service, or the cached
    /// answer when it cannot answer.
    pub async fn copy_details(
        &self,
        barcode: &str,
        deadline: Option<Deadline>,
    ) -> Result<Looked<CopyDetails>, LookupError> {
        let path = format!("/internal/copies/{}", path_segment(barcode));
        let cache = self.copies.as_ref();
        let answer = fetch(&self.books, &path, deadline, cache, barcode)
            .await
            .map_err(|e| lookup_error(e, "copy", barcode))?;

        Ok(looked(answer, "copy details", barcode))
    }

    /// Keeps a member's answer under their id and card number too, so a
    /// later checkout finds it whichever one the desk types.
    async fn remember_member(&self, asked: &str, member: &Eligibility) {
        let Some(cache) = &self.eligibility else {
            return;
        };
        for key in [&member.member_id, &member.card_number] {
            if key == asked {
                continue;
            }
            if let Err(error) = cache.put(key, member).await {
                tracing::warn!(
                    event.action = "cache-write-failed",
                    error.message = %error,
                    "Cannot keep a member's eligibility in the cache"
                );
            }
        }
    }
}

/// A cache of answers up to `max_age` old, or none for a zero age.
fn store<V: Clone>(
    backend: &CacheBackend,
    name: &str,
    max_age: Duration,
) -> Option<FallbackStore<V>> {
    (!max_age.is_zero()).then(|| backend.store(name, max_age))
}

/// `GET path` on `client`, through `cache` when there is one.
async fn fetch<T>(
    client: &ServiceClient,
    path: &str,
    deadline: Option<Deadline>,
    cache: Option<&FallbackStore<T>>,
    key: &str,
) -> Result<Answer<T, CallError>, CallError>
where
    T: Clone + Serialize + DeserializeOwned + Send + Sync,
{
    match cache {
        Some(cache) => client.get_json_cached(path, deadline, cache, key).await,
        None => client.get_json(path, deadline).await.map(Answer::Fresh),
    }
}

/// The value of `answer`, marked and logged when it is stale.
fn looked<T>(
    answer: Answer<T, CallError>,
    what: &'static str,
    key: &str,
) -> Looked<T> {
    match answer {
        Answer::Fresh(value) => Looked { value, stale: None },
        Answer::Stale { value, age, cause } => {
            tracing::warn!(
                event.action = "stale-answer-served",
                lookup = what,
                lookup.key = key,
                stale.age_secs = age.as_secs(),
                error.message = %cause,
                "Using cached {what} ({} s old): {cause}",
                age.as_secs()
            );
            let stale = Some(Stale { what, age });
            Looked { value, stale }
        }
    }
}

// Limitation: a refusal other than 404 (401 or 403 from a secret that
// differs, 400) is reported as "cannot answer" (503), like an outage;
// the log says which status it was.
fn lookup_error(
    error: CallError,
    what: &'static str,
    name: &str,
) -> LookupError {
    if error.status() == Some(404) {
        return LookupError::NotFound {
            what,
            name: name.to_owned(),
        };
    }
    LookupError::Unavailable(error)
}

/// `value` percent-encoded as one URL path segment: everything but
/// RFC 3986's unreserved characters is escaped.
fn path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'.' | b'_' | b'~')
        {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_escape_everything_but_unreserved() {
        assert_eq!(path_segment("C-0001_a.b~"), "C-0001_a.b~");
        assert_eq!(path_segment("a/b c?d#e"), "a%2Fb%20c%3Fd%23e");
        assert_eq!(path_segment("é"), "%C3%A9");
    }

    #[test]
    fn only_404_means_not_found() {
        let status = |status| CallError::Status {
            dependency: "book-service",
            status,
            retry_after: None,
        };
        let not_found = lookup_error(status(404), "copy", "B1");
        assert!(matches!(
            not_found,
            LookupError::NotFound { what: "copy", .. }
        ));

        for code in [401, 403, 500, 503] {
            let failed = lookup_error(status(code), "copy", "B1");
            assert!(matches!(failed, LookupError::Unavailable(_)), "{code}");
        }
    }

    #[test]
    fn a_stale_answer_says_what_and_how_old() {
        let cause = CallError::Deadline {
            dependency: "user-service",
        };
        let answer = Answer::Stale {
            value: 3,
            age: Duration::from_secs(42),
            cause,
        };

        let member = looked(answer, "member eligibility", "m1");

        let stale = member.stale.unwrap();
        assert_eq!(member.value, 3);
        assert_eq!(stale.what, "member eligibility");
        assert_eq!(stale.age, Duration::from_secs(42));
        assert_eq!(looked(Answer::Fresh(1), "x", "k").stale, None);
    }
}
