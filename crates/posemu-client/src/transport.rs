//! The HTTP transport: one reqwest client (connection pool), the server's base URL, timeouts,
//! and the mapping of every failure to a [`CallError`].

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Method, StatusCode, Version};

use posemu_protocol::api::CallError;
use posemu_protocol::error::ErrorEnvelope;
use posemu_protocol::headers::RETRY_AFTER;
use posemu_protocol::text::escape_control;

/// Answers larger than this are refused (the biggest real answer, terminal parameters, is
/// ~40 KB of hex); it bounds what a broken or hostile server can make a device buffer.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportConfig {
    /// Time allowed to open a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, from sending to the last byte of the answer.
    pub request_timeout: Duration,
    /// Idle keep-alive connections are closed after this: 20 s by default, under the idle
    /// timeout of the sandbox (30 s) and of common servers (nginx 75 s), so that the device lets
    /// a connection go before a server may close it under a request sent at that very moment.
    pub pool_idle_timeout: Duration,
    /// At most this many idle connections are kept per host.
    pub pool_max_idle_per_host: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            pool_idle_timeout: Duration::from_secs(20),
            pool_max_idle_per_host: usize::MAX,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("server URL {url:?} is not valid: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// A connection pool and a server. Cloning is cheap and shares the pool, so one `Transport`
/// serves a whole fleet; [`Transport::separate_pool`] gives a device its own connections.
#[derive(Clone)]
pub struct Transport {
    backend: Backend,
    /// Without a trailing slash, so `{base}{path}` is the URL. Never with credentials.
    base: std::sync::Arc<str>,
    /// `Authorization: Basic …` from the URL's userinfo, if it had any (sensitive).
    basic_auth: Option<HeaderValue>,
    config: TransportConfig,
}

/// Who carries the requests.
#[derive(Clone)]
enum Backend {
    /// reqwest: proxies, TLS, everything a single device may meet.
    Reqwest(reqwest::Client),
    /// hyper's HTTP/1.1 machine alone, for a fleet against a plain `http://` server
    /// ([`Transport::direct_pool`]).
    Direct(Arc<crate::http1::Pool>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("base_url", &self.base)
            .field("config", &self.config)
            .finish()
    }
}

/// `Basic base64(user:password)` of a URL's userinfo (percent-decoded), marked sensitive.
fn basic_auth(url: &reqwest::Url) -> Option<HeaderValue> {
    use base64::Engine;
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |s: &str| {
        let bytes: Vec<u8> = percent_decode(s);
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let pair = format!(
        "{}:{}",
        decode(url.username()),
        decode(url.password().unwrap_or(""))
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut v = HeaderValue::from_str(&format!("Basic {b64}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// TLS sessions each pool remembers for resumption.
const TLS_SESSIONS_PER_POOL: usize = 8;

/// One TLS configuration (roots, cipher suites) for every pool: reqwest building its own costs
/// ~25 KB per client, which a fleet with a pool per device would pay 100,000 times.
fn shared_tls() -> Result<&'static rustls::ClientConfig, TransportError> {
    static TLS: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();
    TLS.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut c = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // This reqwest speaks HTTP/1.1 only (no `http2` feature).
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(c)
    })
    .as_ref()
    .map_err(|e| TransportError::Build(format!("TLS configuration: {e}")))
}

fn build_client(
    config: &TransportConfig,
    loopback: bool,
) -> Result<reqwest::Client, TransportError> {
    let mut tls = shared_tls()?.clone();
    // Each pool resumes only its own TLS sessions, as separate devices would.
    tls.resumption = rustls::client::Resumption::in_memory_sessions(TLS_SESSIONS_PER_POOL);
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout)
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .tcp_nodelay(true)
        // A device reports what the server said; a redirect is an answer to show, not follow.
        .redirect(reqwest::redirect::Policy::none());
    if loopback {
        // The embedded sandbox must never be reached through an HTTP(S)_PROXY.
        b = b.no_proxy();
    }
    b.build()
        .map_err(|e| TransportError::Build(error_chain(&e)))
}

impl Transport {
    /// A transport to `base_url` (`http://` or `https://`, optionally with a path prefix).
    pub fn new(base_url: &str, config: TransportConfig) -> Result<Transport, TransportError> {
        let bad = |reason: String| TransportError::Url {
            url: posemu_protocol::text::strip_userinfo(base_url).into_owned(),
            reason,
        };
        let url = reqwest::Url::parse(base_url.trim()).map_err(|e| bad(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(format!(
                "scheme is {:?}, expected http or https",
                url.scheme()
            )));
        }
        if url.host().is_none() {
            return Err(bad("it has no host".into()));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("it may not have a query or fragment".into()));
        }
        let client = Backend::Reqwest(build_client(&config, is_loopback(&url))?);
        let basic_auth = basic_auth(&url);
        let mut url = url;
        // the credentials travel as basic auth only: never in a URL shown, logged or saved
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let base = url.as_str().trim_end_matches('/').into();
        Ok(Transport {
            backend: client,
            base,
            basic_auth,
            config,
        })
    }

    fn parsed_base(&self) -> Result<reqwest::Url, TransportError> {
        reqwest::Url::parse(&self.base).map_err(|e| TransportError::Url {
            url: self.base.to_string(),
            reason: e.to_string(),
        })
    }

    /// The same server and settings over a new, unshared connection pool (a fleet's
    /// `--connection-per-device`), of the same kind as this one's.
    pub fn separate_pool(&self) -> Result<Transport, TransportError> {
        if let Backend::Direct(_) = self.backend {
            return self.direct_pool();
        }
        let url = self.parsed_base()?;
        Ok(Transport {
            backend: Backend::Reqwest(build_client(&self.config, is_loopback(&url))?),
            base: self.base.clone(),
            basic_auth: self.basic_auth.clone(),
            config: self.config,
        })
    }

    /// A new, unshared connection pool that sends straight through hyper's HTTP/1.1 machine
    /// (`http1.rs`) when the server is plain `http://` and no proxy applies to it (a loopback
    /// server, or no `HTTP_PROXY`/`ALL_PROXY` set); otherwise a reqwest pool as
    /// [`Transport::separate_pool`]. For a fleet: the same requests at a fraction of reqwest's
    /// CPU per request. Its connections live on the runtime of the task that opens them.
    pub fn direct_pool(&self) -> Result<Transport, TransportError> {
        let url = self.parsed_base()?;
        let proxied = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        let pool = (is_loopback(&url) || !proxied)
            .then(|| crate::http1::Pool::new(&url, self.config.pool_max_idle_per_host))
            .flatten();
        let backend = match pool {
            Some(p) => Backend::Direct(Arc::new(p)),
            None => Backend::Reqwest(build_client(&self.config, is_loopback(&url))?),
        };
        Ok(Transport {
            backend,
            base: self.base.clone(),
            basic_auth: self.basic_auth.clone(),
            config: self.config,
        })
    }

    /// Whether this pool sends through [`Transport::direct_pool`]'s lean path.
    pub fn is_direct(&self) -> bool {
        matches!(self.backend, Backend::Direct(_))
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn config(&self) -> &TransportConfig {
        &self.config
    }

    /// `{base}{path}`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        let mut s = String::with_capacity(self.base.len() + path.len());
        s.push_str(&self.base);
        s.push_str(path);
        s
    }

    /// Sends one request and reads the whole answer (any status).
    pub(crate) async fn send(&self, out: Outgoing) -> Result<Incoming, CallError> {
        let timeout = out.timeout.unwrap_or(self.config.request_timeout);
        let mut headers = out.headers;
        if let Some(auth) = &self.basic_auth {
            // the device's own Authorization (attestation, merchant bearer) comes first
            if !headers.contains_key(AUTHORIZATION) {
                headers.insert(AUTHORIZATION, auth.clone());
            }
        }
        let client = match &self.backend {
            Backend::Reqwest(c) => c,
            Backend::Direct(pool) => {
                // `url()` built it: the base, then the path
                let Some(path) = out.url.strip_prefix(&*self.base) else {
                    return Err(CallError::Network(format!(
                        "{} is not on the server {}",
                        posemu_protocol::text::strip_userinfo(&out.url),
                        self.base
                    )));
                };
                let sent = pool.send(
                    out.method,
                    path,
                    headers,
                    out.body,
                    self.config.connect_timeout,
                );
                return tokio::time::timeout(timeout, sent)
                    .await
                    .map_err(|_| CallError::Timeout(timeout))?;
            }
        };
        let mut req = client
            .request(out.method, out.url)
            .headers(headers)
            .timeout(timeout);
        if let Some(body) = out.body {
            req = req.body(body);
        }
        let map = |e: reqwest::Error| map_error(e, timeout, self.config.connect_timeout);
        let mut resp = req.send().await.map_err(map)?;
        let status = resp.status();
        let version = resp.version();
        let mut body = Vec::with_capacity(
            resp.content_length()
                .map_or(0, |n| n.min(MAX_RESPONSE_BYTES as u64) as usize),
        );
        while let Some(chunk) = resp.chunk().await.map_err(map)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(CallError::Decode(format!(
                    "answer is larger than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Incoming {
            status,
            version,
            headers: std::mem::take(resp.headers_mut()),
            body,
        })
    }
}

/// A request about to be sent.
pub(crate) struct Outgoing {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
    /// Overrides the transport's request timeout.
    pub timeout: Option<Duration>,
}

/// A complete answer.
pub(crate) struct Incoming {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Incoming {
    /// The answer as a [`CallError::Http`], for non-2xx statuses.
    pub fn to_http_error(&self, now: SystemTime) -> CallError {
        let retry_after = self
            .headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                // An HTTP date is measured against the server's own `Date` when it sent one:
                // the device's clock may be off (that is what `server_time` is for).
                let reference = self
                    .headers
                    .get(reqwest::header::DATE)
                    .and_then(|d| d.to_str().ok())
                    .and_then(|d| httpdate::parse_http_date(d).ok())
                    .unwrap_or(now);
                parse_retry_after(v, reference)
            });
        CallError::Http {
            status: self.status.as_u16(),
            retry_after,
            // server text, escaped at the source: every screen and log shows it as text
            error: serde_json::from_slice::<ErrorEnvelope>(&self.body)
                .ok()
                .map(|e| {
                    let mut b = e.error;
                    for s in [&mut b.code, &mut b.message, &mut b.trace_id] {
                        if let std::borrow::Cow::Owned(x) = escape_control(s) {
                            *s = x;
                        }
                    }
                    b
                }),
        }
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3); a date in the past
/// means "now". Unparseable values are ignored.
pub fn parse_retry_after(value: &str, reference: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(reference).unwrap_or(Duration::ZERO))
}

/// An error and its causes, `: `-separated (reqwest's own message alone says little).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

fn map_error(e: reqwest::Error, timeout: Duration, connect_timeout: Duration) -> CallError {
    if e.is_timeout() {
        CallError::Timeout(if e.is_connect() {
            connect_timeout
        } else {
            timeout
        })
    } else {
        CallError::Network(error_chain(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_normalised() {
        let t = Transport::new("http://127.0.0.1:8765/", TransportConfig::default()).unwrap();
        assert_eq!(t.url("/pos/status"), "http://127.0.0.1:8765/pos/status");
        let t = Transport::new("https://api.viopay.io/v2", TransportConfig::default()).unwrap();
        assert_eq!(t.url("/pos/status"), "https://api.viopay.io/v2/pos/status");
        for bad in ["ftp://x", "not a url", "http://x/?a=1", "unix:/tmp/s"] {
            let e = Transport::new(bad, TransportConfig::default()).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
        let t2 = t.separate_pool().unwrap();
        assert_eq!(t2.base_url(), t.base_url());
    }

    #[test]
    fn credentials_in_the_url_become_basic_auth_and_leave_the_url() {
        let t = Transport::new(
            "http://alice:s3cret%40pw@127.0.0.1:9/",
            TransportConfig::default(),
        )
        .unwrap();
        assert_eq!(t.base_url(), "http://127.0.0.1:9");
        assert!(!format!("{t:?}").contains("s3cret"));
        let auth = t.basic_auth.as_ref().unwrap();
        assert!(auth.is_sensitive());
        // alice:s3cret@pw
        assert_eq!(auth.to_str().unwrap(), "Basic YWxpY2U6czNjcmV0QHB3");
        let e = Transport::new("ftp://bob:hunter2@x", TransportConfig::default()).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_765_635_930);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(42));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(42))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(42));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn http_errors_parse_the_envelope_and_use_the_servers_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_765_635_930);
        let server_date = now + Duration::from_secs(3600); // device clock an hour behind
        let mut headers = HeaderMap::new();
        headers.insert(
            RETRY_AFTER,
            httpdate::fmt_http_date(server_date + Duration::from_secs(9))
                .parse()
                .unwrap(),
        );
        headers.insert(
            reqwest::header::DATE,
            httpdate::fmt_http_date(server_date).parse().unwrap(),
        );
        let body = ErrorEnvelope::new(429, "Too many requests", "ab".repeat(16));
        let inc = Incoming {
            status: StatusCode::TOO_MANY_REQUESTS,
            version: Version::HTTP_11,
            headers,
            body: serde_json::to_vec(&body).unwrap(),
        };
        match inc.to_http_error(now) {
            CallError::Http {
                status,
                retry_after,
                error,
            } => {
                assert_eq!(status, 429);
                assert_eq!(retry_after, Some(Duration::from_secs(9)));
                assert_eq!(error.unwrap().code, "4029");
            }
            other => panic!("{other:?}"),
        }
        let garbage = Incoming {
            status: StatusCode::BAD_GATEWAY,
            version: Version::HTTP_11,
            headers: HeaderMap::new(),
            body: b"<html>bad gateway</html>".to_vec(),
        };
        assert_eq!(
            garbage.to_http_error(now),
            CallError::Http {
                status: 502,
                retry_after: None,
                error: None
            }
        );
    }
}
