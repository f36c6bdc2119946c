//! One payment call (spec 7): serialize the plaintext, seal it as a `TR31-DATA` envelope under
//! the MSK (fresh IV), sign exactly the bytes sent with the MAC key (spec 7.2), send it with
//! `User-Agent`, `X-Client-Type`, `Content-Type` and `Idempotency-Key`, then check the answer's
//! `key_kcv`, decrypt it and parse the charge or refund.
//!
//! The exchange log shows the plaintext with the PAN masked, the expiry hidden and `pin_block`
//! as `***` (spec 7.11), the string to sign and the body's SHA-256.

use std::future::Future;

use chrono::{DateTime, Utc};
use rand::RngCore;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;

use super::call::{
    attest_timestamp, json, new_nonce, put, send_recorded, system_time, terminal_headers,
};
use super::device_faults::{DeviceFaults, FaultHeader, REUSED_NONCE};
use super::exchange::{Captured, Exchange, ExchangeLog, MAX_BODY_CHARS};
use super::identity::DeviceIdentity;
use super::transport::{Incoming, Outgoing, Transport};
use posemu_protocol::api::{CallError, PayAnswer, PayCall, PayRequest};
use posemu_protocol::crypto::{kcv, Key, BLOCK};
use posemu_protocol::envelope::{open, seal_single_with_iv, Envelope};
use posemu_protocol::payments::{body_sha256, SignedRequest, IDEMPOTENCY_KEY, X_TERMINAL_ID};

/// The values a request draws fresh every time, retries included.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// `X-Timestamp`, RFC 3339 UTC.
    pub timestamp: String,
    pub nonce: String,
    pub iv: [u8; BLOCK],
}

impl Stamp {
    /// The device's wall clock plus its learnt offset (and any injected skew), a fresh nonce
    /// (the fixed one under the reused-nonce fault) and a fresh IV.
    pub fn draw(
        now: DateTime<Utc>,
        clock_offset_ms: i64,
        faults: &DeviceFaults,
        rng: &mut dyn RngCore,
    ) -> Stamp {
        let mut iv = [0u8; BLOCK];
        rng.fill_bytes(&mut iv);
        Stamp {
            timestamp: attest_timestamp(now, clock_offset_ms, faults),
            nonce: if faults.reuse_nonce {
                REUSED_NONCE.to_string()
            } else {
                new_nonce(rng)
            },
            iv,
        }
    }
}

/// A payment request ready to go, and what the log shows about how it was made.
pub struct PreparedPay {
    pub(crate) out: Outgoing,
    /// `charge`, `refund`, `cancel`, `reverse`.
    pub step: &'static str,
    pub path: String,
    pub body: Vec<u8>,
    pub string_to_sign: String,
    pub body_sha256: String,
    /// The plaintext as logs show it (redacted), `None` for cancel.
    pub redacted_plaintext: Option<String>,
    msk: Key,
    expects_refund: bool,
}

impl PreparedPay {
    /// The request headers as they will be sent (for tests and logs; nothing secret in them).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.out.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn url(&self) -> &str {
        &self.out.url
    }
}

fn hv(s: &str) -> HeaderValue {
    // every value here is built from checked ASCII; a server-sent id that is not is sent empty
    // and answered with the server's documented 400
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

/// Builds the request of `call` with the given stamp: the request builder, deterministic for
/// fixed stamps (the spec 7.13 vector reproduces through it).
pub fn build(
    transport: &Transport,
    identity: &DeviceIdentity,
    faults: &DeviceFaults,
    call: &PayCall,
    stamp: &Stamp,
) -> PreparedPay {
    let url = transport.url(&call.request.path());
    // the path exactly as sent: with the base URL's prefix, percent-encoded as on the wire
    let path = reqwest::Url::parse(&url)
        .map(|u| u.path().to_string())
        .unwrap_or_else(|_| call.request.path());
    let plaintext = call.request.plaintext();
    let body = match &plaintext {
        Some(plain) => {
            let env = seal_single_with_iv(call.msk.expose(), plain, &stamp.iv);
            serde_json::to_vec(&env).unwrap_or_default()
        }
        None => Vec::new(),
    };
    let signed = SignedRequest {
        terminal_id: &call.terminal_id,
        key_id: &call.key_id,
        timestamp: &stamp.timestamp,
        nonce: &stamp.nonce,
        path: &path,
        body: &body,
    };
    let string_to_sign = signed.string_to_sign();
    // the wrong-secret fault signs payments with wrong MAC key bytes (spec 7.12's fault table)
    let mac_key: Key = if faults.wrong_secret {
        call.mac_key.expose().map(|b| b ^ 0x5A)
    } else {
        *call.mac_key.expose()
    };
    let mut headers = HeaderMap::with_capacity(12);
    terminal_headers(&mut headers, identity, faults);
    for (name, value) in signed.headers(&mac_key) {
        let which = match name {
            X_TERMINAL_ID => None,
            n if n == FaultHeader::KeyId.name() => Some(FaultHeader::KeyId),
            n if n == FaultHeader::Timestamp.name() => Some(FaultHeader::Timestamp),
            n if n == FaultHeader::Nonce.name() => Some(FaultHeader::Nonce),
            _ => Some(FaultHeader::Signature),
        };
        let hname = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .unwrap_or(HeaderName::from_static("x-unknown"));
        match which {
            Some(w) => put(&mut headers, faults, w, hname, hv(&value)),
            None => {
                headers.insert(hname, hv(&value));
            }
        }
    }
    if !body.is_empty() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let keyed = !matches!(call.request, PayRequest::Cancel { .. });
    if let (true, Some(key)) = (keyed, &call.idempotency_key) {
        headers.insert(
            HeaderName::from_bytes(IDEMPOTENCY_KEY.to_ascii_lowercase().as_bytes())
                .unwrap_or(HeaderName::from_static("idempotency-key")),
            hv(key),
        );
    }
    PreparedPay {
        out: Outgoing {
            method: Method::POST,
            url,
            headers,
            body: (!body.is_empty()).then(|| body.clone()),
            timeout: faults.request_timeout,
        },
        step: call.request.name(),
        body_sha256: body_sha256(&body),
        path,
        body,
        string_to_sign,
        redacted_plaintext: call.request.redacted_json().map(|v| v.to_string()),
        msk: *call.msk.expose(),
        expects_refund: matches!(call.request, PayRequest::Refund { .. }),
    }
}

/// The answer of a payment call, and its decrypted plaintext for the log.
pub fn decode(
    step: &str,
    msk: &Key,
    expects_refund: bool,
    status: u16,
    body: &[u8],
    http_error: impl FnOnce() -> CallError,
) -> (Result<PayAnswer, CallError>, Option<Captured>) {
    if !(200..300).contains(&status) {
        return (Err(http_error()), None);
    }
    let env = match Envelope::from_json(body) {
        Ok(e) => e,
        Err(e) => {
            return (
                Err(CallError::Decode(format!("{step}: answer envelope: {e}"))),
                None,
            )
        }
    };
    // spec 7.1: every 200 body carries key_kcv; `open` checks it against the MSK
    if env.key_kcv().is_none() {
        return (
            Err(CallError::Decode(format!(
                "{step}: answer envelope has no key_kcv (expected {})",
                kcv(msk)
            ))),
            None,
        );
    }
    let plain = match open(msk, &env) {
        Ok(p) => p,
        Err(e) => {
            return (
                Err(CallError::Decode(format!("{step}: answer envelope: {e}"))),
                None,
            )
        }
    };
    let captured = Some(Captured::new(&plain, MAX_BODY_CHARS));
    let result = if expects_refund {
        json(step, &plain).map(|r| PayAnswer::Refund(Box::new(r)))
    } else {
        json(step, &plain).map(|c| PayAnswer::Charge(Box::new(c)))
    };
    (result, captured)
}

fn decode_incoming(
    p: &PayPreparedParts,
    inc: &Incoming,
    now: DateTime<Utc>,
) -> (Result<PayAnswer, CallError>, Option<Captured>) {
    decode(
        p.step,
        &p.msk,
        p.expects_refund,
        inc.status.as_u16(),
        &inc.body,
        || inc.to_http_error(system_time(now)),
    )
}

/// What the future keeps of a prepared request besides the request itself.
struct PayPreparedParts {
    step: &'static str,
    msk: Key,
    expects_refund: bool,
}

impl Transport {
    /// Makes one payment call: draws the timestamp, nonce and IV, seals, signs, sends, and
    /// decrypts the answer. The request is built before this returns, so the future borrows
    /// nothing. With a `log`, the exchange is recorded with the redacted plaintext, the string
    /// to sign and the body hash.
    pub fn pay(
        &self,
        identity: &DeviceIdentity,
        faults: &DeviceFaults,
        call: &PayCall,
        now: DateTime<Utc>,
        rng: &mut dyn RngCore,
        log: Option<&ExchangeLog>,
    ) -> impl Future<Output = Result<PayAnswer, CallError>> + Send + 'static {
        // a charge id comes from a server or a person: only a plain one goes into a path
        let refused = match &call.request {
            PayRequest::Refund { charge_id, .. } | PayRequest::Cancel { charge_id, .. }
                if !is_safe_charge_id(charge_id) =>
            {
                Some(CallError::Decode(format!(
                    "charge id {:?} is not 1-64 letters, digits and '_'; not sent",
                    posemu_protocol::text::escape_control(charge_id)
                )))
            }
            _ => None,
        };
        let stamp = Stamp::draw(now, call.clock_offset_ms, faults, rng);
        let prepared = build(self, identity, faults, call, &stamp);
        let transport = self.clone();
        let log = log.cloned();
        async move {
            if let Some(e) = refused {
                return Err(e);
            }
            let PreparedPay {
                out,
                step,
                string_to_sign,
                body_sha256,
                redacted_plaintext,
                msk,
                expects_refund,
                ..
            } = prepared;
            let parts = PayPreparedParts {
                step,
                msk,
                expects_refund,
            };
            let entry = |out: &Outgoing| Exchange {
                request_plaintext: redacted_plaintext
                    .as_deref()
                    .map(|t| Captured::new(t.as_bytes(), MAX_BODY_CHARS)),
                signing_string: Some(string_to_sign),
                body_sha256: Some(body_sha256),
                ..Exchange::sent(step, now, out)
            };
            send_recorded(&transport, out, log.as_ref(), entry, |inc, _| {
                decode_incoming(&parts, inc, now)
            })
            .await
        }
    }
}

#[cfg(test)]
mod tests;

/// `^[A-Za-z0-9_]{1,64}$`: what a charge id may be before it goes into a path (a `ch_` id is
/// `ch_` and 24 base62 characters; spec 7.5).
pub fn is_safe_charge_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `GET /sandbox/charges/{charge_id}` (spec 7.12, sandbox only): the charge as it is now, e.g.
/// to learn what is left to refund.
pub async fn sandbox_charge(
    transport: &Transport,
    charge_id: &str,
) -> Result<posemu_protocol::payments::Charge, CallError> {
    if !is_safe_charge_id(charge_id) {
        return Err(CallError::Decode(format!(
            "charge id {charge_id:?} is not letters, digits and _"
        )));
    }
    let out = Outgoing {
        method: Method::GET,
        url: transport.url(&posemu_protocol::payments::paths::sandbox_charge(charge_id)),
        headers: HeaderMap::new(),
        body: None,
        timeout: None,
    };
    let inc = transport.send(out).await?;
    if !inc.status.is_success() {
        return Err(inc.to_http_error(std::time::SystemTime::now()));
    }
    json("sandbox-charge", &inc.body)
}

/// `GET /sandbox/terminals/{tid}/charges?limit=N` (spec 7.12, sandbox only): the terminal's
/// newest `limit` charges, newest first (the POS screen's transactions view).
pub async fn sandbox_terminal_charges(
    transport: &Transport,
    terminal_id: &str,
    limit: usize,
) -> Result<Vec<posemu_protocol::payments::Charge>, CallError> {
    if !posemu_protocol::payments::is_valid_terminal_id(terminal_id) {
        return Err(CallError::Decode(format!(
            "terminal id {terminal_id:?} is not letters, digits, - and _"
        )));
    }
    let path = posemu_protocol::payments::paths::sandbox_terminal_charges(terminal_id);
    let out = Outgoing {
        method: Method::GET,
        url: format!("{}?limit={}", transport.url(&path), limit.clamp(1, 10_000)),
        headers: HeaderMap::new(),
        body: None,
        timeout: None,
    };
    let inc = transport.send(out).await?;
    if !inc.status.is_success() {
        return Err(inc.to_http_error(std::time::SystemTime::now()));
    }
    let list: posemu_protocol::payments::wire::TerminalCharges =
        json("sandbox-terminal-charges", &inc.body)?;
    let mut charges = list.charges;
    charges.truncate(limit);
    Ok(charges)
}

/// `POST /sandbox/settle` with `{"terminal_id": …}` (spec 7.12, sandbox only): settles the
/// terminal's pending charges now, as the acquirer's batch close would.
pub async fn sandbox_settle(
    transport: &Transport,
    terminal_id: &str,
) -> Result<posemu_protocol::payments::SettleResponse, CallError> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = serde_json::json!({ "terminal_id": terminal_id }).to_string();
    let out = Outgoing {
        method: Method::POST,
        url: transport.url(posemu_protocol::payments::paths::SANDBOX_SETTLE),
        headers,
        body: Some(body.into_bytes()),
        timeout: None,
    };
    let inc = transport.send(out).await?;
    if !inc.status.is_success() {
        return Err(inc.to_http_error(std::time::SystemTime::now()));
    }
    json("sandbox-settle", &inc.body)
}
