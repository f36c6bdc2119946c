//! Endpoints behind attestation auth: keys, config, terminal parameters, activate.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use rand::{RngCore, SeedableRng};
use serde_json::{json, Value};

use super::super::error::{ApiError, ApiResult};
use super::super::extract::Attested;
use super::super::state::{DevKey, KeySet};
use super::super::{params, Shared};
use posemu_protocol::clock::rfc3339;
use posemu_protocol::crypto::{kcv, Key};
use posemu_protocol::envelope::{open, seal_gzipped, seal_single, Envelope};
use posemu_protocol::rules::KEY_SET_LIFETIME_DAYS;
use posemu_protocol::tr31::{wrap, Header};
use posemu_protocol::wire::{
    ActivationChecks, ActivationResult, DeviceStatus, KeySetInfo, KeysResponse, Transport,
    WrappedKey, WrappedKeys,
};

pub use super::super::payments::terminals::terminal_id;

fn new_key_set(s: &Shared, device: DevKey, now: DateTime<Utc>) -> KeySet {
    let zmk = s.world.identity(device).zmk;
    let mut rng = s.rng.lock();
    let mut fresh = || -> Key {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        k
    };
    let (tmk, kek, msk, tpk, tdk, mac) = (fresh(), fresh(), fresh(), fresh(), fresh(), fresh());
    let mut id = |prefix: &str| {
        let mut b = [0u8; 4];
        rng.fill_bytes(&mut b);
        format!("{prefix}-{}", hex::encode(b))
    };
    let ids = [
        id("tmk"),
        id("kek"),
        id("msk"),
        id("tpk"),
        id("tdk"),
        id("hmac-key"),
        id("ks"),
    ];
    let mut entry =
        |i: usize, kbpk: &Key, header: Header, key: &Key, usage: &str, under: &str| WrappedKey {
            key_id: ids[i].clone(),
            key_block: base64_of(&wrap(kbpk, header, key, &mut *rng)),
            usage: usage.into(),
            wrapped_under: under.into(),
            kcv: kcv(key),
        };
    let keys = WrappedKeys {
        tmk: entry(
            0,
            &zmk,
            Header::KEY_ENCRYPTION,
            &tmk,
            "key-encryption",
            "zmk",
        ),
        kek: entry(
            1,
            &tmk,
            Header::KEY_ENCRYPTION,
            &kek,
            "key-encryption",
            "tmk",
        ),
        msk: entry(
            2,
            &kek,
            Header::DATA_ENCRYPTION,
            &msk,
            "data-encryption",
            "kek",
        ),
        tpk: entry(
            3,
            &kek,
            Header::PIN_ENCRYPTION,
            &tpk,
            "pin-encryption",
            "kek",
        ),
        tdk: entry(
            4,
            &kek,
            Header::DATA_ENCRYPTION,
            &tdk,
            "data-encryption",
            "kek",
        ),
        mac: entry(5, &kek, Header::MAC, &mac, "mac", "kek"),
    };
    let expires = now + Duration::days(KEY_SET_LIFETIME_DAYS);
    KeySet {
        response: KeysResponse {
            key_set: KeySetInfo {
                key_set_id: ids[6].clone(),
                issued_at: rfc3339(now),
                expires_at: rfc3339(expires),
            },
            transport: Transport {
                format: "TR31".into(),
                version: "D".into(),
                encryption: "AES-256".into(),
                wrapped_under: "kek".into(),
            },
            keys,
        },
        msk,
        mac,
        tpk,
        expires_ms: expires.timestamp_millis(),
    }
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

pub async fn keys(State(s): State<Arc<Shared>>, a: Attested) -> Json<KeysResponse> {
    let now = s.config.clock.now();
    let now_ms = now.timestamp_millis();
    let existing = s.world.peek(a.key, |st| {
        st.and_then(|st| st.keys.as_ref())
            .filter(|k| k.expires_ms > now_ms)
            .map(|k| k.response.clone())
    });
    if let Some(r) = existing {
        return Json(r);
    }
    // a device with keys can pay: its terminal id must resolve (spec 7.2 row 4)
    s.payments.terminals.note(a.key, &a.id);
    // Generated outside the shard lock; if two requests race, the first stored set wins.
    let set = new_key_set(&s, a.key, now);
    Json(s.world.with_device(a.key, |st| {
        if st.keys.as_ref().is_none_or(|k| k.expires_ms <= now_ms) {
            st.keys = Some(Box::new(set));
        }
        st.keys
            .as_ref()
            .map(|k| k.response.clone())
            .expect("just stored")
    }))
}

/// The device's MSK, or 409 `Keys not issued`.
fn msk(s: &Shared, key: DevKey) -> ApiResult<Key> {
    s.world
        .peek(key, |st| st.and_then(|st| st.keys.as_ref()).map(|k| k.msk))
        .ok_or_else(|| ApiError::new(409, "Keys not issued"))
}

pub fn config_json(s: &Shared, a: &Attested) -> Value {
    config_for(s, a.key, &a.id)
}

/// The config of spec 4.9 for a device (payments read its currency, tips and PIN limits).
pub fn config_for(s: &Shared, key: DevKey, device_id: &str) -> Value {
    let ident = s.world.identity(key);
    let merchants = s.world.merchants.read();
    let (merchant_id, name) = merchants
        .get(ident.merchant)
        .map(|m| (m.id.as_str(), m.name.as_str()))
        .unwrap_or_default();
    json!({
        "terminal_id": terminal_id(device_id),
        "device_id": device_id,
        "merchant": {
            "merchant_id": merchant_id, "name": name,
            "tip_info": {"enabled": true, "percentages": [10, 15, 20]},
            "tax_info": {"name": "VAT", "rate_bps": 1900},
            "surcharge_info": {"enabled": false, "rate_bps": 0}
        },
        "location": {"name": "Flagship Store", "address": "Friedrichstraße 123", "city": "Berlin", "country": "DE", "timezone": "Europe/Berlin"},
        "emv": {"aids": ["A0000000031010", "A0000000041010"], "terminal_capabilities": "E0F8C8",
                "terminal_type": "22", "country_code": "0276", "currency": "EUR"},
        "security": {"pin_required_above_minor": 5000, "contactless_limit_minor": 5000, "fallback_allowed": false},
        "branding": {"theme": "light", "logo_url": "https://cdn.viopay.io/merchants/demo/logo.png"},
        "intervals": {"heartbeat_sec": 300, "update_check_sec": 3600}
    })
}

pub async fn config(State(s): State<Arc<Shared>>, a: Attested) -> ApiResult<Json<Value>> {
    let msk = msk(&s, a.key)?;
    let plain = config_json(&s, &a).to_string();
    let env = seal_single(&msk, plain.as_bytes(), &mut *s.rng.lock());
    Ok(Json(serde_json::to_value(env).unwrap_or_default()))
}

pub async fn terminal_parameters(
    State(s): State<Arc<Shared>>,
    a: Attested,
) -> ApiResult<Json<Value>> {
    let msk = msk(&s, a.key)?;
    let gz = params::gzipped_for_device(&a.id, &terminal_id(&a.id));
    // a request's own rng, so the shared lock is not held through the AES of ~20 KB
    let mut rng = rand::rngs::StdRng::seed_from_u64(s.rng.lock().next_u64());
    let env = seal_gzipped(&msk, &gz, &mut rng);
    Ok(Json(serde_json::to_value(env).unwrap_or_default()))
}

pub async fn activate(
    State(s): State<Arc<Shared>>,
    a: Attested,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let msk = msk(&s, a.key)?;
    let env = Envelope::from_json(&body)
        .map_err(|_| ApiError::bad_request("Envelope could not be decrypted"))?;
    let plain = open(&msk, &env).map_err(|e| match e {
        posemu_protocol::envelope::EnvelopeError::Kcv { .. } => {
            ApiError::bad_request("key_kcv does not match MSK")
        }
        _ => ApiError::bad_request("Envelope could not be decrypted"),
    })?;
    let checks: ActivationChecks = serde_json::from_slice(&plain)
        .map_err(|_| ApiError::bad_request("Invalid request body"))?;
    let failed = checks.failed();
    if !failed.is_empty() {
        return Err(ApiError::new(422, "Activation checks failed").detail("failed", failed));
    }
    let now = s.config.clock.now();
    let activated_at = s.world.with_device(a.key, |st| match st.status() {
        DeviceStatus::Inactive => Err(ApiError::new(409, "Device is not claimed")
            .detail("device_status", DeviceStatus::Inactive.as_str())),
        _ => {
            let at = *st.activated_at.get_or_insert(now.timestamp());
            st.status = Some(DeviceStatus::Activated);
            Ok(at)
        }
    })?;
    let result = ActivationResult {
        status: "activated".into(),
        device_id: a.id.clone(),
        terminal_id: terminal_id(&a.id),
        activated_at: rfc3339(DateTime::from_timestamp(activated_at, 0).unwrap_or(now)),
    };
    let plain = serde_json::to_vec(&result).unwrap_or_default();
    let env = seal_single(&msk, &plain, &mut *s.rng.lock());
    Ok(Json(serde_json::to_value(env).unwrap_or_default()))
}
