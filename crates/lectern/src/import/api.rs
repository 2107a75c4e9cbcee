//! The two calls the importer makes through the gateway: sign in, and
//! post a batch to `POST /api/books/import`. One try each; whether and
//! when to try again is [`retry_delay`]'s and the caller's business.

use std::time::Duration;

use bytes::Bytes;
use lectern_marc::bib::BibRecord;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use serde::{Deserialize, Serialize};

/// Most tries of one call.
pub(crate) const MAX_TRIES: u32 = 5;

/// The longest wait between tries, whatever `Retry-After` says.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// A call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// No answer: the connection failed, broke or timed out.
    #[error("no answer from {url}: {source}")]
    Transport {
        /// What was called.
        url: Url,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// An answer with an error status.
    #[error("{status}: {detail}")]
    Refused {
        /// The status.
        status: StatusCode,
        /// The problem document's detail, or the body's start.
        detail: String,
        /// The `Retry-After` it asked for.
        retry_after: Option<Duration>,
    },
    /// A success whose body is not what the API promises.
    #[error("unexpected answer from {url}: {reason}")]
    BadAnswer {
        /// What was called.
        url: Url,
        /// Why it does not read.
        reason: String,
    },
}

impl CallError {
    /// Whether trying the same call again can help: no answer at all, or
    /// the gateway or service saying "not now".
    pub(crate) fn retryable(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Refused { status, .. } => matches!(
                *status,
                StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ),
            Self::BadAnswer { .. } => false,
        }
    }

    /// Whether the token was refused (expired or made with another
    /// secret), so signing in again can help.
    pub(crate) fn is_unauthorized(&self) -> bool {
        let unauthorized = StatusCode::UNAUTHORIZED;

        matches!(self, Self::Refused { status, .. } if *status == unauthorized)
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The wait before try `tries + 1`, after `tries` failed ones ending in
/// `error`: 0.5 s doubling per try, or the server's `Retry-After` when
/// that is longer (at most 30 s).
pub(crate) fn retry_delay(tries: u32, error: &CallError) -> Duration {
    let doubling = 1u32 << tries.saturating_sub(1).min(6);
    let backoff = Duration::from_millis(500) * doubling;
    let asked = error.retry_after().unwrap_or_default();

    backoff.max(asked).min(MAX_WAIT)
}

/// The outcome of one call.
pub(crate) type Called<T> = Result<T, CallError>;

/// What one stored batch changed.
#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
pub(crate) struct ImportCounts {
    /// New records.
    pub(crate) imported: u64,
    /// Records that existed and were overwritten.
    pub(crate) updated: u64,
    /// Copies written.
    pub(crate) copies: u64,
}

#[derive(Serialize)]
struct ImportBody<'a> {
    records: &'a [BibRecord],
}

#[derive(Serialize)]
struct Login<'a> {
    username: &'a str,
    password: &'a str,
}

#[derive(Deserialize)]
struct LoginAnswer {
    token: String,
}

#[derive(Deserialize)]
struct Problem {
    title: Option<String>,
    detail: Option<String>,
}

/// The base URL cannot carry the API's routes.
#[derive(Debug, thiserror::Error)]
#[error("cannot make the API's URLs below {0}")]
pub(crate) struct BadBaseUrl(Url);

/// A signed-in client of the gateway.
pub(crate) struct Api {
    http: reqwest::Client,
    login_url: Url,
    import_url: Url,
    token: Option<String>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("import_url", &self.import_url)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// A client of the gateway at `base`, not signed in yet.
    pub(crate) fn new(http: reqwest::Client, base: &Url) -> Result<Self, BadBaseUrl> {
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }

        let join = |path| base.join(path).map_err(|_| BadBaseUrl(base.clone()));

        Ok(Self {
            login_url: join("api/auth/login")?,
            import_url: join("api/books/import")?,
            http,
            token: None,
        })
    }

    /// Signs in as `username`; later calls carry the token.
    pub(crate) async fn sign_in(
        &mut self,
        username: &str,
        password: &str,
    ) -> Result<(), CallError> {
        let url = self.login_url.clone();
        let request = self
            .http
            .post(url.clone())
            .json(&Login { username, password });
        let answer: LoginAnswer = read_json(&url, send(&url, request).await?).await?;
        self.token = Some(answer.token);

        Ok(())
    }

    /// The JSON body of an import of `records`.
    pub(crate) fn import_body(records: &[BibRecord]) -> Bytes {
        // Serializing plain strings and vectors cannot fail.
        serde_json::to_vec(&ImportBody { records })
            .map(Bytes::from)
            .unwrap_or_default()
    }

    /// Posts one batch body with its `Idempotency-Key`.
    pub(crate) async fn import(&self, key: &str, body: Bytes) -> Called<ImportCounts> {
        let url = self.import_url.clone();
        let mut request = self
            .http
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("idempotency-key", key)
            .body(body);
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }

        read_json(&url, send(&url, request).await?).await
    }
}

/// Sends, turning a missing answer or an error status into [`CallError`].
async fn send(url: &Url, request: RequestBuilder) -> Result<Response, CallError> {
    let response = request
        .send()
        .await
        .map_err(|source| CallError::Transport {
            url: url.clone(),
            source,
        })?;
    if response.status().is_success() {
        return Ok(response);
    }

    Err(refused(response).await)
}

async fn refused(response: Response) -> CallError {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.text().await.unwrap_or_default();

    CallError::Refused {
        status,
        detail: problem_detail(&body),
        retry_after,
    }
}

/// The detail (or title) of a problem document, else the body's start.
fn problem_detail(body: &str) -> String {
    if let Ok(problem) = serde_json::from_str::<Problem>(body) {
        if let Some(text) = problem.detail.or(problem.title) {
            return text;
        }
    }
    let text: String = body.trim().chars().take(200).collect();

    if text.is_empty() {
        "no detail given".into()
    } else {
        text
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    url: &Url,
    response: Response,
) -> Result<T, CallError> {
    let bad = |reason: String| CallError::BadAnswer {
        url: url.clone(),
        reason,
    };
    let bytes = response
        .bytes()
        .await
        .map_err(|source| CallError::Transport {
            url: url.clone(),
            source,
        })?;

    serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, retry_after: Option<u64>) -> CallError {
        CallError::Refused {
            status: StatusCode::from_u16(status).unwrap(),
            detail: String::new(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn only_not_now_answers_are_retried() {
        for status in [429, 502, 503, 504] {
            assert!(refused(status, None).retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 413, 422, 500] {
            assert!(!refused(status, None).retryable(), "{status}");
        }
        assert!(refused(401, None).is_unauthorized());
        assert!(!refused(403, None).is_unauthorized());
    }

    #[test]
    fn waits_double_and_respect_retry_after_within_limits() {
        let plain = refused(503, None);
        let waits: Vec<f64> = (1..=4)
            .map(|tries| retry_delay(tries, &plain).as_secs_f64())
            .collect();
        assert_eq!(waits, [0.5, 1.0, 2.0, 4.0]);

        let asked = refused(503, Some(3));
        assert_eq!(retry_delay(1, &asked), Duration::from_secs(3));
        assert_eq!(retry_delay(4, &asked), Duration::from_secs(4));
        let greedy = refused(503, Some(3600));
        assert_eq!(retry_delay(1, &greedy), MAX_WAIT);
        assert_eq!(retry_delay(u32::MAX, &plain), MAX_WAIT);
    }

    #[test]
    fn problem_documents_give_their_detail() {
        let doc = r#"{"type": "x", "title": "Bad request", "status": 400,
                      "detail": "records[3]: title must not be empty"}"#;
        assert_eq!(problem_detail(doc), "records[3]: title must not be empty");
        assert_eq!(problem_detail(r#"{"title":"Forbidden"}"#), "Forbidden");
        assert_eq!(problem_detail("upstream down"), "upstream down");
        assert_eq!(problem_detail(""), "no detail given");
    }

    #[test]
    fn routes_are_joined_below_the_base_path() {
        let http = reqwest::Client::new();
        let at = |base: &str| {
            let api = Api::new(http.clone(), &Url::parse(base).unwrap()).unwrap();
            api.import_url.to_string()
        };

        assert_eq!(at("http://h:1"), "http://h:1/api/books/import");
        assert_eq!(at("http://h:1/"), "http://h:1/api/books/import");
        assert_eq!(at("http://h/lectern"), "http://h/lectern/api/books/import");
    }
}
