//! Headers the gateway removes, adds or passes on.
//!
//! - Hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and every header it
//!   names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`,
//!   `Upgrade`) are removed in both directions; so is `Expect` on the way
//!   up, since the body has been read by then.
//! - `X-Forwarded-For` gets the client's address appended;
//!   `X-Forwarded-Proto` is set to `http` unless a proxy in front set it.
//! - `X-Request-Id` is kept when it is sane (1 to 128 visible ASCII
//!   characters), else replaced by a new UUID; the response carries it too.
//! - `traceparent` (W3C Trace Context) is kept when valid, else a new one
//!   starts the trace here.

use std::cell::Cell;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `X-Request-Id`.
pub(crate) static X_REQUEST_ID: HeaderName =
    HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName =
    HeaderName::from_static("x-forwarded-proto");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName =
    HeaderName::from_static("proxy-connection");

/// Connection first: its bit says whether to look at what it names.
static HOP_BY_HOP: [&HeaderName; 9] = [
    &header::CONNECTION,
    &header::PROXY_AUTHENTICATE,
    &header::PROXY_AUTHORIZATION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
];

/// Removes hop-by-hop headers, including those `Connection` names.
/// Looks at every header once and removes only what is there, since
/// most messages carry none or only `Connection: keep-alive`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(i) = hop_by_hop_index(name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }

    if present & 1 != 0 {
        for name in named_by_connection(headers) {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(*name);
        }
    }
}

fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    HOP_BY_HOP.iter().position(|h| *h == name)
}

/// Other headers that `Connection` names; none for its usual values.
fn named_by_connection(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut named = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let text = value.to_str().unwrap_or_default();
        for token in text.split(',').map(str::trim) {
            let usual = ["keep-alive", "close", "te", "upgrade", "trailer"]
                .iter()
                .any(|u| token.eq_ignore_ascii_case(u));
            if usual {
                continue;
            }
            if let Ok(name) = HeaderName::try_from(token) {
                named.push(name);
            }
        }
    }

    named
}

/// Makes a client's request headers ready for an upstream; returns the
/// request id it carries. `client` is the client's address as a header
/// value.
pub(crate) fn prepare_request(
    headers: &mut HeaderMap,
    client: &HeaderValue,
) -> HeaderValue {
    strip_hop_by_hop(headers);
    let seen = Seen::of(headers);
    if seen.expect {
        // The body is already read (and a 100 Continue sent if asked).
        headers.remove(header::EXPECT);
    }
    append_forwarded_for(headers, client, seen.forwarded_for);
    if !seen.forwarded_proto {
        let http = HeaderValue::from_static("http");
        headers.insert(X_FORWARDED_PROTO.clone(), http);
    }

    let valid = seen.traceparent
        && headers.get(&TRACEPARENT).is_some_and(is_traceparent);
    if !valid {
        headers.insert(TRACEPARENT.clone(), new_traceparent());
    }

    request_id(headers, seen.request_id)
}

/// Which of the headers the gateway sets a request already has, found in
/// one pass rather than one hash lookup each.
#[derive(Default)]
struct Seen {
    expect: bool,
    forwarded_for: bool,
    forwarded_proto: bool,
    traceparent: bool,
    request_id: bool,
}

impl Seen {
    fn of(headers: &HeaderMap) -> Self {
        let mut seen = Seen::default();
        for name in headers.keys() {
            if name == header::EXPECT {
                seen.expect = true;
            } else if name == X_FORWARDED_FOR {
                seen.forwarded_for = true;
            } else if name == X_FORWARDED_PROTO {
                seen.forwarded_proto = true;
            } else if name == TRACEPARENT {
                seen.traceparent = true;
            } else if name == X_REQUEST_ID {
                seen.request_id = true;
            }
        }

        seen
    }
}

/// Whether the request says it may be replayed (`Idempotency-Key`).
pub(crate) fn has_idempotency_key(headers: &HeaderMap) -> bool {
    headers.contains_key(&IDEMPOTENCY_KEY)
}

fn append_forwarded_for(
    headers: &mut HeaderMap,
    client: &HeaderValue,
    present: bool,
) {
    if !present {
        headers.insert(X_FORWARDED_FOR.clone(), client.clone());
        return;
    }

    let mut text = Vec::with_capacity(64);
    for value in headers.get_all(&X_FORWARDED_FOR) {
        text.extend_from_slice(value.as_bytes());
        text.extend_from_slice(b", ");
    }
    text.extend_from_slice(client.as_bytes());

    if let Ok(value) = HeaderValue::from_bytes(&text) {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
}

fn request_id(headers: &mut HeaderMap, present: bool) -> HeaderValue {
    let given = present.then(|| headers.get(&X_REQUEST_ID)).flatten();
    if let Some(id) = given.filter(|v| is_sane_id(v)) {
        return id.clone();
    }

    let id = new_request_id();
    headers.insert(X_REQUEST_ID.clone(), id.clone());

    id
}

fn is_sane_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();

    (1..=128).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_graphic)
}

// Limitation: ids are predictable to whoever sees many of them; they are
// meant to be unique, and nothing may rely on them being secret.
thread_local! {
    /// The state of a SplitMix64 generator per thread, seeded once from
    /// the system's randomness: ids need to be unique, not secret, and
    /// this costs a few instructions rather than a ChaCha block.
    static IDS: Cell<u64> = Cell::new(rand::random());
}

fn next_u64() -> u64 {
    IDS.with(|state| {
        let mut z = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&next_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&next_u64().to_le_bytes());

    bytes
}

fn new_request_id() -> HeaderValue {
    let uuid = uuid::Builder::from_random_bytes(random_bytes()).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid.hyphenated().encode_lower(&mut text);

    HeaderValue::from_str(text).expect("a UUID is a valid header value")
}

/// Whether a `traceparent` is version 00 with non-zero ids, in lower hex.
fn is_traceparent(value: &HeaderValue) -> bool {
    let b = value.as_bytes();
    let hex =
        |s: &[u8]| s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let nonzero = |s: &[u8]| s.iter().any(|&c| c != b'0');

    b.len() == 55
        && b.starts_with(b"00-")
        && b[35] == b'-'
        && b[52] == b'-'
        && hex(&b[3..35])
        && hex(&b[36..52])
        && hex(&b[53..55])
        && nonzero(&b[3..35])
        && nonzero(&b[36..52])
}

/// A new trace: version 00, random non-zero ids, sampled.
fn new_traceparent() -> HeaderValue {
    let mut trace = random_bytes();
    // Never all zeroes (invalid): the last byte is odd.
    trace[15] |= 1;
    let span = (next_u64() | 1).to_be_bytes();
    let mut text = [0u8; 55];
    text[..3].copy_from_slice(b"00-");
    hex(&trace, &mut text[3..35]);
    text[35] = b'-';
    hex(&span, &mut text[36..52]);
    text[52..].copy_from_slice(b"-01");

    HeaderValue::from_bytes(&text).expect("hex digits are a valid header value")
}

/// Writes `bytes` as lower-case hex into `out` (twice as long).
fn hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> HeaderValue {
        HeaderValue::from_static("127.0.0.1")
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::try_from(*k).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_go() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("accept", "application/json"),
        ]);

        strip_hop_by_hop(&mut h);

        let left: Vec<_> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn forwarded_for_appends_the_client() {
        let mut h = headers(&[("x-forwarded-for", "203.0.113.7")]);

        prepare_request(&mut h, &local());

        assert_eq!(h[&X_FORWARDED_FOR], "203.0.113.7, 127.0.0.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
    }

    #[test]
    fn a_sane_request_id_is_kept_and_a_bad_one_replaced() {
        let mut h = headers(&[("x-request-id", "abc-123")]);
        assert_eq!(prepare_request(&mut h, &local()), "abc-123");

        let mut h = headers(&[("x-request-id", &"x".repeat(200))]);
        let id = prepare_request(&mut h, &local());
        assert_eq!(id.len(), 36);
        assert_eq!(h[&X_REQUEST_ID], id);
    }

    #[test]
    fn a_valid_traceparent_is_kept_and_a_bad_one_replaced() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut h = headers(&[("traceparent", good)]);
        prepare_request(&mut h, &local());
        assert_eq!(h[&TRACEPARENT], good);

        let zero = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        let mut h = headers(&[("traceparent", zero)]);
        prepare_request(&mut h, &local());
        assert_ne!(h[&TRACEPARENT], zero);
        assert!(is_traceparent(&h[&TRACEPARENT]));
    }

    #[test]
    fn new_traces_are_valid_and_differ() {
        let a = new_traceparent();
        let b = new_traceparent();

        assert!(is_traceparent(&a), "{a:?}");
        assert_ne!(a, b);
    }
}
