//! Forwarding one request: read the body, try servers, pass the answer.
//!
//! A body up to `client_body_buffer_size` is read whole first (as nginx's
//! `proxy_request_buffering on` does), so the same bytes can go to
//! another server when an attempt fails. A larger body is streamed to one
//! server as the client sends it: it may still move on while the
//! connection is not made (nothing was read from the client yet), never
//! once its first byte left. A request without a body reads nothing and
//! allocates nothing here.
//!
//! Then servers are tried one after another as [`Policy`] allows. A
//! response whose status is listed in `next_upstream` is kept while the
//! next server is chosen; when there is none, it is the answer, as in
//! nginx. A failure before any response becomes a 502 or 504 problem.
//!
//! A server may answer before it has read the whole body (a 413) and
//! stop reading or close: that answer is read and passed on, and counts
//! as an answer, not a failure (see [`Failure::counts`]).
//!
//! A kept-alive connection that the server closed before answering (it
//! timed out idle just as the request left) is replaced by a new one to
//! the same server, without counting a failure, when the request is
//! replayable.

use std::sync::Arc;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Response, Version};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::time::{timeout, Duration, Instant};

use crate::body::GatewayBody;
use crate::client::body::Reader;
use crate::client::head::{self, Framing, Head};
use crate::client::{Conn, HeadError, Sent};
use crate::headers;
use crate::problem::Refusal;
use crate::retry::{Failure, Policy};
use crate::upstream::{InFlight, Server, Tried, Upstream};

/// A request as it goes to every server tried.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) method: Method,
    pub(crate) path: PathAndQuery,
    pub(crate) headers: HeaderMap,
    pub(crate) body: OutBody,
    /// Idempotent method or `Idempotency-Key`.
    pub(crate) replayable: bool,
}

/// A request body: read whole, or streamed from the client.
#[derive(Debug)]
pub(crate) enum OutBody {
    /// Read whole; may be sent any number of times.
    Buffered(Bytes),
    /// Sent once, as it arrives; `None` once an attempt took it.
    Streamed(Option<Streaming>),
}

/// The part of a large body read so far and the rest, still with the
/// client.
#[derive(Debug)]
pub(crate) struct Streaming {
    prefix: Bytes,
    rest: Incoming,
    /// `Content-Length` of the client's request, if it gave one.
    length: Option<u64>,
    max: u64,
    idle: Duration,
}

impl Outgoing {
    /// Whether the body can still be sent to another server.
    fn resendable(&self) -> bool {
        match &self.body {
            OutBody::Buffered(_) => true,
            OutBody::Streamed(rest) => rest.is_some(),
        }
    }
}

/// Limits on reading a client's body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    /// Largest body (`client_max_body_size`).
    pub(crate) max: u64,
    /// Largest body read whole (`client_body_buffer_size`).
    pub(crate) buffer: u64,
    /// `client_body_timeout`.
    pub(crate) timeout: Duration,
}

/// Reads a client's body whole when it fits the buffer, within the size
/// and time limits; else keeps what was read and the rest for streaming.
pub(crate) async fn read_body(
    body: Incoming,
    limits: BodyLimits,
) -> Result<OutBody, Refusal> {
    if body.is_end_stream() {
        return Ok(OutBody::Buffered(Bytes::new()));
    }
    let hint = body.size_hint();
    if hint.lower() > limits.max {
        return Err(Refusal::TooLarge(limits.max));
    }

    let buffer = limits.buffer.min(limits.max);
    let length = hint.exact();
    if length.is_some_and(|n| n > buffer) {
        return Ok(streaming(Bytes::new(), body, length, limits));
    }

    let read = timeout(limits.timeout, read_up_to(body, buffer)).await;
    match read {
        Err(_) => Err(Refusal::BodyTimeout),
        Ok(Err(refusal)) => Err(refusal),
        Ok(Ok((bytes, None))) => Ok(OutBody::Buffered(bytes)),
        Ok(Ok((prefix, Some(rest)))) => {
            Ok(streaming(prefix, rest, length, limits))
        }
    }
}

fn streaming(
    prefix: Bytes,
    rest: Incoming,
    length: Option<u64>,
    limits: BodyLimits,
) -> OutBody {
    OutBody::Streamed(Some(Streaming {
        prefix,
        rest,
        length,
        max: limits.max,
        idle: limits.timeout,
    }))
}

/// Reads up to `buffer` bytes: the whole body and `None`, or the bytes
/// read so far (over `buffer`) and the rest.
async fn read_up_to(
    mut body: Incoming,
    buffer: u64,
) -> Result<(Bytes, Option<Incoming>), Refusal> {
    let cap = usize::try_from(buffer).unwrap_or(usize::MAX);
    let whole = body.size_hint().exact().is_some();
    if whole {
        // Known length within the buffer: collect with a hard limit.
        // A client sending more than it announced is broken.
        let collected = Limited::new(body, cap).collect().await;
        return match collected {
            Ok(c) => Ok((c.to_bytes(), None)),
            Err(_) => Err(Refusal::BodyBroken),
        };
    }

    let mut read = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Refusal::BodyBroken)?;
        if let Ok(data) = frame.into_data() {
            read.extend_from_slice(&data);
        }
        if read.len() > cap {
            return Ok((Bytes::from(read), Some(body)));
        }
    }

    Ok((Bytes::from(read), None))
}

/// What one attempt came to, once sorted.
enum Attempt {
    /// An answer to pass on.
    Answer(Head, Conn),
    /// An answer with a listed status: pass on only if nothing better.
    Listed(Head, Conn),
    /// No answer.
    Failed(Failure),
    /// The client's body failed while it was streamed.
    Client(Refusal),
}

/// Why an exchange with one server gave no answer.
enum ExchangeError {
    /// The server failed.
    Server(Failure),
    /// A kept-alive connection was closed before any answer.
    Stale,
    /// The client's streamed body failed.
    Client(Refusal),
}

/// Sends `out` to the upstream's servers until one answers or the
/// policy stops.
pub(crate) async fn forward(
    upstream: &Arc<Upstream>,
    mut out: Outgoing,
) -> Result<Response<GatewayBody>, Refusal> {
    let started = Instant::now();
    let policy = upstream.policy();
    let mut tried = Tried::default();
    let mut attempts = 0;
    let mut kept = None;
    let mut last = None;

    while let Some(guard) = upstream.select(&mut tried) {
        kept = None;
        attempts += 1;

        let (condition, sent) = match attempt(upstream, &mut out, &guard).await
        {
            Attempt::Answer(head, conn) => {
                return Ok(pass(head, conn, upstream, guard))
            }
            Attempt::Listed(head, conn) => {
                let status = head.status;
                kept = Some((head, conn, guard));
                (policy.listed_status(status), true)
            }
            Attempt::Failed(failure) => {
                last = Some(failure);
                (Some(failure.condition()), failure.sent())
            }
            Attempt::Client(refusal) => return Err(refusal),
        };

        let resendable = out.resendable();
        let go_on = condition.is_some_and(|c| {
            let replayable = out.replayable;
            policy.may_retry(c, sent, replayable, resendable, attempts, started)
        });
        if !go_on {
            break;
        }
    }

    if let Some((head, conn, guard)) = kept {
        return Ok(pass(head, conn, upstream, guard));
    }

    Err(match last {
        Some(failure) => Refusal::Failed {
            upstream: upstream.name().into(),
            failure,
        },
        None => Refusal::NoServer {
            upstream: upstream.name().into(),
            retry_after: upstream.retry_after(),
        },
    })
}

/// One attempt on the server `guard` holds; records its outcome.
async fn attempt(
    upstream: &Upstream,
    out: &mut Outgoing,
    guard: &InFlight,
) -> Attempt {
    let server = guard.server();
    let failure = match exchange(upstream, server, out).await {
        Ok((head, conn)) => return sort(head, conn, upstream.policy(), guard),
        Err(ExchangeError::Client(refusal)) => return Attempt::Client(refusal),
        Err(ExchangeError::Server(failure)) => failure,
        Err(ExchangeError::Stale) => Failure::Broken,
    };

    tracing::debug!(
        upstream = %upstream.name(),
        server = %server.address(),
        ?failure,
        "Upstream attempt failed"
    );
    if failure.counts() {
        guard.failed(failure.outcome());
    } else {
        guard.failed_uncounted(failure.outcome());
    }

    Attempt::Failed(failure)
}

/// Sends the request on a pooled or new connection and reads the head.
/// A pooled connection found closed is replaced, for replayable
/// requests, by the next pooled one or a new one.
async fn exchange(
    upstream: &Upstream,
    server: &Server,
    out: &mut Outgoing,
) -> Result<(Head, Conn), ExchangeError> {
    loop {
        let conn = match server.pool().take() {
            Some(conn) => conn,
            None => connect(upstream, server).await?,
        };
        let reused = conn.reused();

        match send(upstream, server, out, conn).await {
            Err(ExchangeError::Stale)
                if reused && out.replayable && out.resendable() =>
            {
                tracing::debug!(
                    server = %server.address(),
                    "Kept-alive connection closed; sending on another"
                );
            }
            other => return other,
        }
    }
}

/// A new connection within the connect timeout. Nothing is sent before
/// it is there, so a failure here is always safe to retry.
async fn connect(
    upstream: &Upstream,
    server: &Server,
) -> Result<Conn, ExchangeError> {
    let connecting = server.target().connect();
    match timeout(upstream.connect_timeout(), connecting).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(_)) => Err(ExchangeError::Server(Failure::Connect)),
        Err(_) => Err(ExchangeError::Server(Failure::ConnectTimeout)),
    }
}

/// Writes the request and reads the answer's head; the read timeout
/// bounds the wait from the last byte sent (and, for a buffered body,
/// the sending too; for a streamed one, each write).
///
/// An upstream may answer before it has read the whole body (a 413) and
/// close: writing stops or fails then, and the head it sent is still
/// read and passed on; [`settle`] sorts what came of it.
async fn send(
    upstream: &Upstream,
    server: &Server,
    out: &mut Outgoing,
    mut conn: Conn,
) -> Result<(Head, Conn), ExchangeError> {
    let reused = conn.reused();
    let head_request = out.method == Method::HEAD;
    let read_timeout = upstream.read_timeout();

    if let OutBody::Buffered(bytes) = &out.body {
        // A cheap clone: the bytes are shared, not copied.
        let bytes = bytes.clone();
        let framing = buffered_framing(&out.method, bytes.len());
        write_head(&mut conn, out, server, framing);
        let exchange = async {
            let sent = conn.send(&bytes).await;
            let head = conn.read_head(head_request).await;
            settle(&sent, head, reused, !bytes.is_empty())
        };
        let head = timeout(read_timeout, exchange)
            .await
            .map_err(|_| ExchangeError::Server(Failure::ReadTimeout))??;
        return Ok((head, conn));
    }

    let streaming = match &mut out.body {
        OutBody::Streamed(streaming) => streaming.take(),
        OutBody::Buffered(_) => None,
    };
    // A streamed body: its bytes go as the client sends them.
    let Some(mut streaming) = streaming else {
        return Err(ExchangeError::Server(Failure::Broken));
    };
    let framing = streaming.length.map_or(Framing::Chunked, Framing::Length);
    write_head(&mut conn, out, server, framing);
    let sent = match within(read_timeout, conn.send(&[])).await? {
        Sent::All => {
            pump(&mut conn, &mut streaming, framing, read_timeout).await?
        }
        other => other,
    };
    if !sent.is_all() {
        discard(streaming);
    }

    let head = timeout(read_timeout, conn.read_head(head_request))
        .await
        .map_err(|_| ExchangeError::Server(Failure::ReadTimeout))?;
    // Never sent twice, so a stale connection is not worth telling.
    let head = settle(&sent, head, false, true)?;

    Ok((head, conn))
}

/// What writing the request and reading the head came to. A head read
/// is the answer, whether or not the body was all written (then the
/// connection is not kept). Without a head, the failure counts against
/// the server only if the whole request was written or had no body (see
/// [`Failure::counts`]).
// Limitation: when the kernel's socket buffers took the whole body and
// the server then reset the connection without answering, the body
// counts as sent and the failure counts against the server.
fn settle(
    sent: &Sent,
    head: Result<Head, HeadError>,
    reused: bool,
    has_body: bool,
) -> Result<Head, ExchangeError> {
    let error = match head {
        Ok(mut head) => {
            if !sent.is_all() {
                // The rest of the body would be read as a request.
                head.keep_alive = false;
            }
            return Ok(head);
        }
        Err(error) => error,
    };

    let write_failed = matches!(sent, Sent::Broken(_));
    match error {
        HeadError::Invalid(_) => {
            Err(ExchangeError::Server(Failure::InvalidHeader))
        }
        HeadError::Closed if reused => Err(ExchangeError::Stale),
        HeadError::Io(_) if reused && write_failed => Err(ExchangeError::Stale),
        HeadError::Closed | HeadError::Io(_) => {
            let failure = if sent.is_all() || !has_body {
                Failure::Broken
            } else {
                Failure::BrokenSendingBody
            };
            Err(ExchangeError::Server(failure))
        }
    }
}

/// A write within the time the server has to take it (nginx's
/// `proxy_send_timeout`; the read timeout here).
async fn within(
    limit: Duration,
    write: impl std::future::Future<Output = Sent>,
) -> Result<Sent, ExchangeError> {
    timeout(limit, write)
        .await
        .map_err(|_| ExchangeError::Server(Failure::ReadTimeout))
}

/// Reads and drops, in the background, the rest of a client's body that
/// the upstream did not take (it answered early or closed), so the
/// client gets to read the answer instead of a reset, as nginx discards
/// a body it will not send. At most `client_max_body_size` bytes, each
/// piece within the client's idle timeout.
fn discard(mut streaming: Streaming) {
    tokio::spawn(async move {
        let mut total = 0u64;
        let idle = streaming.idle;
        while let Ok(Some(Ok(frame))) =
            timeout(idle, streaming.rest.frame()).await
        {
            if let Some(data) = frame.data_ref() {
                total += data.len() as u64;
            }
            if total > streaming.max {
                break;
            }
        }
    });
}

fn write_head(
    conn: &mut Conn,
    out: &Outgoing,
    server: &Server,
    framing: Framing,
) {
    head::encode_request(
        conn.out(),
        &out.method,
        &out.path,
        &out.headers,
        server.address(),
        framing,
    );
}

/// `Content-Length` for a buffered body, also `0` for the methods that
/// expect a body (as clients send them).
fn buffered_framing(method: &Method, len: usize) -> Framing {
    let expects_body =
        matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if len == 0 && !expects_body {
        return Framing::None;
    }

    Framing::Length(len as u64)
}

/// Passes the rest of a streamed body on, chunked unless the client gave
/// its length, within the size limit and the client's idle timeout, and
/// each write within `send_timeout`. Stops early, without an error, when
/// the upstream answers or closes before taking it all.
async fn pump(
    conn: &mut Conn,
    streaming: &mut Streaming,
    framing: Framing,
    send_timeout: Duration,
) -> Result<Sent, ExchangeError> {
    let chunked = framing == Framing::Chunked;
    let mut total = streaming.prefix.len() as u64;
    let prefix = std::mem::take(&mut streaming.prefix);
    let sent = within(send_timeout, write_data(conn, &prefix, chunked)).await?;
    if !sent.is_all() {
        return Ok(sent);
    }

    loop {
        let next = timeout(streaming.idle, streaming.rest.frame()).await;
        let frame = match next {
            Err(_) => return Err(ExchangeError::Client(Refusal::BodyTimeout)),
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                return Err(ExchangeError::Client(Refusal::BodyBroken))
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > streaming.max {
            let max = streaming.max;
            return Err(ExchangeError::Client(Refusal::TooLarge(max)));
        }
        let write = write_data(conn, &data, chunked);
        let sent = within(send_timeout, write).await?;
        if !sent.is_all() {
            return Ok(sent);
        }
    }

    if streaming.length.is_some_and(|n| n != total) {
        return Err(ExchangeError::Client(Refusal::BodyBroken));
    }
    if chunked {
        return within(send_timeout, conn.write(b"0\r\n\r\n")).await;
    }

    Ok(Sent::All)
}

async fn write_data(conn: &mut Conn, data: &[u8], chunked: bool) -> Sent {
    if data.is_empty() {
        return Sent::All;
    }
    if !chunked {
        return conn.write(data).await;
    }

    let size = format!("{:x}\r\n", data.len());
    for part in [size.as_bytes(), data, b"\r\n"] {
        let sent = conn.write(part).await;
        if !sent.is_all() {
            return sent;
        }
    }

    Sent::All
}

fn sort(head: Head, conn: Conn, policy: &Policy, guard: &InFlight) -> Attempt {
    let listed = policy.listed_status(head.status);
    let failure = listed.is_some_and(Policy::counts_as_failure);
    guard.answered(head.status, failure);

    if listed.is_some() {
        Attempt::Listed(head, conn)
    } else {
        Attempt::Answer(head, conn)
    }
}

/// The upstream's answer, made ready for the client.
fn pass(
    head: Head,
    conn: Conn,
    upstream: &Upstream,
    guard: InFlight,
) -> Response<GatewayBody> {
    let Head {
        status,
        mut headers,
        body,
        keep_alive,
    } = head;
    headers::strip_hop_by_hop(&mut headers);
    let reader = Reader::new(conn, body, keep_alive);
    let body = GatewayBody::relayed(reader, upstream.read_timeout(), guard);

    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    *response.version_mut() = Version::HTTP_11;

    response
}
