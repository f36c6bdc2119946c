//! Sandbox-only helpers under `/sandbox/` (spec 5): list, provision, claim, expire, reset, faults.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::error::{ApiError, ApiResult};
use super::super::faults::FaultConfig;
use super::super::state::{DevKey, NewDevice, ProvisionError, MAX_MERCHANTS, MAX_NAMED_DEVICES};
use super::super::Shared;
use super::attested::terminal_id;
use super::merchant::claim_code;
use posemu_protocol::clock::rfc3339;
use posemu_protocol::crypto::key_from_hex;
use posemu_protocol::headers::is_valid_device_id;
use posemu_protocol::rules::DEMO_MERCHANT_ID;
use posemu_protocol::wire::{DeviceStatus, PairingCodeStatus};

fn known(s: &Shared, id: &str) -> ApiResult<DevKey> {
    s.world
        .resolve(id)
        .ok_or_else(|| ApiError::device_not_found(id))
}

fn device_json(s: &Shared, key: DevKey) -> Value {
    let now = s.now_ms();
    let ident = s.world.identity(key);
    let merchant = s
        .world
        .merchants
        .read()
        .get(ident.merchant)
        .map(|m| m.id.clone());
    let ms = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).map(rfc3339);
    s.world.peek(key, |st| {
        let status = st.map(|st| st.status()).unwrap_or(DeviceStatus::Inactive);
        let code = st.and_then(|st| st.code);
        json!({
            "device_id": ident.id,
            "device_status": status.as_str(),
            "pairing_code": code.map(|c| c.text()),
            "pairing_code_status": code.map(|c| c.status(now)).unwrap_or(PairingCodeStatus::None).as_str(),
            "merchant_id": merchant,
            "terminal_id": terminal_id(&ident.id),
            "activated_at": st.and_then(|st| st.activated_at).and_then(|t| chrono::DateTime::from_timestamp(t, 0)).map(rfc3339),
            "last_seen": st.map(|st| st.last_seen_ms).filter(|&t| t > 0).and_then(ms),
        })
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
}

pub async fn list(State(s): State<Arc<Shared>>, Query(q): Query<ListQuery>) -> Json<Value> {
    let keys = s.world.known_devices();
    let limit = q.limit.unwrap_or(1000);
    let devices: Vec<Value> = keys
        .iter()
        .take(limit)
        .map(|k| device_json(&s, *k))
        .collect();
    Json(json!({"total": keys.len(), "devices": devices}))
}

/// Longest `identity_key_id` and `merchant_id` a provisioned device may have.
const MAX_ID_CHARS: usize = 128;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvisionRequest {
    device_id: String,
    identity_key_id: String,
    identity_secret_hex: String,
    zmk_hex: String,
    merchant_id: Option<String>,
}

pub async fn provision(
    State(s): State<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: ProvisionRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("Invalid request body").detail("message", e.to_string())
    })?;
    let field = |name: &str, why: String| {
        ApiError::bad_request("Invalid request body")
            .detail("field", name)
            .detail("message", why)
    };
    if !is_valid_device_id(&req.device_id) {
        return Err(field(
            "device_id",
            "expected POS- and 8 uppercase hex digits".into(),
        ));
    }
    if req.identity_key_id.trim().is_empty() {
        return Err(field("identity_key_id", "must not be empty".into()));
    }
    for (name, value) in [
        ("identity_key_id", Some(&req.identity_key_id)),
        ("merchant_id", req.merchant_id.as_ref()),
    ] {
        let Some(v) = value else { continue };
        if v.trim().is_empty()
            || v.chars().count() > MAX_ID_CHARS
            || v.chars().any(char::is_control)
        {
            return Err(field(
                name,
                format!("must be 1 to {MAX_ID_CHARS} characters without control characters"),
            ));
        }
    }
    let secret =
        key_from_hex(&req.identity_secret_hex).map_err(|e| field("identity_secret_hex", e))?;
    let zmk = key_from_hex(&req.zmk_hex).map_err(|e| field("zmk_hex", e))?;
    let added = s.world.provision(NewDevice {
        id: req.device_id.clone(),
        key_id: req.identity_key_id,
        secret,
        zmk,
        merchant_id: req.merchant_id.unwrap_or_else(|| DEMO_MERCHANT_ID.into()),
    });
    let key = match added {
        Ok(key) => key,
        Err(ProvisionError::Exists) => {
            return Err(
                ApiError::new(409, "Device already exists").detail("device_id", req.device_id)
            )
        }
        Err(ProvisionError::TooManyDevices) => {
            return Err(ApiError::new(422, "Too many provisioned devices")
                .detail("max_devices", MAX_NAMED_DEVICES))
        }
        Err(ProvisionError::TooManyMerchants) => {
            return Err(
                ApiError::new(422, "Too many merchants").detail("max_merchants", MAX_MERCHANTS)
            )
        }
    };
    Ok((StatusCode::CREATED, Json(device_json(&s, key))))
}

fn pending_code(s: &Shared, key: DevKey, id: &str) -> ApiResult<String> {
    let now = s.now_ms();
    s.world.peek(key, |st| {
        let code = st.and_then(|st| st.code);
        match code.map(|c| (c, c.status(now))) {
            Some((c, PairingCodeStatus::Pending)) => Ok(c.text()),
            other => Err(ApiError::new(409, "No pending pairing code")
                .detail("device_id", id)
                .detail(
                    "pairing_code_status",
                    other
                        .map(|(_, st)| st)
                        .unwrap_or(PairingCodeStatus::None)
                        .as_str(),
                )),
        }
    })
}

pub async fn claim(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let key = known(&s, &id)?;
    let code = pending_code(&s, key, &id)?;
    claim_code(&s, &code, Some(&id), None)?;
    Ok(Json(
        json!({"status": "claimed", "device_id": id, "pairing_code": code}),
    ))
}

pub async fn expire_code(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let key = known(&s, &id)?;
    let code = pending_code(&s, key, &id)?;
    s.world.with_device(key, |st| {
        if let Some(c) = st.code.as_mut() {
            c.replaced = true;
        }
    });
    Ok(Json(
        json!({"status": "expired", "device_id": id, "pairing_code": code}),
    ))
}

pub async fn reset(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let key = known(&s, &id)?;
    // Outstanding attestation tokens stay valid until they expire: the device's next step 6-8
    // then learns `409 Device is not claimed`, as it would if a merchant removed it mid-flow.
    // The nonces seen stay too: a captured attestation must not replay after a reset.
    s.world.with_device(key, |st| {
        let nonces = std::mem::take(&mut st.nonces);
        *st = Default::default();
        st.nonces = nonces;
    });
    Ok(Json(json!({"status": "inactive", "device_id": id})))
}

pub async fn get_faults(State(s): State<Arc<Shared>>) -> Json<FaultConfig> {
    Json(s.faults.get())
}

pub async fn put_faults(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult<Json<FaultConfig>> {
    let cfg: FaultConfig = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("Invalid fault configuration").detail("message", e.to_string())
    })?;
    cfg.validate()
        .map_err(|e| ApiError::bad_request("Invalid fault configuration").detail("message", e))?;
    s.faults.set(cfg, s.seed);
    Ok(Json(s.faults.get()))
}
