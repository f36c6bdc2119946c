//! Extractors for the cross-cutting checks, so handlers stay short: device headers (spec 3.1),
//! attestation auth (3.2), and JSON bodies that fail as the Viopay envelope.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::error::ApiError;
use super::state::DevKey;
use super::Shared;
use posemu_protocol::headers::{
    attestation_token, check_device_headers, check_device_id, user_agent_version, AUTHORIZATION,
    USER_AGENT, X_CLIENT_TYPE, X_DEVICE_ID,
};
use posemu_protocol::version::is_below;
use posemu_protocol::wire::DeviceStatus;

pub fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap_or("\u{0}"))
}

/// A device identified by the three headers of spec 3.1 and known to the sandbox.
pub struct Device {
    pub key: DevKey,
    pub id: String,
}

fn check_version(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    if !shared.config.enforce_min_version {
        return Ok(());
    }
    let Some(v) = header(headers, USER_AGENT).and_then(user_agent_version) else {
        return Ok(());
    };
    let min = &shared.config.min_version;
    if is_below(v, min).unwrap_or(true) {
        return Err(ApiError::new(
            426,
            format!("POS app version {v} is below the minimum supported version {min}"),
        )
        .detail("min_supported_version", min.as_str()));
    }
    Ok(())
}

fn identify(shared: &Shared, headers: &HeaderMap) -> Result<Device, ApiError> {
    let id = check_device_headers(
        header(headers, X_DEVICE_ID),
        header(headers, USER_AGENT),
        header(headers, X_CLIENT_TYPE),
    )?;
    let key = shared
        .world
        .resolve(id)
        .ok_or_else(|| ApiError::device_not_found(id))?;
    Ok(Device {
        key,
        id: id.to_string(),
    })
}

impl FromRequestParts<Arc<Shared>> for Device {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        let d = identify(shared, &parts.headers)?;
        check_version(shared, &parts.headers)?;
        Ok(d)
    }
}

/// Like [`Device`] but never rejects an old app version: bootstrap is how a device learns it.
pub struct BootstrapDevice(pub Device);

impl FromRequestParts<Arc<Shared>> for BootstrapDevice {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        identify(shared, &parts.headers).map(BootstrapDevice)
    }
}

/// A device authorised by `Authorization: Attestation att_…` (spec 3.2).
pub struct Attested {
    pub key: DevKey,
    pub id: String,
}

impl FromRequestParts<Arc<Shared>> for Attested {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        let id = check_device_id(header(&parts.headers, X_DEVICE_ID))?.to_string();
        let token = attestation_token(header(&parts.headers, AUTHORIZATION))
            .ok_or_else(|| ApiError::new(401, "Attestation token is required"))?;
        let now = shared.now_ms();
        let bound = {
            let tokens = shared.world.tokens.lock();
            match tokens.get(token) {
                Some(t) if t.expires_ms > now => t.device,
                _ => {
                    return Err(ApiError::new(
                        401,
                        "Attestation token is invalid or expired",
                    ))
                }
            }
        };
        if shared.world.resolve(&id) != Some(bound) {
            return Err(ApiError::new(
                403,
                "Attestation token does not match device",
            ));
        }
        check_version(shared, &parts.headers)?;
        // A token outlives a reset of its device (like a merchant removing a terminal mid-flow):
        // steps 6-8 then answer as attest does for an unclaimed device.
        let status = shared
            .world
            .peek(bound, |st| st.map(|st| st.status()))
            .unwrap_or(DeviceStatus::Inactive);
        if status == DeviceStatus::Inactive {
            return Err(ApiError::new(409, "Device is not claimed")
                .detail("device_status", status.as_str()));
        }
        Ok(Attested { key: bound, id })
    }
}
