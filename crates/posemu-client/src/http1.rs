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
        let mut permit = None;
        let mut conn = match self.checkout() {
            Some(c) => c,
            None => {
                let p = self
                    .connecting
                    .acquire()
                    .await
                    .map_err(|_| CallError::Network("connection pool closed".into()))?;
                // a connection may have come back while this call waited
                match self.checkout() {
                    Some(c) => c,
                    None => {
                        permit = Some(p);
                        self.connect(connect_timeout).await?
                    }
                }
            }
        };
        let body = body.unwrap_or_default();
        self.write_head(&mut conn.out, &method, path, &headers, body.len());
        conn.out.extend_from_slice(&body);
        let io = |e: std::io::Error| {
            CallError::Network(format!("error sending request to {}: {e}", self.addr))
        };
        conn.stream.write_all(&conn.out).await.map_err(io)?;
        let (incoming, reusable) = read_answer(&mut conn, &method).await?;
        // answered: the server has accepted this connection
        drop(permit);
        if reusable {
            self.checkin(conn);
        }
        Ok(incoming)
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
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use crate::transport::Outgoing;
    use crate::{Transport, TransportConfig};

    use super::*;

    /// What the test server does with each request it reads.
    #[derive(Clone, Copy)]
    enum Answer {
        /// `200` with a small JSON body, connection kept.
        Ok,
        /// The same, then it closes the connection without saying so.
        OkThenClose,
        /// These bytes, then the connection is closed.
        Raw(&'static [u8]),
        /// Nothing, ever.
        Silent,
    }

    const OK: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n{\"state\":\"x\"}";

    /// A raw HTTP/1.1 server on 127.0.0.1 that records every request head it reads.
    async fn server(answer: Answer) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let mut chunk = [0u8; 4096];
                        let end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        while buf.len() < end + len {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body = String::from_utf8_lossy(&buf[end..end + len]).into_owned();
                        buf.drain(..end + len);
                        seen.lock().push(format!("{head}{body}"));
                        let reply: &[u8] = match answer {
                            Answer::Ok | Answer::OkThenClose => OK,
                            Answer::Raw(r) => r,
                            Answer::Silent => {
                                std::future::pending::<()>().await;
                                b""
                            }
                        };
                        if sock.write_all(reply).await.is_err() {
                            return;
                        }
                        if matches!(answer, Answer::OkThenClose | Answer::Raw(_)) {
                            return;
                        }
                    }
                });
            }
        });
        (url, heads)
    }

    fn outgoing(t: &Transport, method: Method, path: &str, body: Option<&str>) -> Outgoing {
        let mut headers = HeaderMap::new();
        headers.insert("x-device-id", HeaderValue::from_static("POS-F0000001"));
        headers.insert(
            reqwest::header::USER_AGENT,
            HeaderValue::from_static("Viopay-POS/1.4.2 (Android 12; PAX-A920)"),
        );
        headers.insert("x-client-type", HeaderValue::from_static("pos"));
        if body.is_some() {
            headers.insert(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        Outgoing {
            method,
            url: t.url(path),
            headers,
            body: body.map(|b| b.as_bytes().to_vec()),
            timeout: None,
        }
    }

    /// A request's head as a set of lines: the request line first, header lines sorted.
    fn normalised(head: &str) -> Vec<String> {
        let mut lines = head.split("\r\n").map(str::to_string);
        let first = lines.next().unwrap_or_default();
        let mut rest: Vec<String> = lines.filter(|l| !l.is_empty()).collect();
        rest.sort();
        std::iter::once(first).chain(rest).collect()
    }

    #[tokio::test]
    async fn the_direct_pool_sends_what_reqwest_sends() {
        let (url, heads) = server(Answer::Ok).await;
        let base = format!("{url}/v2/");
        let via_reqwest = Transport::new(&base, TransportConfig::default()).unwrap();
        let direct = via_reqwest.direct_pool().unwrap();
        assert!(direct.is_direct() && !via_reqwest.is_direct());
        assert!(direct.separate_pool().unwrap().is_direct());
        for (method, path, body) in [
            (Method::GET, "/pos/status", None),
            (Method::POST, "/pos/bootstrap", None),
            (Method::POST, "/pos/activate", Some("{\"a\":1}")),
            (Method::GET, "/pos/charges?limit=5", None),
        ] {
            for t in [&via_reqwest, &direct] {
                let inc = t
                    .send(outgoing(t, method.clone(), path, body))
                    .await
                    .unwrap();
                assert_eq!(inc.status, 200);
                assert_eq!(inc.body, b"{\"state\":\"x\"}");
                assert_eq!(inc.headers["content-type"], "application/json");
            }
            let h = heads.lock().split_off(0);
            assert_eq!(h.len(), 2);
            assert_eq!(normalised(&h[0]), normalised(&h[1]), "{method} {path}");
            assert!(
                h[1].starts_with(&format!("{method} /v2{path} HTTP/1.1\r\n")),
                "{}",
                h[1]
            );
        }
    }

    #[tokio::test]
    async fn credentials_in_the_url_go_as_basic_auth_on_the_direct_path_too() {
        let (url, heads) = server(Answer::Ok).await;
        let with_creds = url.replace("http://", "http://alice:pw@");
        let t = Transport::new(&with_creds, TransportConfig::default())
            .unwrap()
            .direct_pool()
            .unwrap();
        t.send(outgoing(&t, Method::GET, "/pos/status", None))
            .await
            .unwrap();
        let h = heads.lock()[0].to_ascii_lowercase();
        assert!(h.contains("authorization: basic ywxpy2u6chc="), "{h}");
    }

    #[tokio::test]
    async fn connections_are_reused_and_a_closed_one_is_replaced() {
        for answer in [Answer::Ok, Answer::OkThenClose] {
            let (url, heads) = server(answer).await;
            let t = Transport::new(&url, TransportConfig::default())
                .unwrap()
                .direct_pool()
                .unwrap();
            for _ in 0..5 {
                let inc = t
                    .send(outgoing(&t, Method::GET, "/pos/status", None))
                    .await
                    .unwrap();
                assert_eq!(inc.status, 200);
            }
            assert_eq!(heads.lock().len(), 5);
        }
    }

    #[tokio::test]
    async fn failures_map_as_through_reqwest() {
        let cfg = TransportConfig {
            request_timeout: Duration::from_millis(300),
            ..TransportConfig::default()
        };
        let (url, _) = server(Answer::Raw(
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999\r\n\r\nabc",
        ))
        .await;
        let t = Transport::new(&url, cfg).unwrap().direct_pool().unwrap();
        let e = t
            .send(outgoing(&t, Method::GET, "/pos/status", None))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(e, CallError::Decode(ref m) if m.contains("larger")),
            "{e:?}"
        );

        let (url, _) = server(Answer::Silent).await;
        let t = Transport::new(&url, cfg).unwrap().direct_pool().unwrap();
        let e = t
            .send(outgoing(&t, Method::GET, "/pos/status", None))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(e, CallError::Timeout(d) if d == cfg.request_timeout),
            "{e:?}"
        );

        // a port nobody listens on
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", free.local_addr().unwrap());
        drop(free);
        let t = Transport::new(&url, cfg).unwrap().direct_pool().unwrap();
        let e = t
            .send(outgoing(&t, Method::GET, "/pos/status", None))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(e, CallError::Network(ref m) if m.contains("connect")),
            "{e:?}"
        );
    }

    /// Answers a hostile or unusual server may give: framed as RFC 9112 says, refused with a
    /// clear error otherwise; never a panic.
    #[tokio::test]
    async fn answers_are_framed_and_hostile_ones_refused() {
        let ok: &[(&[u8], &[u8])] = &[
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4;x=y\r\nabcd\r\n2\r\nef\r\n0\r\nx-t: 1\r\n\r\n",
                b"abcdef",
            ),
            (b"HTTP/1.0 200 OK\r\n\r\nuntil the end", b"until the end"),
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok",
                b"ok",
            ),
            (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\n\r\nabc",
                b"abc",
            ),
        ];
        for (raw, want) in ok {
            let (url, _) = server(Answer::Raw(raw)).await;
            let t = Transport::new(&url, TransportConfig::default())
                .unwrap()
                .direct_pool()
                .unwrap();
            let inc = t
                .send(outgoing(&t, Method::GET, "/pos/status", None))
                .await
                .unwrap_or_else(|e| panic!("{}: {e:?}", String::from_utf8_lossy(raw)));
            assert_eq!(inc.body, *want, "{}", String::from_utf8_lossy(raw));
        }
        let many_headers: &'static [u8] = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\n{}\r\n",
                "x: y\r\n".repeat(MAX_HEADERS + 1)
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        let bad: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
            b"SMTP ready\r\n\r\n",
            b"",
            many_headers,
        ];
        for raw in bad {
            let (url, _) = server(Answer::Raw(raw)).await;
            let t = Transport::new(&url, TransportConfig::default())
                .unwrap()
                .direct_pool()
                .unwrap();
            let e = t
                .send(outgoing(&t, Method::GET, "/pos/status", None))
                .await
                .err()
                .unwrap_or_else(|| panic!("accepted {}", String::from_utf8_lossy(raw)));
            assert!(
                matches!(e, CallError::Network(ref m) if m.contains("invalid HTTP answer")),
                "{}: {e:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    /// A burst of calls on an empty pool opens at most [`MAX_CONNECTING`] connections the
    /// server has not answered on yet (a burst of 256 overflowed the sandbox's accept queue).
    #[tokio::test]
    async fn a_burst_opens_no_more_than_max_connecting_unanswered_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let peak = Arc::new(Mutex::new(0usize));
        let seen = peak.clone();
        tokio::spawn(async move {
            // hold every new connection unanswered until no new one came for a while
            let mut waiting = Vec::new();
            loop {
                let next = tokio::time::timeout(Duration::from_millis(200), listener.accept());
                match next.await {
                    Ok(Ok((sock, _))) => {
                        waiting.push(sock);
                        let mut p = seen.lock();
                        *p = (*p).max(waiting.len());
                    }
                    Ok(Err(_)) => return,
                    Err(_) => {
                        for mut sock in waiting.drain(..) {
                            tokio::spawn(async move {
                                let mut buf = vec![0u8; 4096];
                                loop {
                                    match sock.read(&mut buf).await {
                                        Ok(0) | Err(_) => return,
                                        Ok(_) => {
                                            if sock.write_all(OK).await.is_err() {
                                                return;
                                            }
                                        }
                                    }
                                }
                            });
                        }
                    }
                }
            }
        });
        let t = Transport::new(&url, TransportConfig::default())
            .unwrap()
            .direct_pool()
            .unwrap();
        let calls =
            (0..MAX_CONNECTING * 3).map(|_| t.send(outgoing(&t, Method::GET, "/pos/status", None)));
        for r in futures_util::future::join_all(calls).await {
            assert_eq!(r.unwrap().status, 200);
        }
        // exactly MAX_CONNECTING on an idle machine; fewer if a starved client paused longer
        // than the server's quiet period, never more
        let peak = *peak.lock();
        assert!(
            (1..=MAX_CONNECTING).contains(&peak),
            "{peak} unanswered connections"
        );
    }

    #[test]
    fn https_servers_stay_on_reqwest() {
        let t = Transport::new("https://api.viopay.io/v2", TransportConfig::default()).unwrap();
        assert!(!t.direct_pool().unwrap().is_direct());
    }
}
