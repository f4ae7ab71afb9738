//! A minimal HTTP/1.1 client for cloud-hypervisor's REST API on its unix
//! socket, generic over `Read + Write` so it is testable without a socket
//! (the shape of cloud-hypervisor's own `api_client` crate).
//!
//! One request per connection (`Connection: close`). The status line and
//! headers are parsed by `httparse`; this module does the framing. The
//! response is read with bounds: the status line and headers at most [`HEADER_MAX`] bytes, the
//! body at most [`BODY_MAX`], by `Content-Length` or else until EOF; 1xx,
//! 204 and 304 have no body, nor has a response without `Content-Length` on
//! a `Connection: keep-alive` connection (cloud-hypervisor's `micro_http`
//! keeps connections open and ignores `Connection: close`). Chunked transfer coding is refused
//! (cloud-hypervisor's `micro_http` does not send it).
//!
//! This module never formats a response body into a message: callers decide
//! what of it may be shown (cloud-hypervisor may echo the VM config, which
//! holds the credentials). For the same reason every buffer the response is
//! read into is wiped when dropped, and grows by copying into a new wiped
//! buffer, so no copy of it is freed unwiped.

use std::io::{self, Read, Write};

use thiserror::Error;
use vmcreds_common::escape::escape_bytes;
use zeroize::Zeroizing;

/// Bytes from the peer, which may echo the request's credentials.
pub type Wiped = Zeroizing<Vec<u8>>;

/// Most bytes of the status line and headers together.
pub const HEADER_MAX: usize = 16 * 1024;
/// Most bytes of a response body.
pub const BODY_MAX: usize = 1024 * 1024;

/// Why a request failed below HTTP semantics.
#[derive(Debug, Error)]
pub enum ApiError {
    /// Writing the request failed.
    #[error("cannot send the request")]
    Write(#[source] io::Error),
    /// Reading the response failed (a read timeout shows up here).
    #[error("cannot read the response")]
    Read(#[source] io::Error),
    /// The peer closed the connection before a complete response.
    #[error("the connection closed before a complete response ({0} bytes received)")]
    Truncated(usize),
    /// The status line and headers are too long.
    #[error("the response's status line and headers are over {HEADER_MAX} bytes")]
    HeaderTooLarge,
    /// The body is too long.
    #[error("the response body is over {BODY_MAX} bytes")]
    BodyTooLarge,
    /// Not an HTTP/1.x response (the offending text escaped and truncated).
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
}

impl crate::exit::Classify<crate::exit::Exit> for ApiError {
    fn exit(&self) -> crate::exit::Exit {
        match self {
            ApiError::Write(_) | ApiError::Read(_) => crate::exit::Exit::Io,
            _ => crate::exit::Exit::Refused,
        }
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, ApiError>;

/// A response.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase (escaped, at most 100 bytes shown).
    pub reason: String,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body (may echo the request: do not print it unredacted; wiped
    /// when dropped).
    pub body: Wiped,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("headers", &self.headers)
            .field("body", &format_args!("[{} bytes]", self.body.len()))
            .finish()
    }
}

impl Response {
    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Writes the request head for `method path` with a JSON body of `body_len` bytes.
pub fn request_head(method: &str, path: &str, body_len: Option<usize>) -> String {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n");
    if let Some(n) = body_len {
        head.push_str("Content-Type: application/json\r\n");
        head.push_str(&format!("Content-Length: {n}\r\n"));
    } else {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    head
}

/// Sends one request and reads the response.
pub fn request<S: Read + Write>(
    stream: &mut S,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<Response> {
    let head = request_head(method, path, body.map(<[u8]>::len));
    stream.write_all(head.as_bytes()).map_err(ApiError::Write)?;
    if let Some(b) = body {
        stream.write_all(b).map_err(ApiError::Write)?;
    }
    stream.flush().map_err(ApiError::Write)?;
    read_response(stream)
}

/// Most header lines of a response.
pub const HEADERS_MAX: usize = 64;

/// A malformed head: what is wrong, and the first line (escaped, cut).
fn malformed(what: &str, buf: &[u8]) -> ApiError {
    let line = buf
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    ApiError::Malformed(format!("{what}: \"{}\"", escape_bytes(line, 100)))
}

/// The status line and headers, parsed by `httparse` once `buf` holds all
/// of them: the head's length and the response without its body; `None`
/// while the head is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, Response)>> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut head = httparse::Response::new(&mut headers);
    let end = match head.parse(buf) {
        Ok(httparse::Status::Complete(end)) => end,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ApiError::Malformed(format!(
                "more than {HEADERS_MAX} header lines"
            )))
        }
        Err(e) => return Err(malformed(&e.to_string(), buf)),
    };
    let status = match head.code {
        Some(s) if (100..600).contains(&s) => s,
        _ => return Err(malformed("bad status code", buf)),
    };
    let mut parsed = Vec::with_capacity(head.headers.len());
    for h in head.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| malformed("a header value that is not UTF-8", h.value))?;
        parsed.push((h.name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok(Some((
        end,
        Response {
            status,
            reason: escape_bytes(head.reason.unwrap_or_default().trim().as_bytes(), 100),
            headers: parsed,
            body: Wiped::default(),
        },
    )))
}

/// Appends `bytes` to `buf` without freeing an unwiped copy: when the
/// capacity does not suffice, the contents move to a new, larger wiped
/// buffer and the old one is wiped as it is dropped.
fn push_wiped(buf: &mut Wiped, bytes: &[u8]) {
    if buf.capacity() - buf.len() < bytes.len() {
        let want = (buf.len() + bytes.len())
            .max(buf.capacity().saturating_mul(2))
            .max(4096);
        let mut grown = Zeroizing::new(Vec::with_capacity(want));
        grown.extend_from_slice(buf);
        *buf = grown;
    }
    buf.extend_from_slice(bytes);
}

fn read_some<R: Read>(r: &mut R, buf: &mut Wiped, max: usize) -> Result<usize> {
    let mut chunk = Zeroizing::new([0u8; 4096]);
    let want = chunk.len().min(max.saturating_sub(buf.len()).max(1));
    loop {
        match r.read(&mut chunk[..want]) {
            Ok(n) => {
                push_wiped(buf, &chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ApiError::Read(e)),
        }
    }
}

/// Reads and parses one response from `r`.
pub fn read_response<R: Read>(r: &mut R) -> Result<Response> {
    let mut buf = Wiped::default();
    let (head_end, mut resp) = loop {
        if let Some(head) = parse_head(&buf)? {
            break head;
        }
        if buf.len() > HEADER_MAX {
            return Err(ApiError::HeaderTooLarge);
        }
        if read_some(r, &mut buf, HEADER_MAX + 4)? == 0 {
            return Err(ApiError::Truncated(buf.len()));
        }
    };
    if head_end > HEADER_MAX {
        return Err(ApiError::HeaderTooLarge);
    }
    let status = resp.status;
    if resp
        .header("transfer-encoding")
        .is_some_and(|v| !v.eq_ignore_ascii_case("identity"))
    {
        return Err(ApiError::Malformed(
            "chunked transfer coding is not supported".to_owned(),
        ));
    }
    let mut body = Wiped::default();
    push_wiped(&mut body, &buf[head_end..]);
    buf.truncate(head_end);
    if (100..200).contains(&status) || status == 204 || status == 304 {
        // No body by definition (RFC 9112 §6.3); whatever follows is ignored.
        return Ok(resp);
    }
    let lengths: Vec<&str> = resp
        .headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    match lengths.as_slice() {
        [] if resp
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")) =>
        {
            // A persistent connection without a length can only end the
            // message with the headers: older micro_http versions answer a
            // bodiless non-204 this way and keep the socket open, so reading
            // to EOF would hang until the timeout.
            body.clear();
        }
        [] => {
            // Until EOF.
            loop {
                if body.len() > BODY_MAX {
                    return Err(ApiError::BodyTooLarge);
                }
                if read_some(r, &mut body, BODY_MAX + 1)? == 0 {
                    break;
                }
            }
        }
        [len] => {
            let len: usize = len
                .parse()
                .map_err(|_| malformed("a bad Content-Length", len.as_bytes()))?;
            if len > BODY_MAX {
                return Err(ApiError::BodyTooLarge);
            }
            while body.len() < len {
                if read_some(r, &mut body, len)? == 0 {
                    return Err(ApiError::Truncated(head_end + body.len()));
                }
            }
            body.truncate(len);
            // (The cut bytes stay in the spare capacity, wiped with it.)
        }
        _ => {
            return Err(ApiError::Malformed(
                "more than one Content-Length header".to_owned(),
            ))
        }
    }
    resp.body = body;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake stream: reads from `input`, records writes.
    struct Fake {
        input: io::Cursor<Vec<u8>>,
        written: Vec<u8>,
    }

    impl Fake {
        fn new(input: &[u8]) -> Fake {
            Fake {
                input: io::Cursor::new(input.to_vec()),
                written: Vec::new(),
            }
        }
    }

    impl Read for Fake {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            // One byte at a time: exercises reassembly.
            let n = buf.len().min(1);
            self.input.read(&mut buf[..n])
        }
    }

    impl Write for Fake {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn test_request_bytes_and_204() {
        let mut s = Fake::new(b"HTTP/1.1 204 No Content\r\nServer: Cloud Hypervisor API\r\n\r\n");
        let r = request(&mut s, "PUT", "/api/v1/vm.create", Some(b"{}")).unwrap();
        assert_eq!(r.status, 204);
        assert!(r.is_success() && r.body.is_empty());
        assert_eq!(
            String::from_utf8(s.written).unwrap(),
            "PUT /api/v1/vm.create HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        );
        let mut s = Fake::new(b"HTTP/1.1 204 \r\n\r\n");
        let r = request(&mut s, "PUT", "/api/v1/vm.boot", None).unwrap();
        assert_eq!((r.status, r.reason.as_str()), (204, ""));
        assert!(String::from_utf8(s.written)
            .unwrap()
            .contains("Content-Length: 0\r\n"));
    }

    #[test]
    fn test_error_body_by_length_and_eof() {
        let mut s = Fake::new(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\nhelloEXTRA",
        );
        let r = read_response(&mut s).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (500, &b"hello"[..]));
        assert!(!r.is_success());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let mut s = Fake::new(b"HTTP/1.0 400 Bad Request\r\n\r\nto the end");
        assert_eq!(
            read_response(&mut s).unwrap().body.as_slice(),
            b"to the end"
        );
        // micro_http's shape: empty reason, keep-alive, no length on a bodiless answer.
        let mut s = Fake::new(
            b"HTTP/1.1 200 \r\nServer: Cloud Hypervisor API\r\nConnection: keep-alive\r\n\r\n",
        );
        let r = read_response(&mut s).unwrap();
        assert!(r.is_success() && r.body.is_empty());
    }

    #[test]
    fn test_bounds_and_malformed() {
        let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        big.extend_from_slice(&vec![b'a'; HEADER_MAX]);
        big.extend_from_slice(b"\r\n\r\n");
        assert!(matches!(
            read_response(&mut Fake::new(&big)),
            Err(ApiError::HeaderTooLarge)
        ));
        let over = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            BODY_MAX + 1
        );
        assert!(matches!(
            read_response(&mut Fake::new(over.as_bytes())),
            Err(ApiError::BodyTooLarge)
        ));
        assert!(matches!(
            read_response(&mut Fake::new(
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
            )),
            Err(ApiError::Truncated(_))
        ));
        assert!(matches!(
            read_response(&mut Fake::new(b"HTTP/1.1 200")),
            Err(ApiError::Truncated(_))
        ));
        for bad in [
            &b"SSH-2.0 hi\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nX: \xff\r\n\r\n",
            b"HTTP/1.1 099 OK\r\n\r\n",
            &[
                &b"HTTP/1.1 200 OK\r\n"[..],
                &b"X: y\r\n".repeat(HEADERS_MAX + 1),
                b"\r\n",
            ]
            .concat(),
        ] {
            assert!(
                matches!(
                    read_response(&mut Fake::new(bad)),
                    Err(ApiError::Malformed(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn test_debug_hides_body() {
        let r = Response {
            status: 500,
            reason: String::new(),
            headers: vec![],
            body: Zeroizing::new(b"CANARY".to_vec()),
        };
        assert!(!format!("{r:?}").contains("CANARY"));
    }
}
