//! Device endpoints authenticated by headers: bootstrap, pairing code, status, attest.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use rand::Rng;
use serde_json::{json, Value};

use super::super::error::{ApiError, ApiResult};
use super::super::extract::{header, BootstrapDevice, Device};
use super::super::state::{AttestationToken, Code, DevKey};
use super::super::Shared;
use posemu_protocol::attest::{is_valid_nonce, parse_signature, string_to_sign, verify_v1};
use posemu_protocol::clock::{parse_rfc3339, rfc3339};
use posemu_protocol::headers::{X_KEY_ID, X_NONCE, X_SIGNATURE, X_TIMESTAMP};
use posemu_protocol::rules::{
    ATTESTATION_TOKEN_RANDOM_LEN, CODE_ALPHABET, CODE_LEN, NONCE_MEMORY_SECS,
    TIMESTAMP_MAX_AHEAD_SECS, TIMESTAMP_MAX_BEHIND_SECS,
};
use posemu_protocol::wire::{
    AttestResponse, BootstrapResponse, DeviceStatus, PairingCodeResponse, PairingCodeStatus,
    StatusResponse,
};

pub async fn bootstrap(
    State(s): State<Arc<Shared>>,
    BootstrapDevice(d): BootstrapDevice,
) -> Json<BootstrapResponse> {
    let now = s.now_ms();
    s.world.with_device(d.key, |st| st.last_seen_ms = now);
    Json(BootstrapResponse {
        status: "ok".into(),
        server_time: rfc3339(s.config.clock.now()),
        min_supported_version: s.config.min_version.clone(),
    })
}

fn already_claimed(id: &str, status: DeviceStatus) -> ApiError {
    ApiError::new(409, "Device already claimed")
        .detail("device_id", id)
        .detail("device_status", status.as_str())
}

pub async fn pairing_code(
    State(s): State<Arc<Shared>>,
    d: Device,
) -> ApiResult<Json<PairingCodeResponse>> {
    let now = s.now_ms();
    let ttl_ms = i64::try_from(s.config.code_ttl.as_millis()).unwrap_or(i64::MAX);
    let mut codes = s.world.codes.lock();
    // Codes are unique among pending codes; a code no longer pending may be reused.
    let chars = loop {
        let c: [u8; CODE_LEN] = {
            let mut rng = s.rng.lock();
            std::array::from_fn(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())])
        };
        let taken = codes.get(&c).is_some_and(|other| {
            s.world.peek(other, |st| {
                st.and_then(|st| st.code)
                    .is_some_and(|oc| oc.chars == c && oc.status(now) == PairingCodeStatus::Pending)
            })
        });
        if !taken {
            break c;
        }
    };
    s.world.with_device(d.key, |st| {
        if st.status() != DeviceStatus::Inactive {
            return Err(already_claimed(&d.id, st.status()));
        }
        if let Some(old) = st.code.as_mut() {
            old.replaced = true;
        }
        st.code = Some(Code {
            chars,
            issued_ms: now,
            ttl_ms,
            used: false,
            replaced: false,
        });
        st.last_seen_ms = now;
        Ok(())
    })?;
    codes.insert(chars, d.key, now, |key, code| {
        s.world.peek(key, |st| {
            st.and_then(|st| st.code).is_some_and(|c| c.chars == *code)
        })
    });
    Ok(Json(PairingCodeResponse {
        pairing_code: String::from_utf8_lossy(&chars).into_owned(),
        expires_in_sec: s.config.code_ttl.as_secs(),
    }))
}

pub async fn status(State(s): State<Arc<Shared>>, d: Device) -> Json<StatusResponse> {
    let now = s.now_ms();
    let (device_status, code) = s.world.peek(d.key, |st| match st {
        Some(st) => (
            st.status(),
            st.code
                .map(|c| c.status(now))
                .unwrap_or(PairingCodeStatus::None),
        ),
        None => (DeviceStatus::Inactive, PairingCodeStatus::None),
    });
    Json(StatusResponse {
        device_status,
        is_claimed: device_status != DeviceStatus::Inactive,
        pairing_code_status: code,
    })
}

fn required<'a>(h: &'a HeaderMap, name: &str) -> ApiResult<&'a str> {
    header(h, name).ok_or_else(|| ApiError::bad_request(format!("{name} header is required")))
}

fn invalid(name: &str) -> ApiError {
    ApiError::bad_request(format!("{name} header is invalid"))
}

pub async fn attest(
    State(s): State<Arc<Shared>>,
    d: Device,
    h: HeaderMap,
) -> ApiResult<Json<AttestResponse>> {
    let key_id = required(&h, X_KEY_ID)?;
    let ts = required(&h, X_TIMESTAMP)?;
    let nonce = required(&h, X_NONCE)?;
    let sig = required(&h, X_SIGNATURE)?;
    let at = parse_rfc3339(ts).ok_or_else(|| invalid(X_TIMESTAMP))?;
    if !is_valid_nonce(nonce) {
        return Err(invalid(X_NONCE));
    }
    let sig = parse_signature(sig).ok_or_else(|| invalid(X_SIGNATURE))?;

    let ident = s.world.identity(d.key);
    if key_id != ident.key_id {
        return Err(ApiError::new(401, "Unknown or revoked identity key"));
    }
    let server_now = s.config.clock.now();
    // In milliseconds: the server clock has them, so 300.4 s behind is outside the window.
    let skew_ms = (at - server_now).num_milliseconds();
    if !(-TIMESTAMP_MAX_BEHIND_SECS * 1000..=TIMESTAMP_MAX_AHEAD_SECS * 1000).contains(&skew_ms) {
        return Err(ApiError::new(401, "Timestamp outside allowed window")
            .detail("server_time", rfc3339(server_now)));
    }
    if !verify_v1(
        &ident.secret,
        &string_to_sign(&d.id, key_id, ts, nonce),
        &sig,
    ) {
        return Err(ApiError::new(401, "Invalid signature"));
    }
    let now = s.now_ms();
    let nonce_hash = s.world.hash(nonce);
    s.world.with_device(d.key, |st| {
        st.nonces
            .retain(|&(_, seen)| now - seen < NONCE_MEMORY_SECS as i64 * 1000);
        if st.nonces.iter().any(|&(n, _)| n == nonce_hash) {
            return Err(ApiError::new(401, "Nonce already used"));
        }
        // Remembered once the signature verified, whatever comes next.
        st.nonces.push((nonce_hash, now));
        st.last_seen_ms = now;
        match st.status() {
            DeviceStatus::Inactive => Err(ApiError::new(409, "Device is not claimed")
                .detail("device_status", DeviceStatus::Inactive.as_str())),
            _ => Ok(()),
        }
    })?;
    let token = issue_token(&s, d.key, now);
    Ok(Json(AttestResponse {
        status: "attested".into(),
        attestation_token: token,
        expires_in_sec: s.config.token_ttl.as_secs(),
    }))
}

fn issue_token(s: &Shared, key: DevKey, now: i64) -> String {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let token: String = {
        let mut rng = s.rng.lock();
        (0..ATTESTATION_TOKEN_RANDOM_LEN)
            .map(|_| BASE62[rng.random_range(0..62)] as char)
            .collect()
    };
    let token = format!("att_{token}");
    let expires_ms =
        now.saturating_add(i64::try_from(s.config.token_ttl.as_millis()).unwrap_or(i64::MAX));
    s.world.tokens.lock().insert(
        token.clone(),
        AttestationToken {
            device: key,
            expires_ms,
        },
        now,
    );
    token
}

pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}
