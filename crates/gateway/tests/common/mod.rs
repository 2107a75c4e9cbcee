//! Test helpers: scripted upstream servers, a running gateway, a client.
//!
//! Every server listens on 127.0.0.1 port 0. An upstream (a mock of a
//! Lectern service) answers:
//! - `/health/ready`: 200, or 503 while the test says it is not ready;
//!   these checks are counted apart and not recorded;
//! - a path containing `/slow`: waits until the test opens its gate;
//! - a path containing `/status/NNN`: answers status NNN;
//! - a path containing `/hang`: sends the head, then never the body;
//! - anything else: 200 with `{"server", "method", "path", "headers",
//!   "body"}`.
//!
//! It records every other request it sees.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use lectern_gateway::{
    GatewayConfig, GatewayError, GatewayServer, ReloadHandle, UpstreamConfig,
};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;

/// One request as an upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

struct Shared {
    name: String,
    seen: parking_lot::Mutex<Vec<Seen>>,
    gate: Semaphore,
    waiting: AtomicUsize,
    status: Option<StatusCode>,
    ready: AtomicBool,
    checks: AtomicUsize,
}

/// A scripted upstream server.
pub struct Upstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Upstream {
    pub async fn start(name: &str) -> Upstream {
        Self::launch(name, None).await
    }

    /// An upstream that answers every request with `status`.
    pub async fn failing(name: &str, status: u16) -> Upstream {
        let status = StatusCode::from_u16(status).unwrap();

        Self::launch(name, Some(status)).await
    }

    async fn launch(name: &str, status: Option<StatusCode>) -> Upstream {
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            seen: parking_lot::Mutex::new(Vec::new()),
            gate: Semaphore::new(0),
            waiting: AtomicUsize::new(0),
            status,
            ready: AtomicBool::new(true),
            checks: AtomicUsize::new(0),
        });
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&shared));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        Upstream { addr, shared, task }
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().clone()
    }

    /// How many requests it has seen.
    pub fn count(&self) -> usize {
        self.shared.seen.lock().len()
    }

    /// Requests held at the gate right now.
    pub fn waiting(&self) -> usize {
        self.shared.waiting.load(Ordering::SeqCst)
    }

    /// Lets `n` held requests (or future ones) through.
    pub fn open(&self, n: usize) {
        self.shared.gate.add_permits(n);
    }

    /// Makes `/health/ready` answer 200 (true) or 503 (false).
    pub fn set_ready(&self, ready: bool) {
        self.shared.ready.store(ready, Ordering::SeqCst);
    }

    /// Health checks answered so far.
    pub fn checks(&self) -> usize {
        self.shared.checks.load(Ordering::SeqCst)
    }

    /// Waits until `n` requests are held at the gate.
    pub async fn until_waiting(&self, n: usize) {
        eventually(|| async { self.waiting() == n }).await;
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.shared.gate.close();
        self.task.abort();
    }
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if path == "/health/ready" {
        shared.checks.fetch_add(1, Ordering::SeqCst);
        let ready = shared.ready.load(Ordering::SeqCst);
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        return (status, "ready?").into_response();
    }

    let seen = Seen {
        method: method.to_string(),
        path: path.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    shared.seen.lock().push(seen.clone());

    if path.contains("/slow") {
        shared.waiting.fetch_add(1, Ordering::SeqCst);
        let permit = shared.gate.acquire().await;
        shared.waiting.fetch_sub(1, Ordering::SeqCst);
        if let Ok(permit) = permit {
            permit.forget();
        }
    }

    if let Some(status) = shared.status {
        return (status, format!("{} says {status}", shared.name))
            .into_response();
    }

    if let Some(code) = path.split("/status/").nth(1) {
        let status = StatusCode::from_u16(code.parse().unwrap()).unwrap();
        return (status, format!("{} says {status}", shared.name))
            .into_response();
    }

    if path.contains("/hang") {
        let never = futures::stream::pending::<Result<Bytes, std::io::Error>>();
        return Response::new(Body::from_stream(never));
    }

    let reply = serde_json::json!({
        "server": shared.name,
        "method": seen.method,
        "path": seen.path,
        "headers": seen.headers,
        "body": seen.body,
    });
    axum::Json(reply).into_response()
}

/// A loopback port with nothing listening: connections are refused.
pub async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();

    listener.local_addr().unwrap()
}

/// The value of one series in Prometheus text, 0 when absent.
pub fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: Vec<String> =
        labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let line = text.lines().find(|l| {
        l.starts_with(&format!("{name}{{"))
            && wanted.iter().all(|w| l.contains(w.as_str()))
    });

    line.and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    pub reload: ReloadHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), GatewayError>>>,
}

impl Gateway {
    pub async fn start(config: GatewayConfig) -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let server = GatewayServer::new(&config).expect("a valid config");
        let reload = server.reload_handle();
        let task = tokio::spawn(server.serve(listener, shutdown));

        Gateway {
            addr,
            reload,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Asks the gateway to stop and returns its task.
    pub fn stop(&mut self) -> JoinHandle<Result<(), GatewayError>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().expect("stopped once")
    }

    /// The servers of one upstream as `/admin/upstreams` reports them.
    pub async fn servers(&self, upstream: &str) -> Vec<Value> {
        let reply = get(&self.url("/admin/upstreams")).await;
        let all = reply.json();
        let list = all["upstreams"].as_array().unwrap();
        let found = list.iter().find(|u| u["name"] == upstream).unwrap();

        found["servers"].as_array().unwrap().clone()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        get(&self.url("/metrics")).await.body
    }

    /// Total in-flight count over one upstream's servers.
    pub async fn in_flight(&self, upstream: &str) -> u64 {
        let servers = self.servers(upstream).await;

        servers
            .iter()
            .map(|s| s["in_flight"].as_u64().unwrap())
            .sum()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A gateway config with one upstream `book-service` of these servers
/// and the other two upstreams on dead ports, with passive health only
/// (no active checks), so tests see nginx's behaviour alone.
pub async fn books_only(servers: &[SocketAddr]) -> GatewayConfig {
    let dead = dead_addr().await;
    let mut config = GatewayConfig::local(servers.to_vec(), dead, dead);
    for upstream in config.upstreams.values_mut() {
        upstream.health_check = None;
    }

    config
}

/// The `book-service` upstream of a config.
pub fn books(config: &mut GatewayConfig) -> &mut UpstreamConfig {
    config.upstreams.get_mut("book-service").unwrap()
}

/// An answer as the test client got it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }

    /// Which upstream server answered (from the echo).
    pub fn server(&self) -> String {
        self.json()["server"].as_str().unwrap().to_owned()
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn get(url: &str) -> Reply {
    send(Method::GET, url, &[], "").await
}

pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut request = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();

    let response = tokio::time::timeout(
        Duration::from_secs(30),
        client().request(request),
    )
    .await
    .expect("the gateway answers within 30 s")
    .expect("the gateway answers");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();

    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Polls `check` until it holds, for at most 10 s.
pub async fn eventually<F, Fut>(check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1_000 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 10 s");
}

/// A mock upstream that reads one request (head and body), then closes
/// the connection without answering: the request may have been
/// processed, so only a replayable request may go elsewhere.
pub struct Breaking {
    pub addr: SocketAddr,
    received: Arc<parking_lot::Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Breaking {
    pub async fn start() -> Breaking {
        use tokio::io::AsyncReadExt;

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut bytes = Vec::new();
                let mut buf = [0u8; 4096];
                // Read until the request looks complete, then hang up.
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    bytes.extend_from_slice(&buf[..n]);
                    if request_complete(&bytes) {
                        break;
                    }
                }
                log.lock()
                    .push(String::from_utf8_lossy(&bytes).into_owned());
                drop(stream);
            }
        });

        Breaking {
            addr,
            received,
            task,
        }
    }

    /// Every request it read, head and body, as text.
    pub fn received(&self) -> Vec<String> {
        self.received.lock().clone()
    }
}

impl Drop for Breaking {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether `bytes` hold a whole request with a length or chunked body.
fn request_complete(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes).to_ascii_lowercase();
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let body = &text[end + 4..];
    if text[..end].contains("transfer-encoding: chunked") {
        return body.ends_with("0\r\n\r\n");
    }
    let length = text[..end]
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);

    body.len() >= length
}

/// Sends a request whose body goes as these chunks with no length
/// (chunked on the wire), and waits for the answer.
pub async fn send_chunked(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    chunks: &[&str],
) -> Reply {
    use http_body_util::StreamBody;

    let frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = chunks
        .iter()
        .map(|c| Ok(http_body::Frame::data(Bytes::from(c.to_string()))))
        .collect();
    let body = StreamBody::new(futures::stream::iter(frames));
    let mut request = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request.body(body).unwrap();

    let client = Client::builder(TokioExecutor::new()).build_http();
    let response =
        tokio::time::timeout(Duration::from_secs(30), client.request(request))
            .await
            .expect("the gateway answers within 30 s")
            .expect("the gateway answers");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();

    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The config of `books_only`, served on the test's own runtime (no
/// worker threads), so a paused clock governs checks and timeouts.
pub async fn books_on_test_runtime(servers: &[SocketAddr]) -> GatewayConfig {
    let mut config = books_only(servers).await;
    config.worker_threads = Some(0);

    config
}

/// Which mock answered each of `n` GETs of `path`, in order (a failing
/// mock's answer starts with its name).
pub async fn answered_by(
    gateway: &Gateway,
    path: &str,
    n: usize,
) -> Vec<String> {
    let mut names = Vec::with_capacity(n);
    for _ in 0..n {
        let reply = get(&gateway.url(path)).await;
        let name = if reply.status.is_success() {
            reply.server()
        } else {
            reply.body.split(' ').next().unwrap_or_default().to_owned()
        };
        names.push(name);
    }

    names
}
