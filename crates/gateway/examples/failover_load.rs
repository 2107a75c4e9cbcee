//! Steady load through a gateway for `bench/failover.sh`: each connection
//! alternates a catalogue search (`GET /api/books?q=tolkien`) and a keyed
//! create (`POST /api/books` with a unique `Idempotency-Key` and title),
//! for a fixed time. Then it lists what the run created and reports:
//! requests, failures (a transport error or a status that is not 2xx,
//! with no retry by the client), creates acknowledged but missing, and
//! titles created more than once (duplicates).
//!
//! ```text
//! failover_load URL SECRET SECONDS CONNECTIONS RUN_ID
//! ```
//!
//! The token is a librarian's, made from book-service's
//! `LECTERN_TOKEN_SECRET`. A benchmark helper: it asserts nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lectern_platform::auth::{Role, TokenKeys};
use tokio::time::Instant;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[derive(Default)]
struct Tally {
    gets: u64,
    get_failures: u64,
    posts: u64,
    post_failures: u64,
    acknowledged: Vec<String>,
    failures: HashMap<String, u64>,
}

struct Load {
    client: HttpClient,
    url: String,
    token: String,
    run: String,
}

impl Load {
    async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: String,
    ) -> Result<(StatusCode, Bytes), String> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json");
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;

        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            self.client.request(request),
        )
        .await
        .map_err(|_| "timeout".to_owned())?
        .map_err(|e| format!("transport: {e}"))?;
        let status = answer.status();
        let body = answer
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();

        Ok((status, body))
    }

    async fn connection(self: Arc<Self>, id: usize, until: Instant) -> Tally {
        let mut tally = Tally::default();
        let mut n = 0;
        while Instant::now() < until && n < 1_000_000 {
            n += 1;
            let got = self
                .call(
                    Method::GET,
                    "/api/books?q=tolkien&limit=5",
                    None,
                    "".into(),
                )
                .await;
            tally.gets += 1;
            if let Some(why) = failure(&got) {
                tally.get_failures += 1;
                *tally.failures.entry(format!("GET {why}")).or_default() += 1;
            }

            let title = format!("{} c{id} n{n}", self.run);
            let key = format!("{}-{id}-{n}", self.run);
            let body = serde_json::json!({
                "title": title,
                "authors": ["Failover, Bench"],
            })
            .to_string();
            let posted = self
                .call(Method::POST, "/api/books", Some(&key), body)
                .await;
            tally.posts += 1;
            match failure(&posted) {
                Some(why) => {
                    tally.post_failures += 1;
                    *tally
                        .failures
                        .entry(format!("POST {why}"))
                        .or_default() += 1;
                }
                None => tally.acknowledged.push(title),
            }
        }

        tally
    }

    /// How many books carry each title of this run.
    async fn created(&self) -> Result<HashMap<String, u64>, String> {
        let mut counts = HashMap::new();
        let mut offset = 0;
        loop {
            let path = format!(
                "/api/books?title={}&limit=100&offset={offset}",
                self.run
            );
            let (status, body) =
                self.call(Method::GET, &path, None, "".into()).await?;
            if status != StatusCode::OK {
                return Err(format!("listing answered {status}"));
            }
            let page: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            for item in &items {
                let title = item["title"].as_str().unwrap_or_default();
                *counts.entry(title.to_owned()).or_default() += 1;
            }
            offset += items.len();
            let total = page["total"].as_u64().unwrap_or(0) as usize;
            if items.is_empty() || offset >= total {
                return Ok(counts);
            }
        }
    }
}

fn failure(result: &Result<(StatusCode, Bytes), String>) -> Option<String> {
    match result {
        Ok((status, _)) if status.is_success() => None,
        Ok((status, _)) => Some(status.as_u16().to_string()),
        Err(why) => Some(why.split(':').next().unwrap_or("error").to_owned()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, secret, seconds, connections, run] = args.as_slice() else {
        return Err("usage: failover_load URL SECRET SECONDS CONNS RUN".into());
    };
    let keys = TokenKeys::from_secret(secret.as_bytes());
    let token = keys.issue(
        "failover-bench",
        Role::Librarian,
        Duration::from_secs(3600),
    );
    let load = Arc::new(Load {
        client: Client::builder(TokioExecutor::new()).build_http(),
        url: url.clone(),
        token,
        run: run.clone(),
    });
    let until = Instant::now() + Duration::from_secs(seconds.parse()?);

    let tasks: Vec<_> = (0..connections.parse::<usize>()?)
        .map(|id| tokio::spawn(Arc::clone(&load).connection(id, until)))
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        let t = task.await?;
        total.gets += t.gets;
        total.get_failures += t.get_failures;
        total.posts += t.posts;
        total.post_failures += t.post_failures;
        total.acknowledged.extend(t.acknowledged);
        for (k, v) in t.failures {
            *total.failures.entry(k).or_default() += v;
        }
    }

    let created = load.created().await?;
    let duplicates: u64 =
        created.values().filter(|&&n| n > 1).map(|n| n - 1).sum();
    let missing = total
        .acknowledged
        .iter()
        .filter(|t| !created.contains_key(*t))
        .count();
    let mut why: Vec<_> = total.failures.iter().collect();
    why.sort();

    println!(
        "requests {} (GET {}, POST {}); failures {} (GET {}, POST {}); \
         acknowledged creates missing {}; duplicate creates {}; \
         failures by kind {:?}",
        total.gets + total.posts,
        total.gets,
        total.posts,
        total.get_failures + total.post_failures,
        total.get_failures,
        total.post_failures,
        missing,
        duplicates,
        why
    );
    Ok(())
}
