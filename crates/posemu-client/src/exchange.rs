//! The exchange log: every HTTP exchange of a device, as the POS screen's debug side and the
//! exports show it, with secrets already redacted when an entry is recorded.
//!
//! Only a single device keeps one; a fleet passes no log and pays nothing for it.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

pub use super::redact::{
    redact_authorization, redact_header, redact_json_text, redact_token, SECRET_FIELDS,
    SECRET_HEADERS,
};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use posemu_protocol::text::{escape_control, escape_control_multiline};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

/// How many exchanges a log keeps by default.
pub const DEFAULT_CAPACITY: usize = 500;
/// Bodies longer than this are kept truncated (with their full size).
pub const MAX_BODY_CHARS: usize = 256 * 1024;
/// Decrypted terminal parameters (~200 KB) are kept as a preview of this many characters.
pub const PLAINTEXT_PREVIEW_CHARS: usize = 2048;
/// A captured text (a body or a decrypted plaintext), possibly cut short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Captured {
    pub text: String,
    /// Size of the whole original, in bytes.
    pub bytes: usize,
    /// True when `text` is only the beginning.
    pub truncated: bool,
    /// SHA-256 (lowercase hex) of the original, when it was kept only as a preview.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl Captured {
    /// `data` as text, cut at `max` characters (on a character boundary).
    pub fn new(data: &[u8], max: usize) -> Captured {
        let text = String::from_utf8_lossy(data);
        let cut = text
            .char_indices()
            .nth(max)
            .map(|(i, _)| i)
            .unwrap_or(text.len());
        let truncated = cut < text.len();
        Captured {
            text: text[..cut].to_string(),
            bytes: data.len(),
            truncated,
            sha256: None,
        }
    }

    /// A preview of a large plaintext, with its digest.
    pub fn preview(data: &[u8]) -> Captured {
        let mut c = Captured::new(data, PLAINTEXT_PREVIEW_CHARS);
        if c.truncated {
            c.sha256 = Some(posemu_protocol::crypto::sha256_hex(data));
        }
        c
    }

    /// A body, with token fields redacted: at any size (a truncated body is not JSON any
    /// more, so the redaction works on the text; see [`redact_json_text`]).
    pub fn body(data: &[u8]) -> Captured {
        let mut c = Captured::new(data, MAX_BODY_CHARS);
        if let Cow::Owned(red) = redact_json_text(&c.text) {
            c.text = red;
        }
        c
    }
}

/// One request and its answer (or the reason there was none).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exchange {
    /// Increasing within one log.
    pub id: u64,
    /// What the call was for: `bootstrap` … `activate`, `claim`, `merchant-login`, …
    pub step: &'static str,
    /// The device's wall clock when the request was sent.
    pub started_at: DateTime<Utc>,
    pub method: String,
    pub url: String,
    /// Redacted: `Authorization` keeps only its scheme and a short token prefix.
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<Captured>,
    /// The JSON sealed into the request envelope (activate; a payment's redacted: PAN masked,
    /// expiry hidden, `pin_block` as `***`).
    pub request_plaintext: Option<Captured>,
    /// The string to sign: attest's, or a payment's (spec 7.2, its last line the body hash).
    pub signing_string: Option<String>,
    /// SHA-256 (lowercase hex) of the request body as sent, for payment calls (spec 7.2).
    pub body_sha256: Option<String>,
    /// `None` when no answer came (network error, timeout).
    pub status: Option<u16>,
    /// `HTTP/1.1`, …; empty without an answer.
    pub http_version: String,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Option<Captured>,
    /// The decrypted answer envelope (config, terminal parameters, activate).
    pub response_plaintext: Option<Captured>,
    #[serde(serialize_with = "millis")]
    pub latency: Duration,
    /// From `X-Trace-Id`, else from the error body.
    pub trace_id: Option<String>,
    /// Why the call failed, if it did (including a 2xx the device could not use).
    pub error: Option<String>,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl Exchange {
    /// The URL's path and query, as the exchange list shows it.
    pub fn path(&self) -> &str {
        let after_scheme = self.url.find("://").map_or(0, |i| i + 3);
        self.url[after_scheme..]
            .find('/')
            .map_or("/", |i| &self.url[after_scheme + i..])
    }

    pub fn request_header(&self, name: &str) -> Option<&str> {
        find_header(&self.request_headers, name)
    }

    pub fn response_header(&self, name: &str) -> Option<&str> {
        find_header(&self.response_headers, name)
    }

    /// `200 OK`, `429 Too Many Requests`, or the error for exchanges without an answer.
    pub fn status_line(&self) -> String {
        match self.status {
            Some(s) => format!("{s} {}", reason_phrase(s)),
            None => self.error.clone().unwrap_or_else(|| "no answer".into()),
        }
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The standard reason phrase of a status, or `""`.
pub fn reason_phrase(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// Pretty-printed JSON, or `None` if `text` is not JSON.
pub fn pretty_json(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    serde_json::to_string_pretty(&v).ok()
}

/// Request headers as logged: `Authorization` redacted, the rest as sent.
impl Exchange {
    /// Control characters in everything a server (or a flag) chose are escaped before the
    /// entry is kept, so the debug view and exports show them as text
    /// ([`escape_control`]; bodies keep their line feeds and tabs).
    fn escape_for_display(&mut self) {
        fn one(s: &mut String) {
            if let Cow::Owned(e) = escape_control(s) {
                *s = e;
            }
        }
        fn body(c: &mut Option<Captured>) {
            if let Some(c) = c {
                if let Cow::Owned(e) = escape_control_multiline(&c.text) {
                    c.text = e;
                }
            }
        }
        one(&mut self.url);
        one(&mut self.http_version);
        for (n, v) in self
            .request_headers
            .iter_mut()
            .chain(self.response_headers.iter_mut())
        {
            one(n);
            one(v);
        }
        body(&mut self.request_body);
        body(&mut self.response_body);
        body(&mut self.response_plaintext);
        self.trace_id.iter_mut().for_each(one);
        self.error.iter_mut().for_each(one);
    }

    /// The exchange of a request about to be sent: no answer yet.
    pub(crate) fn sent(
        step: &'static str,
        now: DateTime<Utc>,
        out: &super::transport::Outgoing,
    ) -> Exchange {
        Exchange {
            id: 0,
            step,
            started_at: now,
            method: out.method.to_string(),
            url: out.url.clone(),
            request_headers: logged_headers(&out.headers),
            request_body: out.body.as_deref().map(Captured::body),
            request_plaintext: None,
            signing_string: None,
            body_sha256: None,
            status: None,
            http_version: String::new(),
            response_headers: Vec::new(),
            response_body: None,
            response_plaintext: None,
            latency: Duration::ZERO,
            trace_id: None,
            error: None,
        }
    }
}

/// Headers (of a request or an answer) as logged: credentials redacted ([`redact_header`]).
pub(crate) fn logged_headers(h: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(n, v)| {
            let v = String::from_utf8_lossy(v.as_bytes());
            (canonical_name(n.as_str()), redact_header(n.as_str(), &v))
        })
        .collect()
}

/// `x-device-id` → `X-Device-Id` (the spec's spelling; HTTP/1 names are case-insensitive).
pub(crate) fn canonical_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '-';
    }
    out
}

struct Inner {
    ring: VecDeque<Arc<Exchange>>,
    capacity: usize,
    next_id: u64,
    subscribers: Vec<mpsc::UnboundedSender<Arc<Exchange>>>,
}

/// A bounded ring of the latest exchanges, shared (cloning shares it) and observable.
#[derive(Clone)]
pub struct ExchangeLog {
    inner: Arc<Mutex<Inner>>,
}

impl Default for ExchangeLog {
    fn default() -> Self {
        ExchangeLog::new(DEFAULT_CAPACITY)
    }
}

impl std::fmt::Debug for ExchangeLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.inner.lock();
        f.debug_struct("ExchangeLog")
            .field("len", &i.ring.len())
            .field("capacity", &i.capacity)
            .finish()
    }
}

impl ExchangeLog {
    /// A log keeping the last `capacity` exchanges (at least 1).
    pub fn new(capacity: usize) -> ExchangeLog {
        let capacity = capacity.max(1);
        ExchangeLog {
            inner: Arc::new(Mutex::new(Inner {
                ring: VecDeque::with_capacity(capacity.min(64)),
                capacity,
                next_id: 1,
                subscribers: Vec::new(),
            })),
        }
    }

    /// Every exchange recorded from now on is also sent here (the TUI's message loop).
    /// A dropped receiver is forgotten at the next record.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Arc<Exchange>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.lock().subscribers.push(tx);
        rx
    }

    /// Stores `e` (giving it the next id), drops the oldest beyond capacity, notifies.
    pub fn record(&self, mut e: Exchange) -> Arc<Exchange> {
        e.escape_for_display();
        let mut i = self.inner.lock();
        e.id = i.next_id;
        i.next_id += 1;
        let e = Arc::new(e);
        if i.ring.len() == i.capacity {
            i.ring.pop_front();
        }
        i.ring.push_back(e.clone());
        i.subscribers.retain(|s| s.send(e.clone()).is_ok());
        e
    }

    /// The kept exchanges, oldest first.
    pub fn entries(&self) -> Vec<Arc<Exchange>> {
        self.inner.lock().ring.iter().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<Arc<Exchange>> {
        self.inner.lock().ring.iter().find(|e| e.id == id).cloned()
    }

    pub fn last(&self) -> Option<Arc<Exchange>> {
        self.inner.lock().ring.back().cloned()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.inner.lock().capacity
    }

    pub fn clear(&self) {
        self.inner.lock().ring.clear();
    }
}

/// A plain `GET /pos/status` exchange for tests.
#[cfg(test)]
pub(crate) fn sample_exchange(step: &'static str) -> Exchange {
    Exchange {
        id: 0,
        step,
        started_at: DateTime::from_timestamp(1_765_635_930, 0).unwrap(),
        method: "GET".into(),
        url: "http://127.0.0.1:1/pos/status".into(),
        request_headers: vec![("X-Device-Id".into(), "POS-8F3A2C91".into())],
        request_body: None,
        request_plaintext: None,
        signing_string: None,
        body_sha256: None,
        status: Some(200),
        http_version: "HTTP/1.1".into(),
        response_headers: vec![],
        response_body: Some(Captured::body(b"{}")),
        response_plaintext: None,
        latency: Duration::from_millis(3),
        trace_id: None,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_exchanges_show_server_text_escaped() {
        let mut e = sample_exchange("status");
        e.response_headers = vec![("X-Trace-Id".into(), "\x1b[2J".into())];
        e.trace_id = Some("\x1b]52;c;aGk=\x07".into());
        e.error = Some("HTTP 404 \u{9b}2J".into());
        e.response_body = Some(Captured::body(b"{\n \"m\": \"\x1b[31m\"\n}"));
        let log = ExchangeLog::new(4);
        let e = log.record(e);
        let texts = [
            e.response_headers[0].1.as_str(),
            e.trace_id.as_deref().unwrap(),
            e.error.as_deref().unwrap(),
        ];
        for t in texts {
            assert!(!t.chars().any(char::is_control), "{t:?}");
        }
        let body = &e.response_body.as_ref().unwrap().text;
        assert_eq!(body, "{\n \"m\": \"\\e[31m\"\n}");
    }

    #[test]
    fn tokens_keep_only_a_prefix() {
        assert_eq!(redact_token("att_f83kLmP9s2abcdefghijklmn"), "att_f83k…");
        assert_eq!(redact_token("short"), "…");
        assert_eq!(
            redact_authorization("Attestation att_f83kLmP9s2abcdefghijklmn"),
            "Attestation att_f83k…"
        );
        assert_eq!(
            redact_authorization("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig"),
            "Bearer eyJhbGci…"
        );
    }

    #[test]
    fn json_bodies_lose_their_secrets_only() {
        let t = r#"{"status":"attested","attestation_token":"att_f83kLmP9s2abcdefghijklmn","expires_in_sec":300}"#;
        let r = redact_json_text(t);
        assert!(!r.contains("LmP9s2"), "{r}");
        assert!(r.contains("att_f83k…") && r.contains("300"));
        let nested = r#"[{"a":{"client_secret":"demo-secret-1234567"}}]"#;
        assert!(!redact_json_text(nested).contains("secret-1234567"));
        let plain = r#"{"device_status":"inactive"}"#;
        assert!(matches!(redact_json_text(plain), Cow::Borrowed(_)));
        assert!(matches!(
            redact_json_text("not json access_token"),
            Cow::Borrowed(_)
        ));
        // cut short mid-value, escaped quotes, white space around the colon
        let cut = r#"{"pad":"x","access_token" :  "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0"#;
        assert_eq!(
            redact_json_text(cut),
            r#"{"pad":"x","access_token" :  "eyJhbGci…"#
        );
        let esc = r#"{"client_secret":"ab\"cdefghijklmnop","n":1}"#;
        assert_eq!(
            redact_json_text(esc),
            r#"{"client_secret":"ab\"cdef…","n":1}"#
        );
    }

    #[test]
    fn bodies_of_any_size_lose_their_secrets() {
        let token = "eyJhbGciOiJIUzI1NiJ9.SECRETSECRETSECRET";
        let big = format!(
            r#"{{"access_token":"{token}","pad":"{}"}}"#,
            "x".repeat(MAX_BODY_CHARS * 2)
        );
        let c = Captured::body(big.as_bytes());
        assert!(c.truncated);
        assert!(!c.text.contains("SECRETSECRET"), "{}", &c.text[..80]);
    }

    #[test]
    fn credential_headers_are_redacted() {
        assert_eq!(
            redact_header("Set-Cookie", "sid=abcdef123456; Path=/; HttpOnly"),
            "sid=…; Path=/; HttpOnly"
        );
        assert_eq!(redact_header("cookie", "a=1; b=secret"), "a=…; b=…");
        assert_eq!(
            redact_header("Authorization", "Basic YWxpY2U6czNjcmV0cHc="),
            "Basic YWxpY2U6…"
        );
        assert_eq!(redact_header("X-Trace-Id", "abc"), "abc");
    }

    #[test]
    fn captures_truncate_on_char_boundaries() {
        let c = Captured::new("ééé".as_bytes(), 2);
        assert_eq!(c.text, "éé");
        assert!(c.truncated);
        assert_eq!(c.bytes, 6);
        let big = vec![b'x'; 10_000];
        let p = Captured::preview(&big);
        assert_eq!(p.text.len(), PLAINTEXT_PREVIEW_CHARS);
        assert_eq!(p.sha256.as_deref().map(str::len), Some(64));
        assert!(Captured::preview(b"{}").sha256.is_none());
    }

    #[test]
    fn header_names_are_spelled_as_in_the_spec() {
        assert_eq!(canonical_name("x-device-id"), "X-Device-Id");
        assert_eq!(canonical_name("user-agent"), "User-Agent");
    }

    #[test]
    fn paths_and_status_lines() {
        let mut e = sample_exchange("status");
        assert_eq!(e.path(), "/pos/status");
        assert_eq!(e.status_line(), "200 OK");
        e.url = "http://h".into();
        assert_eq!(e.path(), "/");
        e.status = None;
        e.error = Some("request timed out after 200ms".into());
        assert_eq!(e.status_line(), "request timed out after 200ms");
    }

    #[tokio::test]
    async fn ring_is_bounded_numbered_and_observable() {
        let log = ExchangeLog::new(3);
        let mut rx = log.subscribe();
        let dropped = log.subscribe();
        drop(dropped);
        for _ in 0..5 {
            log.record(sample_exchange("status"));
        }
        let ids: Vec<u64> = log.entries().iter().map(|e| e.id).collect();
        assert_eq!(ids, [3, 4, 5]);
        assert_eq!(log.last().unwrap().id, 5);
        assert!(log.get(1).is_none() && log.get(4).is_some());
        for want in 1..=5 {
            assert_eq!(rx.recv().await.unwrap().id, want);
        }
        assert_eq!(log.inner.lock().subscribers.len(), 1);
        log.clear();
        assert!(log.is_empty());
        assert_eq!(log.capacity(), 3);
    }
}
