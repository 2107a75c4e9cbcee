//! Request heads written to upstreams, response heads read from them.
//!
//! A response head is parsed by `httparse` and copied once into a shared
//! buffer that its header values point into. How its body is framed
//! follows RFC 9112 §6.3: none after `HEAD`, 1xx, 204 and 304; chunked
//! when `Transfer-Encoding` ends with `chunked`; `Content-Length` bytes;
//! else up to the end of the connection.

use std::mem::MaybeUninit;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, StatusCode};

/// Most header lines in a response head.
const MAX_HEADERS: usize = 100;

/// How a request body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body and no framing header.
    None,
    /// `Content-Length: n`, then n bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Writes a request head: request line, the headers (without any
/// framing header of the client's), `Host` when the client sent none,
/// and the framing header of the body that follows.
pub(crate) fn encode_request(
    out: &mut Vec<u8>,
    method: &Method,
    path: &PathAndQuery,
    headers: &HeaderMap,
    host: &str,
    framing: Framing,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_str().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");

    if !headers.contains_key(header::HOST) {
        line(out, b"host", host.as_bytes());
    }
    for (name, value) in headers {
        let framing =
            name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING;
        if !framing {
            line(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }

    match framing {
        Framing::None => {}
        Framing::Length(n) => {
            let mut digits = itoa(n);
            line(out, b"content-length", digits.as_bytes_mut());
        }
        Framing::Chunked => line(out, b"transfer-encoding", b"chunked"),
    }
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Decimal digits of `n`, without going through `fmt`.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_bytes_mut(&mut self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa(mut n: u64) -> Digits {
    let mut buf = [0u8; 20];
    let mut start = buf.len();
    loop {
        start -= 1;
        // `n % 10` is below 10, so the cast keeps every bit.
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }

    Digits { buf, start }
}

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the server closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: BodyKind,
    /// Whether the connection may carry another request afterwards.
    pub(crate) keep_alive: bool,
}

/// What parsing the bytes read so far gave.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// The head is not complete yet.
    Partial,
    /// An interim (1xx) head of this many bytes, to skip.
    Interim(usize),
    /// A final head of this many bytes.
    Done(usize, Head),
}

/// The upstream's head is not HTTP/1.x as a gateway can pass on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid response head: {0}")]
pub(crate) struct Invalid(pub(crate) &'static str);

/// Parses a response head from the start of `bytes`.
pub(crate) fn parse_response(
    bytes: &[u8],
    head_request: bool,
) -> Result<Parsed, Invalid> {
    if bytes.is_empty() {
        return Ok(Parsed::Partial);
    }
    // Uninitialised slots: no 3 KiB of zeroes per answer.
    let mut lines = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut response, bytes, &mut lines);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Invalid("too many headers"))
        }
        Err(_) => return Err(Invalid("not an HTTP/1.x response")),
    };

    let code = response.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| Invalid("bad status"))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(Invalid("upgrades are not supported"));
    }
    if status.is_informational() {
        return Ok(Parsed::Interim(len));
    }

    let raw = Bytes::copy_from_slice(&bytes[..len]);
    let (headers, noted) = header_map(response.headers, bytes, &raw)?;
    let http11 = response.version == Some(1);
    let head = frame(status, headers, &noted, http11, head_request);

    Ok(Parsed::Done(len, head))
}

/// What the framing depends on, noted while the headers are read.
#[derive(Default)]
struct Noted {
    transfer_encoding: bool,
    chunked: bool,
    length: Option<u64>,
    close: bool,
    keep_alive: bool,
}

/// The headers as a map whose values share `raw`, the copy of `bytes`,
/// and what they say about framing.
fn header_map(
    lines: &[httparse::Header<'_>],
    bytes: &[u8],
    raw: &Bytes,
) -> Result<(HeaderMap, Noted), Invalid> {
    let base = bytes.as_ptr() as usize;
    let mut map = HeaderMap::with_capacity(lines.len());
    let mut framing = Noted::default();

    for line in lines {
        let name = HeaderName::from_bytes(line.name.as_bytes())
            .map_err(|_| Invalid("bad header name"))?;
        note(&mut framing, &name, line.value)?;
        // httparse's value is a slice of `bytes`: the same range of the
        // copy holds the same text.
        let offset = line.value.as_ptr() as usize - base;
        let shared = raw.slice(offset..offset + line.value.len());
        let value = HeaderValue::from_maybe_shared(shared)
            .map_err(|_| Invalid("bad header value"))?;
        map.append(name, value);
    }

    Ok((map, framing))
}

fn note(
    framing: &mut Noted,
    name: &HeaderName,
    value: &[u8],
) -> Result<(), Invalid> {
    if name == header::CONTENT_LENGTH {
        for part in value.split(|&b| b == b',') {
            let text = std::str::from_utf8(part.trim_ascii())
                .map_err(|_| Invalid("bad length"))?;
            let n: u64 = text.parse().map_err(|_| Invalid("bad length"))?;
            if framing.length.is_some_and(|l| l != n) {
                return Err(Invalid("conflicting lengths"));
            }
            framing.length = Some(n);
        }
    } else if name == header::TRANSFER_ENCODING {
        framing.transfer_encoding = true;
        let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
        framing.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
    } else if name == header::CONNECTION {
        for token in value.split(|&b| b == b',') {
            let token = token.trim_ascii();
            framing.close |= token.eq_ignore_ascii_case(b"close");
            framing.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
        }
    }

    Ok(())
}

/// Decides the body's framing and whether the connection stays open.
fn frame(
    status: StatusCode,
    mut headers: HeaderMap,
    noted: &Noted,
    http11: bool,
    head_request: bool,
) -> Head {
    let no_body = head_request
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;

    let body = if no_body {
        BodyKind::Empty
    } else if noted.transfer_encoding {
        // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length.
        headers.remove(header::CONTENT_LENGTH);
        if noted.chunked {
            BodyKind::Chunked
        } else {
            BodyKind::Close
        }
    } else {
        match noted.length {
            Some(n) => BodyKind::Length(n),
            None => BodyKind::Close,
        }
    };

    let persistent = if http11 {
        !noted.close
    } else {
        noted.keep_alive
    };

    Head {
        status,
        headers,
        body,
        keep_alive: body != BodyKind::Close && persistent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Head {
        match parse_response(text.as_bytes(), false).unwrap() {
            Parsed::Done(len, head) => {
                assert_eq!(len, text.find("\r\n\r\n").unwrap() + 4);
                head
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_head_carries_the_framing_of_its_body() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("1"));
        headers.insert("content-length", HeaderValue::from_static("99"));
        let path = PathAndQuery::from_static("/api/books?q=x");
        let mut out = Vec::new();

        encode_request(
            &mut out,
            &Method::POST,
            &path,
            &headers,
            "books:8081",
            Framing::Length(12),
        );

        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /api/books?q=x HTTP/1.1\r\nhost: books:8081\r\n\
             x-a: 1\r\ncontent-length: 12\r\n\r\n"
        );
        assert_eq!(itoa(0).as_bytes_mut(), b"0");
        assert_eq!(itoa(u64::MAX).as_bytes_mut(), b"18446744073709551615");
    }

    #[test]
    fn response_bodies_are_framed_as_rfc_9112_says() {
        let h = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
        assert_eq!((h.body, h.keep_alive), (BodyKind::Length(5), true));

        let h = parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\
             Content-Length: 5\r\n\r\n",
        );
        assert_eq!(h.body, BodyKind::Chunked);
        assert!(!h.headers.contains_key("content-length"));

        let h = parse("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        assert_eq!((h.body, h.keep_alive), (BodyKind::Close, false));

        let h = parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.keep_alive, "HTTP/1.0 closes unless told");

        let h = parse("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n");
        assert_eq!(h.body, BodyKind::Empty);
        assert_eq!(h.headers["content-length"], "9");
    }

    #[test]
    fn bad_heads_are_invalid_and_interim_ones_skipped() {
        let bad = |t: &str| parse_response(t.as_bytes(), false).is_err();
        assert!(bad(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
        ));
        assert!(bad("HTTP/1.1 101 Switching\r\nUpgrade: ws\r\n\r\n"));
        assert!(bad("SSH-2.0-OpenSSH\r\n\r\n"));

        let interim = "HTTP/1.1 100 Continue\r\n\r\n";
        assert!(matches!(
            parse_response(interim.as_bytes(), false),
            Ok(Parsed::Interim(25))
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nA: b", false),
            Ok(Parsed::Partial)
        ));
    }
}
