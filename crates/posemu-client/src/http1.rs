//! A lean HTTP/1.1 connection pool for plain `http://` servers, straight on hyper's connection
//! API: what a fleet's workers send through (see [`Transport::direct_pool`]).
//!
//! A profile of a fleet polling through reqwest spent about a third of its user time in
//! reqwest and hyper-util around hyper: the URL parsed again on every request (with IDNA),
//! the pool's checkout by key, boxed pending futures and their timeouts. This pool keeps only
//! hyper's own HTTP/1.1 machine: idle connections on a stack, the request's origin-form path
//! and `Host` computed once. The request itself (method, headers, body) is the one the caller
//! built, so devices send exactly what they send through reqwest; the two headers reqwest adds
//! by itself are added here the same way (`accept: */*`, `host`).
//!
//! [`Transport::direct_pool`]: crate::Transport::direct_pool

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, HOST};
use reqwest::Method;

use posemu_protocol::api::CallError;

use crate::transport::{error_chain, Incoming, MAX_RESPONSE_BYTES};

type Sender = SendRequest<Full<Bytes>>;

/// Connections to one `http://` server.
pub(crate) struct Pool {
    /// `host:port` to connect to.
    addr: String,
    /// The `Host` header (`host[:port]`, the port only when not 80), as reqwest sends it.
    host: HeaderValue,
    /// The base URL's path (`/v2`), without a trailing slash; requests go to `{prefix}{path}`.
    prefix: String,
    idle: Mutex<Vec<Sender>>,
    max_idle: usize,
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
        let target = if self.prefix.is_empty() {
            Uri::try_from(path)
        } else {
            Uri::try_from(format!("{}{path}", self.prefix))
        }
        .map_err(|e| CallError::Network(format!("request path {path:?}: {e}")))?;
        let mut req = hyper::Request::new(Full::new(Bytes::from(body.unwrap_or_default())));
        *req.method_mut() = method;
        *req.uri_mut() = target;
        *req.headers_mut() = headers;
        let h = req.headers_mut();
        // what reqwest adds to every request (its default headers, then hyper-util's Host)
        if !h.contains_key(ACCEPT) {
            h.insert(ACCEPT, HeaderValue::from_static("*/*"));
        }
        if !h.contains_key(HOST) {
            h.insert(HOST, self.host.clone());
        }

        let (mut sender, reused) = self.checkout(connect_timeout).await?;
        let resp = match sender.try_send_request(req).await {
            Ok(r) => r,
            Err(mut e) => match e.take_message() {
                // an idle connection the server had closed: the request never left, so it
                // goes again on a new connection (as hyper-util's pool does)
                Some(req) if reused => {
                    sender = self.connect(connect_timeout).await?;
                    sender.send_request(req).await.map_err(network)?
                }
                _ => return Err(network(e.into_error())),
            },
        };
        let (parts, mut incoming) = resp.into_parts();
        let expected = parts
            .headers
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = Vec::with_capacity(expected.min(MAX_RESPONSE_BYTES));
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(network)?;
            if let Ok(data) = frame.into_data() {
                if body.len().saturating_add(data.len()) > MAX_RESPONSE_BYTES {
                    return Err(CallError::Decode(format!(
                        "answer is larger than {MAX_RESPONSE_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&data);
            }
        }
        drop(incoming);
        self.checkin(sender);
        Ok(Incoming {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        })
    }

    /// An idle connection ready for a request (true), or a new one (false).
    async fn checkout(&self, connect_timeout: Duration) -> Result<(Sender, bool), CallError> {
        loop {
            let Some(mut s) = self.idle.lock().pop() else {
                return Ok((self.connect(connect_timeout).await?, false));
            };
            if s.is_closed() {
                continue;
            }
            // ready at once unless the connection is still finishing its last answer
            if s.ready().await.is_ok() {
                return Ok((s, true));
            }
        }
    }

    fn checkin(&self, s: Sender) {
        if s.is_closed() {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle {
            idle.push(s);
        }
    }

    async fn connect(&self, connect_timeout: Duration) -> Result<Sender, CallError> {
        let tcp =
            tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(&*self.addr))
                .await
                .map_err(|_| CallError::Timeout(connect_timeout))?
                .map_err(|e| {
                    CallError::Network(format!(
                        "error sending request to {}: tcp connect error: {e}",
                        self.addr
                    ))
                })?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await.map_err(network)?;
        // the connection runs on the caller's runtime (a fleet worker's own thread)
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

fn network(e: hyper::Error) -> CallError {
    CallError::Network(error_chain(&e))
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
        /// A `Content-Length` past the transport's limit.
        Huge,
        /// Nothing, ever.
        Silent,
    }

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
                            Answer::Ok | Answer::OkThenClose => {
                                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n{\"state\":\"x\"}"
                            }
                            Answer::Huge => b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999\r\n\r\nabc",
                            Answer::Silent => {
                                std::future::pending::<()>().await;
                                b""
                            }
                        };
                        if sock.write_all(reply).await.is_err() {
                            return;
                        }
                        if matches!(answer, Answer::OkThenClose) {
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
        let (url, _) = server(Answer::Huge).await;
        let t = Transport::new(&url, cfg).unwrap().direct_pool().unwrap();
        let e = t
            .send(outgoing(&t, Method::GET, "/pos/status", None))
            .await
            .err()
            .unwrap();
        // a lying Content-Length is cut off at the limit or when the server stops
        assert!(
            matches!(
                e,
                CallError::Decode(_) | CallError::Network(_) | CallError::Timeout(_)
            ),
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

    #[test]
    fn https_servers_stay_on_reqwest() {
        let t = Transport::new("https://api.viopay.io/v2", TransportConfig::default()).unwrap();
        assert!(!t.direct_pool().unwrap().is_direct());
    }
}
