//! The merchant side: client session (JWT), session initiation, claim (spec 4.4, 4.5).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::super::error::{ApiError, ApiResult};
use super::super::extract::header;
use super::super::jwt::{self, Claims};
use super::super::state::{DevKey, MerchantIdx, MAX_INITIATED_SESSIONS};
use super::super::Shared;
use posemu_protocol::headers::{bearer_token, AUTHORIZATION};
use posemu_protocol::rules::JWT_ISSUER;
use posemu_protocol::wire::{
    ClaimResponse, ClientSessionRequest, ClientSessionResponse, DeviceStatus, PairingCodeStatus,
    SessionInitiateResponse,
};

pub async fn client_session(
    State(s): State<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<Json<ClientSessionResponse>> {
    let req: ClientSessionRequest =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("Invalid request body"))?;
    let merchant = s
        .world
        .merchants
        .read()
        .iter()
        .find(|m| {
            m.credentials.as_ref().is_some_and(|(id, secret)| {
                // Both compared in constant time (for equal lengths), both always compared.
                let id_ok = id.as_bytes().ct_eq(req.client_id.as_bytes());
                let secret_ok = secret.as_bytes().ct_eq(req.client_secret.as_bytes());
                bool::from(id_ok & secret_ok)
            })
        })
        .map(|m| m.id.clone())
        .ok_or_else(|| ApiError::new(401, "Invalid client credentials"))?;
    let now = s.config.clock.now().timestamp();
    let ttl = s
        .config
        .merchant_token_ttl
        .unwrap_or(s.config.token_ttl)
        .as_secs();
    let claims = Claims {
        sub: req.client_id,
        merchant_id: merchant,
        iat: now,
        exp: now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
        iss: JWT_ISSUER.into(),
        jti: {
            let mut b = [0u8; 12];
            rand::RngCore::fill_bytes(&mut *s.rng.lock(), &mut b);
            hex::encode(b)
        },
    };
    Ok(Json(ClientSessionResponse {
        access_token: jwt::sign(&s.jwt_secret, &claims),
        token_type: "Bearer".into(),
        expires_in: ttl,
    }))
}

/// The claims of a valid, unexpired Bearer token (401 otherwise).
fn merchant_claims(s: &Shared, h: &HeaderMap) -> ApiResult<(Claims, u64)> {
    let token = bearer_token(header(h, AUTHORIZATION))
        .ok_or_else(|| ApiError::new(401, "Authorization token is required"))?;
    let claims = jwt::verify(&s.jwt_secret, token, s.config.clock.now().timestamp())
        .ok_or_else(|| ApiError::new(401, "Authorization token is invalid or expired"))?;
    Ok((claims, s.world.hash(token)))
}

pub async fn session_initiate(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<SessionInitiateResponse>> {
    let (claims, token_hash) = merchant_claims(&s, &h)?;
    let v: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("Invalid request body"))?;
    if v.get("host")
        .and_then(Value::as_str)
        .is_none_or(|h| h.trim().is_empty())
    {
        return Err(
            ApiError::bad_request("Invalid request body").detail("message", "host is required")
        );
    }
    let name = {
        let merchants = s.world.merchants.read();
        merchants
            .find(&claims.merchant_id)
            .and_then(|i| merchants.get(i))
            .map(|m| m.name.clone())
            .unwrap_or_default()
    };
    let now_ms = s.now_ms();
    let expires_ms = claims.exp.saturating_mul(1000);
    if !s
        .world
        .initiated
        .lock()
        .insert(token_hash, expires_ms, now_ms)
    {
        return Err(ApiError::new(429, "Too many merchant sessions")
            .detail("max_sessions", MAX_INITIATED_SESSIONS)
            .retry_after(60));
    }
    Ok(Json(SessionInitiateResponse {
        status: "ok".into(),
        merchant_id: claims.merchant_id,
        merchant_name: name,
    }))
}

pub async fn claim(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<ClaimResponse>> {
    let v: Value = serde_json::from_slice(&body).map_err(|_| ApiError::invalid_claim_body())?;
    let code = v
        .get("pairing_code")
        .and_then(Value::as_str)
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(ApiError::invalid_claim_body)?;
    let device_id = match v.get("device_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(d.as_str()),
        Some(_) => return Err(ApiError::invalid_claim_body()),
    };
    let (claims, token_hash) = merchant_claims(&s, &h)?;
    if !s.world.initiated.lock().contains(token_hash, s.now_ms()) {
        return Err(ApiError::new(403, "Session not initiated"));
    }
    let merchant = s
        .world
        .merchants
        .read()
        .find(&claims.merchant_id)
        .ok_or_else(|| ApiError::new(403, "Device does not belong to merchant"))?;
    let id = claim_code(
        &s,
        &posemu_protocol::rules::normalize_code(code),
        device_id,
        Some(merchant),
    )?;
    Ok(Json(ClaimResponse {
        status: "claimed".into(),
        device_id: id,
    }))
}

/// Claims `code` atomically: of concurrent claims exactly one wins. `merchant` None = any
/// (the sandbox helper claims as the device's own merchant).
pub fn claim_code(
    s: &Shared,
    code: &str,
    device_id: Option<&str>,
    merchant: Option<MerchantIdx>,
) -> ApiResult<String> {
    let chars: [u8; 6] = code
        .as_bytes()
        .try_into()
        .map_err(|_| ApiError::new(404, "Pairing code not found"))?;
    let codes = s.world.codes.lock();
    let key: DevKey = codes
        .get(&chars)
        .ok_or_else(|| ApiError::new(404, "Pairing code not found"))?;
    let now = s.now_ms();
    let ident = s.world.identity(key);
    s.world.with_device(key, |st| {
        let current = st.code.filter(|c| c.chars == chars);
        match current.map(|c| c.status(now)) {
            None | Some(PairingCodeStatus::Expired) | Some(PairingCodeStatus::None) => {
                return Err(ApiError::new(410, "Pairing code expired"))
            }
            Some(PairingCodeStatus::Used) => {
                return Err(ApiError::new(409, "Pairing code already used"))
            }
            Some(PairingCodeStatus::Pending) => {}
        }
        if device_id.is_some_and(|d| d != ident.id) {
            return Err(ApiError::bad_request(
                "device_id does not match pairing code",
            ));
        }
        if merchant.is_some_and(|m| m != ident.merchant) {
            return Err(ApiError::new(403, "Device does not belong to merchant"));
        }
        if let Some(c) = st.code.as_mut() {
            c.used = true;
        }
        st.status = Some(DeviceStatus::Claimed);
        Ok(ident.id.clone())
    })
}

#[cfg(test)]
mod tests {
    use posemu_protocol::rules::normalize_code;

    #[test]
    fn codes_are_normalised() {
        assert_eq!(normalize_code(" k7m-3np "), "K7M3NP");
        assert_eq!(normalize_code("K7 M3 NP"), "K7M3NP");
        assert_eq!(normalize_code("k7m\u{2013}3np"), "K7M3NP");
    }
}
