//! Merchant session tokens: JWT HS256 signed with a per-run secret (spec 4.5).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde::{Deserialize, Serialize};

use posemu_protocol::crypto::{hmac_sha256, hmac_sha256_verify};
use posemu_protocol::rules::JWT_ISSUER;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub merchant_id: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    /// A unique id, so two sessions opened in the same second are two tokens (and one of them
    /// can be initiated without the other).
    #[serde(default)]
    pub jti: String,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

pub fn sign(secret: &[u8], claims: &Claims) -> String {
    let head = B64URL.encode(HEADER);
    let body = B64URL.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let mac = hmac_sha256(secret, format!("{head}.{body}").as_bytes());
    format!("{head}.{body}.{}", B64URL.encode(mac))
}

/// The claims of a token signed by `secret`, issued by the sandbox and not expired at `now`.
pub fn verify(secret: &[u8], token: &str, now: i64) -> Option<Claims> {
    let mut parts = token.split('.');
    let (head, body, sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: serde_json::Value = serde_json::from_slice(&B64URL.decode(head).ok()?).ok()?;
    if header.get("alg")?.as_str()? != "HS256" {
        return None;
    }
    let sig = B64URL.decode(sig).ok()?;
    if !hmac_sha256_verify(secret, format!("{head}.{body}").as_bytes(), &sig) {
        return None;
    }
    let claims: Claims = serde_json::from_slice(&B64URL.decode(body).ok()?).ok()?;
    (claims.iss == JWT_ISSUER && now < claims.exp).then_some(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "demo-merchant".into(),
            merchant_id: "m".into(),
            iat: 0,
            exp,
            iss: JWT_ISSUER.into(),
            jti: "j1".into(),
        }
    }

    #[test]
    fn round_trip_expiry_and_tampering() {
        let t = sign(b"k", &claims(100));
        assert_eq!(verify(b"k", &t, 99), Some(claims(100)));
        assert_eq!(verify(b"k", &t, 100), None, "expired");
        assert_eq!(verify(b"other", &t, 0), None, "other secret");
        let mut bad = t.clone().into_bytes();
        let i = t.find('.').unwrap() + 3;
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(verify(b"k", std::str::from_utf8(&bad).unwrap(), 0), None);
        assert_eq!(verify(b"k", "a.b", 0), None);
        assert_eq!(verify(b"k", "", 0), None);
    }
}
