//! HTTP/1.1 to upstream servers: connections, their keep-alive pool,
//! request heads and response bodies.
//!
//! The request's own task drives its connection: it writes the request,
//! reads the answer's head, and the response body it hands to the client
//! reads straight from the connection. No connection task, no channel
//! between tasks, no allocation per request beyond the answer's head and
//! data, which is what keeps a proxied request cheap.
//!
//! Idle connections wait in a per-server pool (nginx `keepalive`), last
//! in first out, for at most `keepalive_timeout`. A connection taken from
//! the pool is first checked for a close the server sent meanwhile.

pub(crate) mod body;
pub(crate) mod head;

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::StatusCode;
use parking_lot::Mutex;
use tokio::io::AsyncRead;
use tokio::net::TcpStream;
use tokio::time::Instant;

use head::{Invalid, Parsed};

/// Read buffer size of a new connection.
const INITIAL_BUFFER: usize = 16 * 1024;

/// Largest response head; a larger one is invalid (nginx: "upstream sent
/// too big header").
const MAX_HEAD: usize = 64 * 1024;

/// Where a server is reached.
#[derive(Debug)]
pub(crate) struct Target {
    /// The address, when it is an IP address and port.
    ip: Option<SocketAddr>,
    /// `host:port` as configured, resolved at each new connection.
    name: Box<str>,
}

impl Target {
    pub(crate) fn new(address: &str) -> Self {
        Self {
            ip: address.parse().ok(),
            name: address.into(),
        }
    }

    /// Opens a new connection.
    pub(crate) async fn connect(&self) -> io::Result<Conn> {
        let io = match self.ip {
            Some(ip) => TcpStream::connect(ip).await?,
            None => TcpStream::connect(&*self.name).await?,
        };
        io.set_nodelay(true)?;

        Ok(Conn::new(io))
    }
}

/// Bytes read from a connection and not consumed yet. The storage is
/// zeroed once, when it is made or grows, never per read.
#[derive(Debug)]
pub(crate) struct Buffer {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buffer {
    fn new() -> Self {
        Self {
            data: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
        }
    }

    /// The bytes not consumed yet.
    pub(crate) fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Whether nothing is buffered.
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks `n` buffered bytes as used.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room to read into: moves the buffered bytes to the front, or
    /// grows the storage up to [`MAX_HEAD`].
    fn room(&mut self) -> io::Result<&mut [u8]> {
        if self.end == self.data.len() {
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.data.len() < MAX_HEAD {
                let size = (self.data.len() * 2).min(MAX_HEAD);
                self.data.resize(size, 0);
            } else {
                let kind = io::ErrorKind::InvalidData;
                return Err(io::Error::new(kind, "response head too large"));
            }
        }

        Ok(&mut self.data[self.end..])
    }
}

/// One connection to an upstream server.
#[derive(Debug)]
pub(crate) struct Conn {
    io: TcpStream,
    pub(crate) buf: Buffer,
    out: Vec<u8>,
    reused: bool,
}

/// How writing a request (or part of it) ended.
#[derive(Debug)]
pub(crate) enum Sent {
    /// Every byte was written.
    All,
    /// The server began to answer, or closed, before every byte was
    /// written; its answer (if any) is in the read buffer.
    Answered,
    /// Writing failed (reset, broken pipe).
    Broken(io::Error),
}

impl Sent {
    /// Whether every byte was written.
    pub(crate) fn is_all(&self) -> bool {
        matches!(self, Sent::All)
    }

    /// A write error as an error; an early answer is no error.
    pub(crate) fn result(self) -> io::Result<()> {
        match self {
            Sent::Broken(e) => Err(e),
            Sent::All | Sent::Answered => Ok(()),
        }
    }
}

/// Why no response head was read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeadError {
    /// The server closed the connection before sending a single byte.
    #[error("connection closed before any answer")]
    Closed,
    /// Reading failed.
    #[error("reading the answer failed")]
    Io(#[source] io::Error),
    /// The head is not valid.
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

impl Conn {
    fn new(io: TcpStream) -> Self {
        Self {
            io,
            buf: Buffer::new(),
            out: Vec::with_capacity(1024),
            reused: false,
        }
    }

    /// Whether the connection carried a request before this one.
    pub(crate) fn reused(&self) -> bool {
        self.reused
    }

    /// The write buffer, cleared, for the next request head.
    pub(crate) fn out(&mut self) -> &mut Vec<u8> {
        self.out.clear();
        &mut self.out
    }

    /// Sends what [`Conn::out`] holds, then `body`, unless the server
    /// begins to answer first.
    pub(crate) async fn send(&mut self, body: &[u8]) -> Sent {
        let mut out = std::mem::take(&mut self.out);
        let sent = if body.len() <= 16 * 1024 {
            out.extend_from_slice(body);
            self.write(&out).await
        } else {
            match self.write(&out).await {
                Sent::All => self.write(body).await,
                other => other,
            }
        };
        self.out = out;

        sent
    }

    /// Sends `bytes` as they are, unless the server begins to answer
    /// (or closes) while the socket cannot take more: an upstream may
    /// answer early (413) and stop reading the request body.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> Sent {
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.io.try_write(rest) {
                Ok(0) => return Sent::Broken(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    rest = &rest[n..];
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Sent::Broken(e),
            }
            // Full: wait for room, or for the server to say something.
            let readable = tokio::select! {
                biased;
                r = self.io.readable() => r.map(|()| true),
                w = self.io.writable() => w.map(|()| false),
            };
            match readable {
                Err(e) => return Sent::Broken(e),
                Ok(true) if self.answer_begun() => return Sent::Answered,
                Ok(_) => {}
            }
        }

        Sent::All
    }

    /// Reads what the server sent while the request was still being
    /// written, dropping interim (1xx) heads. True when it began a
    /// final answer, closed, or failed: writing on is pointless then.
    fn answer_begun(&mut self) -> bool {
        let read = match self.buf.room() {
            Ok(room) => self.io.try_read(room),
            Err(_) => return true,
        };
        match read {
            Ok(0) => return true,
            Ok(n) => self.buf.end += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return true,
        }
        loop {
            match head::parse_response(self.buf.filled(), false) {
                Ok(Parsed::Interim(len)) => self.buf.consume(len),
                Ok(Parsed::Partial) => return !self.buf.is_empty(),
                Ok(Parsed::Done(..)) | Err(_) => return true,
            }
        }
    }

    /// Reads until a final response head is complete; skips 1xx heads.
    pub(crate) async fn read_head(
        &mut self,
        head_request: bool,
    ) -> Result<head::Head, HeadError> {
        // Bytes read while the request was written count as read.
        let mut read_any = !self.buf.is_empty();
        loop {
            match head::parse_response(self.buf.filled(), head_request)? {
                Parsed::Done(len, head) => {
                    self.buf.consume(len);
                    return Ok(head);
                }
                Parsed::Interim(len) => {
                    self.buf.consume(len);
                    continue;
                }
                Parsed::Partial => {}
            }

            let read = std::future::poll_fn(|cx| self.poll_fill(cx)).await;
            let n = match read {
                Ok(n) => n,
                Err(e) if !read_any && is_reset(&e) => {
                    return Err(HeadError::Closed)
                }
                Err(e) => return Err(HeadError::Io(e)),
            };
            if n == 0 && !read_any {
                return Err(HeadError::Closed);
            }
            if n == 0 {
                let eof = io::ErrorKind::UnexpectedEof;
                let error = io::Error::new(eof, "closed mid-head");
                return Err(HeadError::Io(error));
            }
            read_any = true;
        }
    }

    /// Reads what is there into the buffer; `Ok(0)` at the end.
    pub(crate) fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let room = self.buf.room()?;
        let mut read = tokio::io::ReadBuf::new(room);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        self.buf.end += n;

        Poll::Ready(Ok(n))
    }

    /// Whether the server closed the idle connection (or sent something
    /// unasked, which also makes it unusable).
    // Limitation: a close that arrives after this look and before the
    // request is sent still fails the request; only replayable ones are
    // then sent again on a new connection (see `proxy::exchange`).
    fn is_stale(&self) -> bool {
        let mut probe = [0u8; 1];
        let read = self.io.try_read(&mut probe);

        !matches!(read, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

fn is_reset(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

thread_local! {
    /// The worker thread this is (0 outside worker threads): each worker
    /// keeps its own idle connections, registered with its own runtime.
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as worker `index`.
pub(crate) fn set_worker(index: usize) {
    WORKER.with(|w| w.set(index));
}

type Idle = Mutex<Vec<(Conn, Instant)>>;

/// Idle keep-alive connections to one server, `max` per worker thread
/// (as nginx's `keepalive` is per worker process).
#[derive(Debug)]
pub(crate) struct Pool {
    shards: Box<[Idle]>,
    max: usize,
    timeout: Duration,
}

impl Pool {
    pub(crate) fn new(max: usize, timeout: Duration, workers: usize) -> Self {
        let shard = || Mutex::new(Vec::with_capacity(max.min(64)));

        Self {
            shards: (0..workers.max(1)).map(|_| shard()).collect(),
            max,
            timeout,
        }
    }

    fn idle_here(&self) -> &Idle {
        let worker = WORKER.with(Cell::get);

        &self.shards[worker % self.shards.len()]
    }

    /// The most recently used idle connection that is still open.
    pub(crate) fn take(&self) -> Option<Conn> {
        loop {
            let (mut conn, since) = self.idle_here().lock().pop()?;
            if since.elapsed() < self.timeout && !conn.is_stale() {
                conn.reused = true;
                return Some(conn);
            }
        }
    }

    /// Keeps `conn` for a later request; the oldest idle one goes when
    /// the pool is full.
    pub(crate) fn put(&self, conn: Conn) {
        if self.max == 0 {
            return;
        }

        let now = Instant::now();
        let evicted = {
            let mut idle = self.idle_here().lock();
            let evicted = (idle.len() >= self.max).then(|| idle.remove(0));
            idle.push((conn, now));
            evicted
        };
        drop(evicted);
    }

    /// Idle connections now, over every worker (for reports).
    pub(crate) fn idle(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// One active health check: `GET path` on a new connection, closed
/// afterwards; the answer's status.
// Limitation: a new connection per check, not one from the keep-alive
// pool, so a check also tests connecting but costs a handshake.
pub(crate) async fn check(
    target: &Target,
    host: &str,
    path: &str,
) -> Result<StatusCode, HeadError> {
    let mut conn = target.connect().await.map_err(HeadError::Io)?;
    let out = conn.out();
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(
        b"\r\nuser-agent: lectern-gateway\r\nconnection: close\r\n\r\n",
    );
    conn.send(&[]).await.result().map_err(HeadError::Io)?;

    let head = conn.read_head(false).await?;

    Ok(head.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that answers each connection with `answer` once read.
    async fn canned(answer: &'static [u8]) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer).await;
            }
        });

        Target::new(&addr.to_string())
    }

    async fn body(conn: Conn, kind: head::BodyKind) -> (Vec<u8>, bool) {
        let mut reader = body::Reader::new(conn, kind, true);
        let mut all = Vec::new();
        while let Some(data) =
            std::future::poll_fn(|cx| reader.poll_data(cx)).await
        {
            all.extend_from_slice(&data.unwrap());
        }

        (all, reader.reusable().is_some())
    }

    #[tokio::test]
    async fn a_chunked_answer_is_read_whole_and_the_connection_kept() {
        let target = canned(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\
              Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n\
              6;x=y\r\n world\r\n0\r\nTrailer: t\r\n\r\n",
        )
        .await;
        let mut conn = target.connect().await.unwrap();
        conn.out().extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        conn.send(&[]).await.result().unwrap();

        let head = conn.read_head(false).await.unwrap();
        assert_eq!(head.status, StatusCode::OK);
        let (data, reusable) = body(conn, head.body).await;

        assert_eq!(data, b"hello world");
        assert!(reusable);
    }

    #[tokio::test]
    async fn a_close_delimited_answer_ends_with_the_connection() {
        let target = canned(b"HTTP/1.1 200 OK\r\n\r\nuntil the end").await;
        let mut conn = target.connect().await.unwrap();
        conn.out().extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        conn.send(&[]).await.result().unwrap();

        let head = conn.read_head(false).await.unwrap();
        assert!(!head.keep_alive);
        let (data, reusable) = body(conn, head.body).await;

        assert_eq!(data, b"until the end");
        assert!(!reusable);
    }

    #[tokio::test]
    async fn a_short_body_is_an_error() {
        let target =
            canned(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort").await;
        let mut conn = target.connect().await.unwrap();
        conn.out().extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        conn.send(&[]).await.result().unwrap();
        let head = conn.read_head(false).await.unwrap();
        let mut reader = body::Reader::new(conn, head.body, true);

        let first = std::future::poll_fn(|cx| reader.poll_data(cx)).await;
        assert_eq!(&first.unwrap().unwrap()[..], b"short");
        let second = std::future::poll_fn(|cx| reader.poll_data(cx)).await;
        assert!(second.unwrap().is_err());
    }

    #[tokio::test]
    async fn a_closed_idle_connection_is_not_handed_out() {
        let target = canned(b"").await;
        let pool = Pool::new(4, Duration::from_secs(60), 1);
        let mut conn = target.connect().await.unwrap();
        conn.out().extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        conn.send(&[]).await.result().unwrap();
        // The server closes after reading; wait for the close to arrive.
        assert!(matches!(
            conn.read_head(false).await,
            Err(HeadError::Closed)
        ));

        pool.put(conn);

        assert_eq!(pool.idle(), 1);
        assert!(pool.take().is_none());
        assert_eq!(pool.idle(), 0);
    }
}
