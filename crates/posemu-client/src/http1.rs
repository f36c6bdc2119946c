//! A lean HTTP/1.1 client for plain `http://` servers: what a fleet's workers send through
//! (see [`Transport::direct_pool`]).
//!
//! A profile of a fleet polling through reqwest spent about a third of its user time in
//! reqwest and hyper-util around hyper (the URL parsed again on every request, with IDNA; the
//! pool's checkout by key; boxed pending futures), and through hyper's connection API alone
//! still ~15 % in its dispatch (a task per connection, channels for the request, the answer
//! and its body). Here the request's own future writes the request and reads the answer on a
//! pooled connection: one write, one read for a small answer, no task, no channel, the write
//! buffer reused. The answer is parsed by `httparse` (bounded head, at most [`MAX_HEADERS`]
//! headers) and framed as RFC 9112 §6.3 says (content-length, chunked, or until close).
//!
//! The request (method, headers, body) is the one the caller built, so devices send exactly
//! what they send through reqwest; what reqwest and hyper add by themselves is added here the
//! same way (`accept: */*`, `host`, `content-length` for a body).
//!
//! [`Transport::direct_pool`]: crate::Transport::direct_pool

use std::io::ErrorKind;
use std::time::Duration;

use parking_lot::Mutex;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING,
};
use reqwest::{Method, StatusCode, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use posemu_protocol::api::CallError;

use crate::transport::{Incoming, MAX_RESPONSE_BYTES};

/// Headers of an answer beyond this are refused (hyper's limit too).
pub(crate) const MAX_HEADERS: usize = 100;
/// The answer's status line and headers, at most.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A chunk-size line or a trailer line, at most.
const MAX_LINE_BYTES: usize = 4096;
/// An idle connection keeps buffers up to this; bigger ones are given back.
const KEEP_BUFFER_BYTES: usize = 16 * 1024;
/// New connections of one pool not answered yet, at most. A server's accept queue is short
/// (tokio's listeners, the sandbox's too, ask for 128): a burst of a fleet worker's 256 calls
/// in flight, each on a new connection, overflowed it, and the kernel dropped the SYNs past it
/// (`ListenOverflows`), which the client's kernel resends after 1 s: polls waited 1 s, and the
/// calls queued behind them counted that as lateness. A connection stops counting once its
/// first answer is in, the proof that the server accepted it.
pub(crate) const MAX_CONNECTING: usize = 32;

/// One keep-alive connection and its buffers.
struct Conn {
    stream: TcpStream,
    /// The request being written (reused: no allocation per request).
    out: Vec<u8>,
    /// What has been read of the answer.
    inb: Vec<u8>,
}

/// Connections to one `http://` server.
pub(crate) struct Pool {
    /// `host:port` to connect to.
    addr: String,
    /// The `Host` header (`host[:port]`, the port only when not 80), as reqwest sends it.
    host: HeaderValue,
    /// The base URL's path (`/v2`), without a trailing slash; requests go to `{prefix}{path}`.
    prefix: String,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    /// [`MAX_CONNECTING`] permits.
    connecting: tokio::sync::Semaphore,
}

fn invalid(what: &str) -> CallError {
    CallError::Network(format!("invalid HTTP answer: {what}"))
}

/// A request that got no answer: [`Silently`](Unanswered::Silently) when not one byte came back
/// (the write failed, or the connection ended or broke before the answer began).
enum Unanswered {
    Silently(CallError),
    Otherwise(CallError),
}

impl Unanswered {
    fn into_error(self) -> CallError {
        match self {
            Unanswered::Silently(e) | Unanswered::Otherwise(e) => e,
        }
    }
}

/// Whether a request may be sent again when it went unanswered: `GET` and `HEAD`, and any
/// request that carries an `Idempotency-Key` (the server answers a repeat with the first
/// outcome; spec 7.11).
fn replayable(method: &Method, headers: &HeaderMap) -> bool {
    *method == Method::GET
        || *method == Method::HEAD
        || headers.contains_key(posemu_protocol::payments::IDEMPOTENCY_KEY)
}

/// How the body of an answer ends (RFC 9112 §6.3).
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

impl Pool {
    /// A pool for `url` (scheme `http`, a host, no credentials left in it).
    pub(crate) fn new(url: &reqwest::Url, max_idle: usize) -> Option<Pool> {
        if url.scheme() != "http" {
            return None;
        }
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        let host_header = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        Some(Pool {
            addr: format!("{host}:{port}"),
            host: HeaderValue::from_str(&host_header).ok()?,
            prefix: url.path().trim_end_matches('/').to_string(),
            idle: Mutex::new(Vec::new()),
            max_idle,
            connecting: tokio::sync::Semaphore::new(MAX_CONNECTING),
        })
    }

    /// Sends one request to `{prefix}{path}` and reads the whole answer. `path` starts with
    /// `/` and may have a query. No timeout of its own but the connect timeout: the caller
    /// bounds the whole call.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
        connect_timeout: Duration,
    ) -> Result<Incoming, CallError> {
        if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(CallError::Network(format!(
                "request path {:?} is not a valid request target",
                posemu_protocol::text::escape_control(path)
            )));
        }
        let (mut conn, mut permit) = match self.checkout() {
            Some(c) => (c, None),
            None => self.open(connect_timeout).await?,
        };
        // without a permit: kept alive from an earlier request
        let reused = permit.is_none();
        let body = body.unwrap_or_default();
        self.write_head(&mut conn.out, &method, path, &headers, body.len());
        conn.out.extend_from_slice(&body);
        let mut answer = self.exchange(&mut conn, &method).await;
        if reused && replayable(&method, &headers) {
            if let Err(Unanswered::Silently(_)) = answer {
                // The server closed this kept-alive connection as it was being reused (its
                // idle timeout met the request): nothing was answered, so nothing was done.
                // A request safe to repeat goes once more on a new connection, as browsers
                // and Go's client do.
                let (mut fresh, p) = self.open(connect_timeout).await?;
                permit = p;
                std::mem::swap(&mut fresh.out, &mut conn.out);
                conn = fresh;
                answer = self.exchange(&mut conn, &method).await;
            }
        }
        let (incoming, reusable) = answer.map_err(Unanswered::into_error)?;
        // answered: the server has accepted this connection
        drop(permit);
        if reusable {
            self.checkin(conn);
        }
        Ok(incoming)
    }

    /// A new connection and its [`MAX_CONNECTING`] permit, or an idle one that came back while
    /// this call waited for its turn to connect (then without a permit).
    async fn open(
        &self,
        connect_timeout: Duration,
    ) -> Result<(Conn, Option<tokio::sync::SemaphorePermit<'_>>), CallError> {
        let p = self
            .connecting
            .acquire()
            .await
            .map_err(|_| CallError::Network("connection pool closed".into()))?;
        match self.checkout() {
            Some(c) => Ok((c, None)),
            None => Ok((self.connect(connect_timeout).await?, Some(p))),
        }
    }

    /// Writes the request in `conn.out` and reads its answer.
    async fn exchange(
        &self,
        conn: &mut Conn,
        method: &Method,
    ) -> Result<(Incoming, bool), Unanswered> {
        if let Err(e) = conn.stream.write_all(&conn.out).await {
            return Err(Unanswered::Silently(CallError::Network(format!(
                "error sending request to {}: {e}",
                self.addr
            ))));
        }
        read_answer(conn, method).await.map_err(|e| {
            if conn.inb.is_empty() && matches!(e, CallError::Network(_)) {
                Unanswered::Silently(e)
            } else {
                Unanswered::Otherwise(e)
            }
        })
    }

    /// The request line and headers, as hyper writes them after reqwest: the caller's
    /// headers, then `accept` and `host` when the caller has none, then `content-length` for a
    /// body.
    fn write_head(
        &self,
        out: &mut Vec<u8>,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body_len: usize,
    ) {
        out.clear();
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let mut put = |name: &HeaderName, value: &HeaderValue| {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        for (name, value) in headers {
            put(name, value);
        }
        if !headers.contains_key(ACCEPT) {
            put(&ACCEPT, &HeaderValue::from_static("*/*"));
        }
        if !headers.contains_key(HOST) {
            put(&HOST, &self.host);
        }
        if body_len > 0 && !headers.contains_key(CONTENT_LENGTH) {
            put(&CONTENT_LENGTH, &HeaderValue::from(body_len));
        }
        out.extend_from_slice(b"\r\n");
    }

    /// An idle connection the server has not closed.
    fn checkout(&self) -> Option<Conn> {
        loop {
            let conn = self.idle.lock().pop()?;
            // an idle connection has nothing to read: end of stream or stray bytes retire it
            let mut probe = [0u8; 1];
            match conn.stream.try_read(&mut probe) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Some(conn),
                _ => continue,
            }
        }
    }

    fn checkin(&self, mut conn: Conn) {
        conn.inb.clear();
        if conn.inb.capacity() > KEEP_BUFFER_BYTES {
            conn.inb = Vec::new();
        }
        if conn.out.capacity() > KEEP_BUFFER_BYTES {
            conn.out = Vec::new();
        }
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    async fn connect(&self, connect_timeout: Duration) -> Result<Conn, CallError> {
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(&*self.addr))
            .await
            .map_err(|_| CallError::Timeout(connect_timeout))?
            .map_err(|e| {
                CallError::Network(format!(
                    "error sending request to {}: tcp connect error: {e}",
                    self.addr
                ))
            })?;
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            out: Vec::with_capacity(512),
            inb: Vec::with_capacity(1024),
        })
    }
}

/// Reads more of the answer; false at the end of the stream.
async fn fill(conn: &mut Conn, want: usize) -> Result<bool, CallError> {
    if conn.inb.capacity() - conn.inb.len() < want.min(64 * 1024) {
        conn.inb.reserve(want.clamp(1024, 64 * 1024));
    }
    let n = conn
        .stream
        .read_buf(&mut conn.inb)
        .await
        .map_err(|e| CallError::Network(format!("error reading the answer: {e}")))?;
    Ok(n > 0)
}

/// Reads one answer; also whether the connection can carry another request.
async fn read_answer(conn: &mut Conn, method: &Method) -> Result<(Incoming, bool), CallError> {
    loop {
        let (head_len, status, version, headers) = loop {
            if let Some(parsed) = parse_head(&conn.inb)? {
                break parsed;
            }
            if conn.inb.len() >= MAX_HEAD_BYTES {
                return Err(invalid("the head is too large"));
            }
            if !fill(conn, 1024).await? {
                return Err(invalid("the connection closed before an answer"));
            }
        };
        if status.is_informational() {
            // 100 Continue and the like: the real answer follows
            conn.inb.drain(..head_len);
            continue;
        }
        let framing = framing(method, status, &headers)?;
        let mut reusable = version == Version::HTTP_11
            && !headers
                .get_all(CONNECTION)
                .iter()
                .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let body = match framing {
            Framing::Empty => Vec::new(),
            Framing::Length(n) => {
                if n > MAX_RESPONSE_BYTES {
                    return Err(too_large());
                }
                while conn.inb.len() - head_len < n {
                    let missing = n - (conn.inb.len() - head_len);
                    if !fill(conn, missing).await? {
                        return Err(invalid("the connection closed within the body"));
                    }
                }
                conn.inb[head_len..head_len + n].to_vec()
            }
            Framing::Chunked => {
                let mut body = Vec::new();
                let mut pos = head_len;
                while !dechunk(&conn.inb, &mut pos, &mut body)? {
                    if !fill(conn, 8192).await? {
                        return Err(invalid("the connection closed within the body"));
                    }
                }
                // bytes past the answer: not an HTTP/1.1 exchange this client understands
                reusable &= pos == conn.inb.len();
                body
            }
            Framing::UntilClose => {
                reusable = false;
                while fill(conn, 8192).await? {
                    if conn.inb.len() - head_len > MAX_RESPONSE_BYTES {
                        return Err(too_large());
                    }
                }
                conn.inb[head_len..].to_vec()
            }
        };
        if let Framing::Length(n) = framing {
            reusable &= conn.inb.len() == head_len + n;
        }
        return Ok((
            Incoming {
                status,
                version,
                headers,
                body,
            },
            reusable,
        ));
    }
}

fn too_large() -> CallError {
    CallError::Decode(format!("answer is larger than {MAX_RESPONSE_BYTES} bytes"))
}

type Head = (usize, StatusCode, Version, HeaderMap);

/// The status line and headers, once all of them are in `buf`.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, CallError> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut raw);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(&e.to_string())),
    };
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| invalid("no status"))?;
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| invalid("a header name is not valid"))?;
        let value =
            HeaderValue::from_bytes(h.value).map_err(|_| invalid("a header value is not valid"))?;
        headers.append(name, value);
    }
    Ok(Some((len, status, version, headers)))
}

/// How the body ends (RFC 9112 §6.3).
fn framing(method: &Method, status: StatusCode, headers: &HeaderMap) -> Result<Framing, CallError> {
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        let last = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|t| !t.is_empty())
            .unwrap_or("");
        return Ok(if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut length = None;
    for v in headers.get_all(CONTENT_LENGTH) {
        for part in v.to_str().unwrap_or("x").split(',') {
            let part = part.trim();
            if part.is_empty() || part.len() > 19 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("content-length is not a number"));
            }
            let n: u64 = part
                .parse()
                .map_err(|_| invalid("content-length is not a number"))?;
            if length.is_some_and(|l| l != n) {
                return Err(invalid("content-length given twice, differently"));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(n) => Framing::Length(usize::try_from(n).unwrap_or(usize::MAX)),
        None => Framing::UntilClose,
    })
}

/// Decodes the chunks that are complete in `buf[*pos..]` into `body`; true once the last
/// chunk and the trailers are in. `*pos` moves past what was decoded.
fn dechunk(buf: &[u8], pos: &mut usize, body: &mut Vec<u8>) -> Result<bool, CallError> {
    loop {
        let rest = &buf[*pos..];
        let Some(eol) = find_crlf(rest) else {
            return if rest.len() > MAX_LINE_BYTES {
                Err(invalid("a chunk-size line is too long"))
            } else {
                Ok(false)
            };
        };
        let size_field = rest[..eol].split(|&b| b == b';').next().unwrap_or_default();
        let size_field = size_field.trim_ascii();
        if size_field.is_empty()
            || size_field.len() > 15
            || !size_field.iter().all(u8::is_ascii_hexdigit)
        {
            return Err(invalid("a chunk size is not a hexadecimal number"));
        }
        let size = std::str::from_utf8(size_field)
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or_else(|| invalid("a chunk size is not a hexadecimal number"))?;
        if size == 0 {
            // trailers, up to an empty line (read, not kept)
            let mut p = *pos + eol + 2;
            loop {
                let Some(e) = find_crlf(&buf[p..]) else {
                    return if buf.len() - p > MAX_LINE_BYTES {
                        Err(invalid("a trailer line is too long"))
                    } else {
                        Ok(false)
                    };
                };
                p += e + 2;
                if e == 0 {
                    *pos = p;
                    return Ok(true);
                }
            }
        }
        if body.len().saturating_add(size) > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        let need = eol + 2 + size + 2;
        if rest.len() < need {
            return Ok(false);
        }
        if &rest[need - 2..need] != b"\r\n" {
            return Err(invalid("a chunk does not end where its size says"));
        }
        body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
        *pos += need;
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
#[path = "http1_tests.rs"]
mod tests;
