//! Calls to a neighbouring service, through the resilience stack.
//!
//! [`ServiceClient`] sends JSON requests to one dependency with a service
//! token and the caller's deadline (`x-lectern-deadline-ms`, never more
//! than the time this attempt has left). Every call goes through the
//! neighbour's stack, outermost first: retries (GET only, with backoff,
//! a retry budget and the deadline), a bulkhead slot, the circuit breaker
//! with its per-attempt call timeout ([`CallPolicy`]). A 4xx answer is
//! the caller's mistake and never counts against the neighbour.
//!
//! A neighbour may have several replicas (comma-separated base URLs): an
//! attempt that cannot connect to one tries the next, and the client
//! keeps asking the replica that answered until it fails in turn.
//!
//! [`ServiceClient::get_json_cached`] keeps each good answer in a
//! [`crate::cache::FallbackStore`] and serves the last one, marked stale
//! with its age, when the neighbour cannot answer.
//!
//! Every failure is a [`CallError`] that says where it came from and
//! whether trying again can help. Register the stack's metrics with
//! [`ServiceClient::observed_by`].

mod error;
mod policy;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lectern_resilience::{Answer, Dependency, FallbackCache};
use serde::de::DeserializeOwned;

pub use self::error::CallError;
pub use self::policy::{CallPolicy, NeighbourFaults};
use crate::auth::TokenKeys;
use crate::metrics::Metrics;
use crate::server::{Deadline, DEADLINE_HEADER, REQUEST_ID_HEADER};

/// A client for one neighbouring service. Cloning it shares its
/// connections, breaker, retry budget and bulkhead.
#[derive(Clone)]
pub struct ServiceClient {
    inner: Arc<Inner>,
}

struct Inner {
    dependency: &'static str,
    caller: &'static str,
    replicas: Vec<String>,
    /// The replica asked first: the last one that answered.
    preferred: AtomicUsize,
    http: reqwest::Client,
    keys: Arc<TokenKeys>,
    timeout: Duration,
    stack: Dependency<NeighbourFaults>,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("dependency", &self.inner.dependency)
            .field("replicas", &self.inner.replicas)
            .field("timeout", &self.inner.timeout)
            .field("breaker", self.inner.stack.breaker())
            .finish_non_exhaustive()
    }
}

impl ServiceClient {
    /// A client for `dependency` at `base_urls` (one, or several replicas
    /// comma-separated), calling as `caller`, each attempt limited to
    /// `timeout`, with the default [`CallPolicy`].
    pub fn new(
        dependency: &'static str,
        caller: &'static str,
        base_urls: &str,
        keys: Arc<TokenKeys>,
        timeout: Duration,
    ) -> Self {
        Self::with_policy(
            dependency,
            caller,
            base_urls,
            keys,
            timeout,
            &CallPolicy::default(),
        )
    }

    /// Like [`ServiceClient::new`], guarded as `policy` says.
    pub fn with_policy(
        dependency: &'static str,
        caller: &'static str,
        base_urls: &str,
        keys: Arc<TokenKeys>,
        timeout: Duration,
        policy: &CallPolicy,
    ) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(1)))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        let inner = Inner {
            dependency,
            caller,
            replicas: replicas(base_urls),
            preferred: AtomicUsize::new(0),
            http,
            keys,
            timeout,
            stack: policy.stack(dependency, timeout),
        };

        Self {
            inner: Arc::new(inner),
        }
    }

    /// Reports this client's breaker, retries and bulkhead in `metrics`.
    #[must_use]
    pub fn observed_by(self, metrics: &Metrics) -> Self {
        metrics.track_dependency(&self.inner.stack);
        self
    }

    /// The neighbour's name.
    pub fn dependency(&self) -> &'static str {
        self.inner.dependency
    }

    /// The base URLs of the neighbour's replicas, in failover order.
    pub fn replicas(&self) -> &[String] {
        &self.inner.replicas
    }

    /// The breaker, retry and bulkhead in front of the neighbour.
    pub fn stack(&self) -> &Dependency<NeighbourFaults> {
        &self.inner.stack
    }

    /// `GET path` decoded as `T`, through the stack. Each attempt is
    /// limited by the call timeout and by `deadline`.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        deadline: Option<Deadline>,
    ) -> Result<T, CallError> {
        // GET is idempotent: it may be sent again.
        let retry_safe = true;
        // Read here, in the caller's task: attempts may run elsewhere.
        let request_id = crate::server::current_request_id();
        let request_id = request_id.as_deref();

        self.inner
            .stack
            .call(retry_safe, deadline, || {
                self.attempt(path, deadline, request_id)
            })
            .await
            .map_err(|e| CallError::from_stack(self.inner.dependency, e))
    }

    /// Like [`ServiceClient::get_json`], keeping each good answer in
    /// `cache` under `key`, and answering with the last one (stale, with
    /// its age) when the neighbour cannot answer. A 4xx answer is passed
    /// on as it is: the neighbour did answer, and the cache would be
    /// wrong. Cache failures are logged and count as a miss.
    pub async fn get_json_cached<T, K>(
        &self,
        path: &str,
        deadline: Option<Deadline>,
        cache: &K,
        key: &str,
    ) -> Result<Answer<T, CallError>, CallError>
    where
        T: DeserializeOwned,
        K: FallbackCache<T>,
    {
        let cause = match self.get_json(path, deadline).await {
            Ok(value) => {
                if let Err(error) = cache.put(key, &value).await {
                    tracing::warn!(
                        event.action = "cache-write-failed",
                        dependency = self.inner.dependency,
                        error.message = %error,
                        "Cannot keep an answer in the fallback cache"
                    );
                }
                return Ok(Answer::Fresh(value));
            }
            Err(cause) if cause.is_rejection() => return Err(cause),
            Err(cause) => cause,
        };

        match cache.get(key).await {
            Ok(Some(cached)) => {
                self.inner.stack.breaker().record_fallback();
                Ok(Answer::Stale {
                    value: cached.value,
                    age: cached.age,
                    cause,
                })
            }
            Ok(None) => Err(cause),
            Err(error) => {
                tracing::warn!(
                    event.action = "cache-read-failed",
                    dependency = self.inner.dependency,
                    error.message = %error,
                    "Cannot read the fallback cache"
                );
                Err(cause)
            }
        }
    }

    /// One attempt: the preferred replica, then the next ones while no
    /// connection can be made.
    async fn attempt<T: DeserializeOwned>(
        &self,
        path: &str,
        deadline: Option<Deadline>,
        request_id: Option<&str>,
    ) -> Result<T, CallError> {
        let inner = &self.inner;
        let count = inner.replicas.len();
        let first = inner.preferred.load(Ordering::Relaxed) % count;

        let mut index = first;
        let mut result = self.send(index, path, deadline, request_id).await;
        for step in 1..count {
            if !matches!(result, Err(CallError::Connect { .. })) {
                break;
            }
            index = (first + step) % count;
            result = self.send(index, path, deadline, request_id).await;
        }

        if index != first && !matches!(result, Err(CallError::Connect { .. })) {
            self.prefer(index);
        }
        result
    }

    fn prefer(&self, index: usize) {
        let inner = &self.inner;
        inner.preferred.store(index, Ordering::Relaxed);
        tracing::info!(
            event.action = "replica-failover",
            dependency = inner.dependency,
            "Cannot connect to a replica of {}; now asking replica {} of {}",
            inner.dependency,
            index + 1,
            inner.replicas.len()
        );
    }

    /// `GET` on replica `index`, carrying the time this attempt has left.
    async fn send<T: DeserializeOwned>(
        &self,
        index: usize,
        path: &str,
        deadline: Option<Deadline>,
        request_id: Option<&str>,
    ) -> Result<T, CallError> {
        let inner = &self.inner;
        let dependency = inner.dependency;
        let limit = deadline.map_or(inner.timeout, |d| d.remaining().min(inner.timeout));
        let token = inner.keys.service_token(inner.caller);
        let mut request = inner
            .http
            .get(format!("{}{path}", inner.replicas[index]))
            .bearer_auth(token)
            .header(DEADLINE_HEADER, limit.as_millis().to_string());
        if let Some(id) = request_id {
            request = request.header(REQUEST_ID_HEADER, id);
        }

        let response = request
            .send()
            .await
            .map_err(|e| self.send_error(e, limit))?;
        let status = response.status().as_u16();
        if status >= 400 {
            return Err(CallError::Status {
                dependency,
                status,
                retry_after: retry_after(&response),
            });
        }
        response
            .json::<T>()
            .await
            .map_err(|e| self.send_error(e, limit))
    }

    fn send_error(&self, error: reqwest::Error, limit: Duration) -> CallError {
        let dependency = self.inner.dependency;
        if error.is_timeout() {
            CallError::Timeout {
                dependency,
                millis: limit.as_millis(),
            }
        } else if error.is_connect() {
            CallError::Connect {
                dependency,
                source: error,
            }
        } else {
            CallError::Body {
                dependency,
                source: error,
            }
        }
    }
}

/// Whole seconds from a `Retry-After` header, if it has them.
fn retry_after(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Base URLs from a comma-separated list, without trailing slashes; at
/// least one entry (an empty list gives one empty URL, whose calls fail).
fn replicas(base_urls: &str) -> Vec<String> {
    let list: Vec<String> = base_urls
        .split(',')
        .map(|url| url.trim().trim_end_matches('/').to_owned())
        .filter(|url| !url.is_empty())
        .collect();

    if list.is_empty() {
        vec![String::new()]
    } else {
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_lists_are_split_and_trimmed() {
        assert_eq!(
            replicas("http://a:1/, http://b:2 ,,"),
            ["http://a:1", "http://b:2"]
        );
        assert_eq!(replicas("http://one"), ["http://one"]);
        assert_eq!(replicas(" "), [""]);
    }
}
