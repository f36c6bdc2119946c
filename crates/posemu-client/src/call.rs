//! One device call: build the request for an [`ApiCall`] (headers, signature, envelope), send
//! it, turn the answer into an [`ApiAnswer`] or a [`CallError`], and record the exchange.

use std::future::Future;
use std::time::{Instant, SystemTime};

use chrono::{DateTime, Utc};
use rand::distr::{Alphanumeric, Distribution};
use rand::RngCore;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde::de::DeserializeOwned;

use super::device_faults::{DeviceFaults, FaultHeader, REUSED_NONCE};
use super::exchange::{logged_headers, Captured, Exchange, ExchangeLog};
use super::identity::DeviceIdentity;
use super::transport::{Incoming, Outgoing, Transport};
use posemu_protocol::api::{ApiAnswer, ApiCall, CallError, Secret};
use posemu_protocol::attest::{sign_v1, string_to_sign};
use posemu_protocol::clock::rfc3339;
use posemu_protocol::crypto::{sha256_hex, Key};
use posemu_protocol::envelope::{open, seal_single, Envelope};
use posemu_protocol::error::ErrorEnvelope;
use posemu_protocol::headers::{ATTESTATION_SCHEME, CLIENT_TYPE_POS, X_TRACE_ID};
use posemu_protocol::wire::paths;

/// Length of the nonces the device draws (the spec allows 12–64 alphanumerics).
pub const NONCE_LEN: usize = 24;

/// A fresh alphanumeric nonce.
pub fn new_nonce(rng: &mut dyn RngCore) -> String {
    Alphanumeric
        .sample_iter(rng)
        .take(NONCE_LEN)
        .map(char::from)
        .collect()
}

/// What answer a call expects, with the key to open it: all the future needs of the call.
enum Expect {
    Bootstrap,
    PairingCode,
    Status,
    Attest,
    Keys,
    Config(Key),
    TerminalParameters(Key),
    Activate(Key),
}

impl Expect {
    fn of(call: &ApiCall) -> Expect {
        match call {
            ApiCall::Bootstrap => Expect::Bootstrap,
            ApiCall::PairingCode => Expect::PairingCode,
            ApiCall::Status => Expect::Status,
            ApiCall::Attest { .. } => Expect::Attest,
            ApiCall::Keys { .. } => Expect::Keys,
            ApiCall::Config { msk, .. } => Expect::Config(*msk.expose()),
            ApiCall::TerminalParameters { msk, .. } => Expect::TerminalParameters(*msk.expose()),
            ApiCall::Activate { msk, .. } => Expect::Activate(*msk.expose()),
        }
    }
}

/// A request ready to go, with what the log shows about how it was made.
struct Prepared {
    step: &'static str,
    expect: Expect,
    out: Outgoing,
    signing_string: Option<String>,
    request_plaintext: Option<Vec<u8>>,
}

pub(crate) fn put(
    headers: &mut HeaderMap,
    faults: &DeviceFaults,
    which: FaultHeader,
    name: HeaderName,
    value: HeaderValue,
) {
    if faults.drop_headers.contains(which) {
        return;
    }
    let value = if faults.malform_headers.contains(which) {
        HeaderValue::from_static(which.malformed_value())
    } else {
        value
    };
    headers.insert(name, value);
}

fn device_headers(id: &DeviceIdentity, faults: &DeviceFaults) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(8);
    put(
        &mut h,
        faults,
        FaultHeader::DeviceId,
        HeaderName::from_static("x-device-id"),
        id.device_id_header().clone(),
    );
    terminal_headers(&mut h, id, faults);
    h
}

/// The headers every device request carries, activation and payments alike: `User-Agent`
/// and `X-Client-Type` (spec 3 and 7.2), each subject to the device's header faults.
pub(crate) fn terminal_headers(h: &mut HeaderMap, id: &DeviceIdentity, faults: &DeviceFaults) {
    put(
        h,
        faults,
        FaultHeader::UserAgent,
        reqwest::header::USER_AGENT,
        id.user_agent_header().clone(),
    );
    put(
        h,
        faults,
        FaultHeader::ClientType,
        HeaderName::from_static("x-client-type"),
        HeaderValue::from_static(CLIENT_TYPE_POS),
    );
}

fn authorize(h: &mut HeaderMap, faults: &DeviceFaults, token: &Secret<String>) {
    let mut value = format!("{ATTESTATION_SCHEME} {}", token.expose())
        .parse::<HeaderValue>()
        // A token the server sent that cannot be a header value: send the scheme alone, so the
        // server answers its documented 401 instead of the device failing locally.
        .unwrap_or_else(|_| HeaderValue::from_static(ATTESTATION_SCHEME));
    value.set_sensitive(true);
    put(
        h,
        faults,
        FaultHeader::Authorization,
        reqwest::header::AUTHORIZATION,
        value,
    );
}

/// The `X-Timestamp` a device sends: its wall clock, corrected by the offset it learned, plus
/// any injected skew.
pub(crate) fn attest_timestamp(
    now: DateTime<Utc>,
    offset_ms: i64,
    faults: &DeviceFaults,
) -> String {
    let shift = chrono::Duration::milliseconds(offset_ms.saturating_add(faults.clock_skew_ms));
    rfc3339(now.checked_add_signed(shift).unwrap_or(now))
}

fn prepare(
    transport: &Transport,
    id: &DeviceIdentity,
    faults: &DeviceFaults,
    call: &ApiCall,
    now: DateTime<Utc>,
    rng: &mut dyn RngCore,
    logging: bool,
) -> Prepared {
    let mut headers = device_headers(id, faults);
    let mut signing_string = None;
    let mut body = None;
    let mut request_plaintext = None;
    let (method, path) = match call {
        ApiCall::Bootstrap => (Method::POST, paths::BOOTSTRAP),
        ApiCall::PairingCode => (Method::POST, paths::PAIRING_CODE),
        ApiCall::Status => (Method::GET, paths::STATUS),
        ApiCall::Attest { clock_offset_ms } => {
            let timestamp = attest_timestamp(now, *clock_offset_ms, faults);
            let nonce = if faults.reuse_nonce {
                REUSED_NONCE.to_string()
            } else {
                new_nonce(rng)
            };
            let s = string_to_sign(id.device_id(), id.key_id(), &timestamp, &nonce);
            let signature = if faults.wrong_secret {
                // Any other key will do; flipping bits keeps it deterministic.
                let wrong: Key = id.identity_secret().expose().map(|b| b ^ 0x5A);
                sign_v1(&wrong, &s)
            } else {
                sign_v1(id.identity_secret().expose(), &s)
            };
            let hv = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
            let pairs = [
                (FaultHeader::KeyId, "x-key-id", id.key_id_header().clone()),
                (FaultHeader::Timestamp, "x-timestamp", hv(&timestamp)),
                (FaultHeader::Nonce, "x-nonce", hv(&nonce)),
                (FaultHeader::Signature, "x-signature", hv(&signature)),
            ];
            for (which, name, value) in pairs {
                put(
                    &mut headers,
                    faults,
                    which,
                    HeaderName::from_static(name),
                    value,
                );
            }
            if logging {
                signing_string = Some(s);
            }
            (Method::POST, paths::ATTEST)
        }
        ApiCall::Keys { token } => {
            authorize(&mut headers, faults, token);
            (Method::POST, paths::KEYS)
        }
        ApiCall::Config { token, .. } => {
            authorize(&mut headers, faults, token);
            (Method::POST, paths::CONFIG)
        }
        ApiCall::TerminalParameters { token, .. } => {
            authorize(&mut headers, faults, token);
            (Method::POST, paths::TERMINAL_PARAMETERS)
        }
        ApiCall::Activate { token, msk, checks } => {
            authorize(&mut headers, faults, token);
            let plain = serde_json::to_vec(checks).unwrap_or_default();
            let env = seal_single(msk.expose(), &plain, &mut &mut *rng);
            body = Some(serde_json::to_vec(&env).unwrap_or_default());
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if logging {
                request_plaintext = Some(plain);
            }
            (Method::POST, paths::ACTIVATE)
        }
    };
    Prepared {
        step: call.step().name(),
        expect: Expect::of(call),
        out: Outgoing {
            method,
            url: transport.url(path),
            headers,
            body,
            timeout: faults.request_timeout,
        },
        signing_string,
        request_plaintext,
    }
}

impl Transport {
    /// Makes one device call and returns its decoded (and decrypted) answer.
    ///
    /// `now` is the device's wall clock (for `X-Timestamp` and the log); `rng` draws the nonce
    /// and envelope IVs. The request is built before this returns, so the future borrows
    /// nothing (it holds a clone of the transport and log, two reference counts): spawn it, box
    /// it, and call it with `&mut rand::rng()` inline — but do not hold a `ThreadRng` in a
    /// variable across its `.await`. With a `log`, the exchange is recorded (redacted);
    /// without one, nothing beyond the request itself is allocated.
    pub fn call(
        &self,
        identity: &DeviceIdentity,
        faults: &DeviceFaults,
        call: &ApiCall,
        now: DateTime<Utc>,
        rng: &mut dyn RngCore,
        log: Option<&ExchangeLog>,
    ) -> impl Future<Output = Result<ApiAnswer, CallError>> + Send + 'static {
        let prepared = prepare(self, identity, faults, call, now, rng, log.is_some());
        let transport = self.clone();
        let log = log.cloned();
        async move {
            let Prepared {
                step,
                expect,
                out,
                signing_string,
                request_plaintext,
            } = prepared;
            let entry = |out: &Outgoing| Exchange {
                request_plaintext: request_plaintext.as_deref().map(Captured::preview),
                signing_string,
                ..Exchange::sent(step, now, out)
            };
            send_recorded(&transport, out, log.as_ref(), entry, |inc, logging| {
                decode(&expect, step, inc, now, logging)
            })
            .await
        }
    }
}

/// Copies status, headers, body and trace id of an answer into a log entry.
pub(crate) fn fill_response(entry: &mut Exchange, inc: &Incoming) {
    entry.status = Some(inc.status.as_u16());
    entry.http_version = format!("{:?}", inc.version);
    entry.response_headers = logged_headers(&inc.headers);
    entry.response_body = (!inc.body.is_empty()).then(|| Captured::body(&inc.body));
    entry.trace_id = trace_id(inc);
}

/// `X-Trace-Id`, else the error body's `trace_id`.
pub(crate) fn trace_id(inc: &Incoming) -> Option<String> {
    inc.headers
        .get(X_TRACE_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            serde_json::from_slice::<ErrorEnvelope>(&inc.body)
                .ok()
                .map(|e| e.error.trace_id)
                .filter(|t| !t.is_empty())
        })
}

pub(crate) fn system_time(t: DateTime<Utc>) -> SystemTime {
    SystemTime::from(t)
}

/// The JSON body of a 2xx answer as `T`, or `Decode` naming the step.
pub(crate) fn json<T: DeserializeOwned>(step: &str, body: &[u8]) -> Result<T, CallError> {
    serde_json::from_slice(body)
        .map_err(|e| CallError::Decode(format!("{step}: answer is not the documented JSON: {e}")))
}

fn open_envelope(step: &str, msk: &Key, body: &[u8]) -> Result<Vec<u8>, CallError> {
    Envelope::from_json(body)
        .and_then(|env| open(msk, &env))
        .map_err(|e| CallError::Decode(format!("{step}: answer envelope: {e}")))
}

/// Sends `out` and decodes the answer. With a `log`, records the exchange: `entry` makes its
/// request side, then its latency, response, decrypted plaintext and error are filled in;
/// `decode`'s flag says whether to capture the plaintext.
pub(crate) async fn send_recorded<T>(
    transport: &Transport,
    out: Outgoing,
    log: Option<&ExchangeLog>,
    entry: impl FnOnce(&Outgoing) -> Exchange,
    decode: impl FnOnce(&Incoming, bool) -> (Result<T, CallError>, Option<Captured>),
) -> Result<T, CallError> {
    let Some(log) = log else {
        let inc = transport.send(out).await?;
        return decode(&inc, false).0;
    };
    let mut entry = entry(&out);
    let started = Instant::now();
    let sent = transport.send(out).await;
    entry.latency = started.elapsed();
    let result = match sent {
        Ok(inc) => {
            let (result, plaintext) = decode(&inc, true);
            fill_response(&mut entry, &inc);
            entry.response_plaintext = plaintext;
            result
        }
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        entry.error = Some(e.to_string());
    }
    log.record(entry);
    result
}

/// The answer of a call, and (when `logging`) its decrypted plaintext for the log.
fn decode(
    expect: &Expect,
    step: &str,
    inc: &Incoming,
    now: DateTime<Utc>,
    logging: bool,
) -> (Result<ApiAnswer, CallError>, Option<Captured>) {
    if !inc.status.is_success() {
        return (Err(inc.to_http_error(system_time(now))), None);
    }
    let body = &inc.body[..];
    let mut plaintext = None;
    let result = (|| match expect {
        Expect::Bootstrap => json(step, body).map(ApiAnswer::Bootstrap),
        Expect::PairingCode => json(step, body).map(ApiAnswer::PairingCode),
        Expect::Status => json(step, body).map(ApiAnswer::Status),
        Expect::Attest => json(step, body).map(ApiAnswer::Attest),
        Expect::Keys => json(step, body).map(|k| ApiAnswer::Keys(Box::new(k))),
        Expect::Config(msk) => {
            let plain = open_envelope(step, msk, body)?;
            if logging {
                plaintext = Some(Captured::new(&plain, super::exchange::MAX_BODY_CHARS));
            }
            json(step, &plain).map(ApiAnswer::Config)
        }
        Expect::TerminalParameters(msk) => {
            let plain = open_envelope(step, msk, body)?;
            if logging {
                plaintext = Some(Captured::preview(&plain));
            }
            // Checked to be JSON without building it: the device only keeps its digest.
            json::<serde::de::IgnoredAny>(step, &plain)?;
            Ok(ApiAnswer::TerminalParameters {
                sha256_hex: sha256_hex(&plain),
                bytes: plain.len(),
            })
        }
        Expect::Activate(msk) => {
            let plain = open_envelope(step, msk, body)?;
            if logging {
                plaintext = Some(Captured::new(&plain, super::exchange::MAX_BODY_CHARS));
            }
            json(step, &plain).map(ApiAnswer::Activate)
        }
    })();
    (result, plaintext)
}

#[cfg(test)]
#[path = "call_tests.rs"]
mod tests;

/// Random and mutated answers to every step's decode path (proptest).
#[cfg(test)]
#[path = "call_prop.rs"]
mod prop;
