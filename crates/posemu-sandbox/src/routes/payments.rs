//! The POS payment routes (spec 7.1–7.9): HMAC authentication (7.2), envelopes and plaintext
//! checks (7.3), then the operations of [`crate::payments`].

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::extract::header;
use crate::payments::{Answer, Terminal};
use crate::state::DevKey;
use crate::Shared;
use posemu_protocol::attest::is_valid_nonce;
use posemu_protocol::clock::{parse_rfc3339, rfc3339};
use posemu_protocol::crypto::Key;
use posemu_protocol::envelope::seal_single;
use posemu_protocol::headers::{
    check_user_agent_and_client_type, USER_AGENT, X_CLIENT_TYPE, X_KEY_ID, X_NONCE, X_SIGNATURE,
    X_TIMESTAMP,
};
use posemu_protocol::payments::validate::{
    self, BodyProblem, EnvelopeProblem, REASON_NOT_ENVELOPE, REASON_NOT_OBJECT,
};
use posemu_protocol::payments::{
    is_valid_idempotency_key, is_valid_terminal_id, parse_signature, string_to_sign, verify,
    IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_EXPECTED, IDEMPOTENT_REPLAYED, MAX_BODY_BYTES, METHOD,
    TERMINAL_ID_PATTERN, TIMESTAMP_WINDOW_SECS, X_TERMINAL_ID,
};
use posemu_protocol::wire::DeviceStatus;

/// The string the sandbox built to verify a payment signature, carried on the response to the
/// request log (never into the response itself).
#[derive(Clone)]
pub struct SignedString(pub String);

/// A request that passed spec 7.2: its terminal, keys and body.
struct Authed {
    terminal: Arc<Terminal>,
    msk: Key,
    tpk: Key,
    body: Bytes,
}

fn required<'a>(h: &'a HeaderMap, name: &str) -> ApiResult<&'a str> {
    header(h, name).ok_or_else(|| ApiError::bad_request(format!("{name} header is required")))
}

fn invalid(name: &str) -> ApiError {
    ApiError::bad_request(format!("{name} header is invalid"))
}

fn too_large() -> ApiError {
    ApiError::new(413, "Request body too large").detail("limit_bytes", MAX_BODY_BYTES)
}

/// At most [`MAX_BODY_BYTES`]; anything longer (or a body that breaks off) is 413. What is left
/// unread is drained by the connection before the answer goes out (`conn::Unread`).
async fn read_body(body: Body) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())
}

/// The device's state as 7.2 needs it: status, and the MAC key id, MAC key, MSK and TPK of
/// its current unexpired key set.
struct KeyedDevice {
    key: DevKey,
    status: DeviceStatus,
    mac: Key,
    msk: Key,
    tpk: Key,
}

fn device_with_mac_key(
    s: &Shared,
    candidates: &[DevKey],
    key_id: &str,
    now_ms: i64,
) -> Option<KeyedDevice> {
    candidates.iter().find_map(|&key| {
        s.world.peek(key, |st| {
            let st = st?;
            let ks = st.keys.as_ref().filter(|k| k.expires_ms > now_ms)?;
            (ks.response.keys.mac.key_id == key_id).then(|| KeyedDevice {
                key,
                status: st.status(),
                mac: ks.mac,
                msk: ks.msk,
                tpk: ks.tpk,
            })
        })
    })
}

/// The terminal of a device, from its config (built once per device, see
/// [`crate::payments::Payments::terminal`]).
fn terminal_of(s: &Shared, key: DevKey, terminal_id: &str) -> Arc<Terminal> {
    s.payments
        .terminal(key, || terminal_from_config(s, key, terminal_id))
}

fn terminal_from_config(s: &Shared, key: DevKey, terminal_id: &str) -> Terminal {
    let device_id = s.world.device_id(key);
    let cfg = super::attested::config_for(s, key, &device_id);
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    Terminal {
        key,
        terminal_id: terminal_id.to_string(),
        merchant_id: text(&cfg["merchant"]["merchant_id"]),
        currency: text(&cfg["emv"]["currency"]),
        tips_enabled: cfg["merchant"]["tip_info"]["enabled"]
            .as_bool()
            .unwrap_or(false),
        pin_required_above: cfg["security"]["pin_required_above_minor"]
            .as_u64()
            .unwrap_or(u64::MAX),
        contactless_limit: cfg["security"]["contactless_limit_minor"]
            .as_u64()
            .unwrap_or(u64::MAX),
    }
}

/// Spec 7.2, checks 1–12 in order. `signed` receives the string to sign once it is built.
async fn authenticate(
    s: &Shared,
    h: &HeaderMap,
    path: &str,
    body: Body,
    signed: &mut Option<String>,
) -> ApiResult<Authed> {
    let tid = required(h, X_TERMINAL_ID)?;
    if !is_valid_terminal_id(tid) {
        return Err(invalid(X_TERMINAL_ID)
            .detail("header", X_TERMINAL_ID)
            .detail("expected", TERMINAL_ID_PATTERN));
    }
    check_user_agent_and_client_type(header(h, USER_AGENT), header(h, X_CLIENT_TYPE))?;
    let candidates = s.payments.terminals.lookup(&s.world, tid);
    if candidates.is_empty() {
        return Err(ApiError::new(404, "Terminal not found").detail("terminal_id", tid));
    }
    let key_id = required(h, X_KEY_ID)?;
    let ts = required(h, X_TIMESTAMP)?;
    let nonce = required(h, X_NONCE)?;
    let sig = required(h, X_SIGNATURE)?;
    let at = parse_rfc3339(ts).ok_or_else(|| invalid(X_TIMESTAMP))?;
    if !is_valid_nonce(nonce) {
        return Err(invalid(X_NONCE));
    }
    let sig = parse_signature(sig).ok_or_else(|| invalid(X_SIGNATURE))?;
    let body = read_body(body).await?;
    let text = string_to_sign(tid, key_id, ts, nonce, METHOD, path, &body);
    *signed = Some(text.clone());

    let server_now = s.config.clock.now();
    let now_ms = server_now.timestamp_millis();
    let dev = device_with_mac_key(s, &candidates, key_id, now_ms)
        .ok_or_else(|| ApiError::new(401, "Unknown or revoked MAC key"))?;
    // inclusive, in milliseconds (the server clock has them)
    let skew_ms = (at - server_now).num_milliseconds();
    if skew_ms.abs() > TIMESTAMP_WINDOW_SECS * 1000 {
        return Err(ApiError::new(401, "Timestamp outside allowed window")
            .detail("server_time", rfc3339(server_now)));
    }
    if !verify(&dev.mac, &text, &sig) {
        return Err(ApiError::new(401, "Invalid signature"));
    }
    // remembered once the signature verified, whatever comes next
    if !s
        .payments
        .remember_nonce(dev.key, s.world.hash(nonce), now_ms)
    {
        return Err(ApiError::new(401, "Nonce already used"));
    }
    if dev.status != DeviceStatus::Activated {
        return Err(ApiError::new(409, "Device is not activated")
            .detail("device_status", dev.status.as_str()));
    }
    Ok(Authed {
        terminal: terminal_of(s, dev.key, tid),
        msk: dev.msk,
        tpk: dev.tpk,
        body,
    })
}

/// `Idempotency-Key` syntax (spec 7.4), checked first after 7.2 on charge and refund.
fn idempotency_key(h: &HeaderMap) -> ApiResult<Option<&str>> {
    match header(h, IDEMPOTENCY_KEY) {
        None => Ok(None),
        Some(k) if is_valid_idempotency_key(k) => Ok(Some(k)),
        Some(_) => Err(invalid(IDEMPOTENCY_KEY)
            .detail("header", IDEMPOTENCY_KEY)
            .detail("expected", IDEMPOTENCY_KEY_EXPECTED)),
    }
}

fn invalid_body() -> ApiError {
    ApiError::bad_request("Invalid request body")
}

/// Spec 7.3 rows 1–3.
fn open_envelope(msk: &Key, body: &[u8]) -> ApiResult<Vec<u8>> {
    validate::open_request_envelope(msk, body).map_err(|e| match e {
        EnvelopeProblem::Shape => invalid_body().detail("reason", REASON_NOT_ENVELOPE),
        EnvelopeProblem::Kcv => ApiError::bad_request("key_kcv does not match MSK"),
        EnvelopeProblem::Decrypt => ApiError::bad_request("Envelope could not be decrypted"),
    })
}

/// Spec 7.3 rows 4–5.
fn body_error(p: BodyProblem) -> ApiError {
    match p {
        BodyProblem::NotObject => invalid_body().detail("reason", REASON_NOT_OBJECT),
        BodyProblem::Field { field, reason } => invalid_body()
            .detail("field", field)
            .detail("reason", reason.as_str()),
    }
}

/// A 200 envelope of `plaintext` under the MSK, fresh IV. Serialized straight from the
/// envelope (not through a `serde_json::Value`, which would copy the ciphertext's hex).
fn sealed(s: &Shared, msk: &Key, plaintext: &[u8], replayed: bool) -> Response {
    let env = seal_single(msk, plaintext, &mut *s.rng.lock());
    let mut resp = match serde_json::to_vec(&env) {
        Ok(bytes) => (
            [(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(_) => Json(json!({})).into_response(),
    };
    if replayed {
        resp.headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    resp
}

fn answer(s: &Shared, msk: &Key, a: Answer) -> Response {
    match a.late_charge_id {
        Some(id) => ApiError::new(504, "Issuer did not respond in time")
            .detail("charge_id", id)
            .into_response(),
        None => sealed(s, msk, &a.plaintext, a.replayed),
    }
}

/// Runs a payment handler and hands the string it verified to the request log.
async fn logged<F>(f: F) -> Response
where
    F: AsyncFnOnce(&mut Option<String>) -> ApiResult<Response>,
{
    let mut signed = None;
    let mut resp = f(&mut signed)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    if let Some(text) = signed {
        resp.extensions_mut().insert(SignedString(text));
    }
    resp
}

/// The `{charge_id}` segment of `/pos/charge/{charge_id}/…`, as sent.
fn charge_id_of(path: &str) -> &str {
    path.split('/').nth(3).unwrap_or_default()
}

pub async fn charge(State(s): State<Arc<Shared>>, uri: Uri, h: HeaderMap, body: Body) -> Response {
    logged(async |signed: &mut Option<String>| {
        s.payments.tick(s.config.clock.now());
        let path = uri.path();
        let a = authenticate(&s, &h, path, body, signed).await?;
        let key = idempotency_key(&h)?;
        let plain = open_envelope(&a.msk, &a.body)?;
        let valid = validate::charge_request(&plain, &a.tpk).map_err(body_error)?;
        let now = s.config.clock.now();
        let result = s.payments.charge(&a.terminal, &valid, key, path, now)?;
        Ok(answer(&s, &a.msk, result))
    })
    .await
}

pub async fn refund(State(s): State<Arc<Shared>>, uri: Uri, h: HeaderMap, body: Body) -> Response {
    logged(async |signed: &mut Option<String>| {
        s.payments.tick(s.config.clock.now());
        let path = uri.path();
        let a = authenticate(&s, &h, path, body, signed).await?;
        let key = idempotency_key(&h)?;
        let plain = open_envelope(&a.msk, &a.body)?;
        let req = validate::refund_request(&plain).map_err(body_error)?;
        let now = s.config.clock.now();
        let result = s
            .payments
            .refund(&a.terminal, charge_id_of(path), &req, key, path, now)?;
        Ok(answer(&s, &a.msk, result))
    })
    .await
}

/// Cancel and reverse: one operation under two paths (spec 7.9). A body is ignored, but signed.
pub async fn cancel(State(s): State<Arc<Shared>>, uri: Uri, h: HeaderMap, body: Body) -> Response {
    logged(async |signed: &mut Option<String>| {
        s.payments.tick(s.config.clock.now());
        let path = uri.path();
        let a = authenticate(&s, &h, path, body, signed).await?;
        let now = s.config.clock.now();
        let plain = s.payments.cancel(&a.terminal, charge_id_of(path), now)?;
        Ok(sealed(&s, &a.msk, &plain, false))
    })
    .await
}

/// `{"terminal_id": …}` details of an unknown terminal.
pub fn terminal_not_found(tid: &str) -> ApiError {
    ApiError::new(404, "Terminal not found").detail("terminal_id", tid)
}

/// Used by the helpers: `json!` of a value that always serializes.
pub fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_else(|_| json!({}))
}

#[cfg(test)]
#[path = "payments_bench.rs"]
mod bench;
