//! The attestation signature `v1` (spec 4.6).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::crypto::{hmac_sha256, hmac_sha256_verify};
use super::rules::{NONCE_MAX_LEN, NONCE_MIN_LEN};

/// `{device_id}\n{key_id}\n{timestamp}\n{nonce}`, no trailing newline.
pub fn string_to_sign(device_id: &str, key_id: &str, timestamp: &str, nonce: &str) -> String {
    format!("{device_id}\n{key_id}\n{timestamp}\n{nonce}")
}

/// `v1=` + base64(HMAC-SHA256(secret, string_to_sign)).
pub fn sign_v1(secret: &[u8], string_to_sign: &str) -> String {
    format!(
        "v1={}",
        B64.encode(hmac_sha256(secret, string_to_sign.as_bytes()))
    )
}

/// The 32 signature bytes of a well-formed `v1=` header value, else `None`.
pub fn parse_signature(header: &str) -> Option<[u8; 32]> {
    let b = B64.decode(header.strip_prefix("v1=")?).ok()?;
    b.try_into().ok()
}

/// Constant-time verification of a parsed signature.
pub fn verify_v1(secret: &[u8], string_to_sign: &str, signature: &[u8; 32]) -> bool {
    hmac_sha256_verify(secret, string_to_sign.as_bytes(), signature)
}

/// [POSEMU] `^[A-Za-z0-9]{12,64}$`.
pub fn is_valid_nonce(nonce: &str) -> bool {
    (NONCE_MIN_LEN..=NONCE_MAX_LEN).contains(&nonce.len())
        && nonce.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vector() {
        let secret = hex::decode("8F3A2C91".repeat(8)).unwrap();
        let s = string_to_sign(
            "POS-8F3A2C91",
            "device-id-key-2025-01",
            "2025-12-13T14:25:30Z",
            "a1b2c3d4e5f6",
        );
        let sig = sign_v1(&secret, &s);
        assert_eq!(sig, "v1=2eaNW/3HmGdxawjPRmD3Iq3v1sC6qHHh+7+wOdvWPHg=");
        let parsed = parse_signature(&sig).unwrap();
        assert!(verify_v1(&secret, &s, &parsed));
        assert!(!verify_v1(&secret, &format!("{s}x"), &parsed));
    }

    #[test]
    fn malformed_signatures_and_nonces() {
        assert!(parse_signature("v2=abc").is_none());
        assert!(parse_signature("v1=!!!").is_none());
        assert!(parse_signature("v1=YWJj").is_none()); // 3 bytes
        assert!(is_valid_nonce("a1b2c3d4e5f6"));
        assert!(!is_valid_nonce("a1b2c3d4e5f"));
        assert!(!is_valid_nonce("a1b2c3d4e5f-"));
        assert!(!is_valid_nonce(&"a".repeat(65)));
    }
}
