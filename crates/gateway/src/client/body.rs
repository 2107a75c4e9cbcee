//! Reading a response body from an upstream connection, as its head
//! frames it: a length, chunks, or up to the end of the connection.
//!
//! The reader hands out the data as it arrives and gives the connection
//! back for reuse once the body is complete, nothing beyond it was sent,
//! and the server allows keep-alive.

use std::io;
use std::task::{ready, Context, Poll};

use bytes::Bytes;

use super::head::BodyKind;
use super::Conn;

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes are still to come.
    Length(u64),
    /// A chunk-size line is next.
    Size,
    /// This many bytes of the current chunk are still to come.
    Chunk(u64),
    /// The CRLF after a chunk's data is next.
    ChunkEnd,
    /// Trailer lines, up to an empty one.
    // Limitation: trailers are read and dropped, not passed on.
    Trailers,
    /// Up to the end of the connection.
    Close,
    /// Complete.
    Done,
}

/// The body of one response, read from its connection.
#[derive(Debug)]
pub(crate) struct Reader {
    conn: Option<Conn>,
    state: State,
    keep_alive: bool,
}

impl Reader {
    pub(crate) fn new(conn: Conn, kind: BodyKind, keep_alive: bool) -> Self {
        let state = match kind {
            BodyKind::Empty | BodyKind::Length(0) => State::Done,
            BodyKind::Length(n) => State::Length(n),
            BodyKind::Chunked => State::Size,
            BodyKind::Close => State::Close,
        };

        Self {
            conn: Some(conn),
            state,
            keep_alive,
        }
    }

    /// Whether the whole body has been read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes still to come, when known.
    pub(crate) fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// The connection, when the body is complete and it may carry
    /// another request. Called once; later calls give nothing.
    pub(crate) fn reusable(&mut self) -> Option<Conn> {
        let clean = self.conn.as_ref().is_some_and(|c| c.buf.is_empty());
        if self.is_done() && self.keep_alive && clean {
            return self.conn.take();
        }

        None
    }

    /// The next piece of data; `None` at the end of the body.
    pub(crate) fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };

            match step(&mut self.state, conn) {
                Ok(Step::Data(bytes)) => return Poll::Ready(Some(Ok(bytes))),
                Ok(Step::Again) => continue,
                Ok(Step::End) => return Poll::Ready(None),
                Ok(Step::Read) => {}
                Err(error) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(error)));
                }
            }

            let read = ready!(conn.poll_fill(cx));
            match read {
                Ok(0) if self.state == State::Close => {
                    self.state = State::Done;
                    self.keep_alive = false;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    self.conn = None;
                    let eof = io::ErrorKind::UnexpectedEof;
                    let error = io::Error::new(eof, "upstream closed mid-body");
                    return Poll::Ready(Some(Err(error)));
                }
                Ok(_) => {}
                Err(error) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
    }
}

/// What the bytes already buffered allow.
enum Step {
    /// Hand these bytes on.
    Data(Bytes),
    /// The state moved on; look again.
    Again,
    /// The body is complete.
    End,
    /// More bytes must be read first.
    Read,
}

fn step(state: &mut State, conn: &mut Conn) -> io::Result<Step> {
    let buffered = conn.buf.filled();

    match *state {
        State::Done => Ok(Step::End),
        State::Length(_) | State::Chunk(_) | State::Close
            if buffered.is_empty() =>
        {
            Ok(Step::Read)
        }
        State::Length(left) | State::Chunk(left) => {
            let take = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(buffered.len());
            let data = Bytes::copy_from_slice(&buffered[..take]);
            conn.buf.consume(take);
            let left = left - take as u64;
            *state = match *state {
                State::Length(_) if left == 0 => State::Done,
                State::Length(_) => State::Length(left),
                _ if left == 0 => State::ChunkEnd,
                _ => State::Chunk(left),
            };
            Ok(Step::Data(data))
        }
        State::Close => {
            let data = Bytes::copy_from_slice(buffered);
            conn.buf.consume(buffered.len());
            Ok(Step::Data(data))
        }
        State::Size => {
            let Some((line, used)) = take_line(buffered)? else {
                return Ok(Step::Read);
            };
            let size = chunk_size(line)?;
            conn.buf.consume(used);
            *state = if size == 0 {
                State::Trailers
            } else {
                State::Chunk(size)
            };
            Ok(Step::Again)
        }
        State::ChunkEnd => {
            let Some((line, used)) = take_line(buffered)? else {
                return Ok(Step::Read);
            };
            if !line.is_empty() {
                return Err(invalid("no CRLF after chunk data"));
            }
            conn.buf.consume(used);
            *state = State::Size;
            Ok(Step::Again)
        }
        State::Trailers => {
            let Some((line, used)) = take_line(buffered)? else {
                return Ok(Step::Read);
            };
            let last = line.is_empty();
            conn.buf.consume(used);
            if last {
                *state = State::Done;
            }
            Ok(Step::Again)
        }
    }
}

/// The first line of `bytes` without its line end, and the bytes it
/// used; `None` when it is not complete yet.
fn take_line(bytes: &[u8]) -> io::Result<Option<(&[u8], usize)>> {
    let Some(end) = memchr_lf(bytes) else {
        if bytes.len() > MAX_LINE {
            return Err(invalid("chunk line too long"));
        }
        return Ok(None);
    };
    let line = &bytes[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);

    Ok(Some((line, end + 1)))
}

fn memchr_lf(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// A chunk-size line: hex digits, then maybe `;` and extensions.
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let end = line
        .iter()
        .position(|&b| b == b';' || b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    let digits = &line[..end];
    if digits.is_empty() || digits.len() > 15 {
        return Err(invalid("bad chunk size"));
    }

    let text = std::str::from_utf8(digits).map_err(|_| invalid("bad chunk"))?;
    u64::from_str_radix(text, 16).map_err(|_| invalid("bad chunk size"))
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_lines_are_read_with_extensions_and_bare_lf() {
        assert_eq!(chunk_size(b"1a").unwrap(), 26);
        assert_eq!(chunk_size(b"0;name=value").unwrap(), 0);
        assert!(chunk_size(b"").is_err());
        assert!(chunk_size(b"zz").is_err());
        assert!(chunk_size(b"ffffffffffffffff").is_err());

        let (line, used) = take_line(b"5\r\nhello").unwrap().unwrap();
        assert_eq!((line, used), (&b"5"[..], 3));
        let (line, used) = take_line(b"5\nhello").unwrap().unwrap();
        assert_eq!((line, used), (&b"5"[..], 2));
        assert!(take_line(b"5").unwrap().is_none());
    }
}
