//! Payments (spec section 7): the POS HMAC signature, PIN blocks, cards, amounts, the
//! plaintext and answer types, and the request checks that both sides must agree on.
//!
//! Every [POSEMU] choice of section 7 that the device and the sandbox share lives here: the
//! string to sign ([`string_to_sign`], one function), header syntaxes, the test cards
//! ([`card::TEST_CARDS`]), the decline codes ([`wire::DeclineCode`]) and entry modes.

pub mod card;
pub mod money;
pub mod pinblock;
pub mod validate;
pub mod wire;

use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::attest;
use crate::crypto::{sha256_hex, Key};
use crate::envelope::{open, seal_single, Envelope};

pub use card::{brand_of, last4, luhn_ok, masked_pan, test_card, Brand, TestCard, TEST_CARDS};
pub use money::{format_major, parse_major, parse_minor, Money};
pub use wire::{
    Charge, ChargeRequest, ChargeStatus, DeclineCode, EntryMode, Refund, RefundReason,
    RefundRequest, SettleResponse,
};

pub const X_TERMINAL_ID: &str = "X-Terminal-Id";
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// Response header of an idempotent replay (spec 7.4), value `true`.
pub const IDEMPOTENT_REPLAYED: &str = "Idempotent-Replayed";

/// The payment paths (spec 7.1).
pub mod paths {
    pub const CHARGE: &str = "/pos/charge";
    /// Route templates, as the sandbox's router and fault rules name them.
    pub const REFUND_ROUTE: &str = "/pos/charge/{charge_id}/refund";
    pub const CANCEL_ROUTE: &str = "/pos/charge/{charge_id}/cancel";
    pub const REVERSE_ROUTE: &str = "/pos/charge/{charge_id}/reverse";

    /// The route template of a payment path (`/pos/charge/ch_x/cancel` → [`CANCEL_ROUTE`]).
    pub fn route_of(path: &str) -> Option<&'static str> {
        if path == CHARGE {
            return Some(CHARGE);
        }
        let rest = path.strip_prefix("/pos/charge/")?;
        let (id, verb) = rest.split_once('/')?;
        if id.is_empty() || id.contains('/') {
            return None;
        }
        match verb {
            "refund" => Some(REFUND_ROUTE),
            "cancel" => Some(CANCEL_ROUTE),
            "reverse" => Some(REVERSE_ROUTE),
            _ => None,
        }
    }

    pub fn refund(charge_id: &str) -> String {
        format!("/pos/charge/{charge_id}/refund")
    }

    pub fn cancel(charge_id: &str) -> String {
        format!("/pos/charge/{charge_id}/cancel")
    }

    /// The same operation as cancel (spec 7.9).
    pub fn reverse(charge_id: &str) -> String {
        format!("/pos/charge/{charge_id}/reverse")
    }

    /// Sandbox helpers (spec 7.12).
    pub const SANDBOX_SETTLE: &str = "/sandbox/settle";

    pub fn sandbox_charge(charge_id: &str) -> String {
        format!("/sandbox/charges/{charge_id}")
    }

    pub fn sandbox_terminal_charges(terminal_id: &str) -> String {
        format!("/sandbox/terminals/{terminal_id}/charges")
    }
}

/// The only method of the payment endpoints.
pub const METHOD: &str = "POST";
/// [POSEMU] request bodies above this answer 413 (spec 7.2 row 7).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// [POSEMU] `X-Timestamp` may be this far from server time in either direction, inclusive.
pub const TIMESTAMP_WINDOW_SECS: i64 = 300;
/// [POSEMU] how long a verified payment nonce is remembered per terminal (twice the window).
pub const NONCE_MEMORY_SECS: i64 = 600;
/// [POSEMU] how long an Idempotency-Key is kept per terminal.
pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
/// [POSEMU] the pattern of `X-Terminal-Id`, as error details write it.
pub const TERMINAL_ID_PATTERN: &str = "[A-Za-z0-9_-]{1,64}";
/// [POSEMU] the Idempotency-Key rule, as error details write it.
pub const IDEMPOTENCY_KEY_EXPECTED: &str = "1-255 visible ASCII characters";

/// [POSEMU] `^[A-Za-z0-9_-]{1,64}$`.
pub fn is_valid_terminal_id(tid: &str) -> bool {
    (1..=64).contains(&tid.len())
        && tid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// [POSEMU] 1–255 characters in 0x21–0x7E (an empty key is invalid, spec 7.14).
pub fn is_valid_idempotency_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| (0x21..=0x7E).contains(&b))
}

/// SHA-256 of the raw body bytes as sent, 64 lowercase hex digits (an empty body hashes to
/// `e3b0c442…b855`).
pub fn body_sha256(body: &[u8]) -> String {
    sha256_hex(body)
}

/// [POSEMU] The POS string to sign (spec 7.2): seven values joined by `\n`, no trailing
/// newline. The first four lines are the attest v1 string with the terminal id in place of
/// the device id; then the method, the path exactly as sent (no scheme, host or query), and
/// the body's lowercase SHA-256. Header values are used exactly as received.
pub fn string_to_sign(
    terminal_id: &str,
    key_id: &str,
    timestamp: &str,
    nonce: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> String {
    format!(
        "{}\n{method}\n{path}\n{}",
        attest::string_to_sign(terminal_id, key_id, timestamp, nonce),
        body_sha256(body)
    )
}

/// `v1=` + base64(HMAC-SHA256(MAC key, string to sign)).
pub fn sign(mac_key: &[u8], string_to_sign: &str) -> String {
    attest::sign_v1(mac_key, string_to_sign)
}

/// The 32 bytes of a well-formed `X-Signature`, else `None`.
pub fn parse_signature(header: &str) -> Option<[u8; 32]> {
    attest::parse_signature(header)
}

/// Constant-time check of a parsed signature.
pub fn verify(mac_key: &[u8], string_to_sign: &str, signature: &[u8; 32]) -> bool {
    attest::verify_v1(mac_key, string_to_sign, signature)
}

/// The signed headers of one payment request, in the order of spec 7.2, for the device side.
/// `nonce` must match `^[A-Za-z0-9]{12,64}$` and be fresh per request, retries included.
pub struct SignedRequest<'a> {
    pub terminal_id: &'a str,
    pub key_id: &'a str,
    pub timestamp: &'a str,
    pub nonce: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
}

impl SignedRequest<'_> {
    pub fn string_to_sign(&self) -> String {
        string_to_sign(
            self.terminal_id,
            self.key_id,
            self.timestamp,
            self.nonce,
            METHOD,
            self.path,
            self.body,
        )
    }

    /// `X-Terminal-Id`, `X-Key-Id`, `X-Timestamp`, `X-Nonce`, `X-Signature` (the caller adds
    /// `User-Agent`, `X-Client-Type: pos`, `Content-Type` and `Idempotency-Key`).
    pub fn headers(&self, mac_key: &[u8]) -> Vec<(&'static str, String)> {
        use crate::headers::{X_KEY_ID, X_NONCE, X_SIGNATURE, X_TIMESTAMP};
        vec![
            (X_TERMINAL_ID, self.terminal_id.to_string()),
            (X_KEY_ID, self.key_id.to_string()),
            (X_TIMESTAMP, self.timestamp.to_string()),
            (X_NONCE, self.nonce.to_string()),
            (X_SIGNATURE, sign(mac_key, &self.string_to_sign())),
        ]
    }
}

/// A lowercase UUID v4, the Idempotency-Key the device sends per payment attempt (spec 7.4).
pub fn new_idempotency_key(rng: &mut (impl RngCore + ?Sized)) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The body a device sends: the plaintext's JSON sealed under the MSK as one `TR31-DATA`
/// envelope with a fresh IV (spec 7.11). Sign exactly these bytes, and send exactly them.
pub fn seal_body<T: Serialize>(
    msk: &Key,
    plaintext: &T,
    rng: &mut (impl RngCore + ?Sized),
) -> Vec<u8> {
    let plain = serde_json::to_vec(plaintext).unwrap_or_default();
    serde_json::to_vec(&seal_single(msk, &plain, rng)).unwrap_or_default()
}

/// Opens a 200 answer (an envelope under the MSK) into its plaintext type: [`Charge`] for
/// charge and cancel, [`Refund`] for refund.
pub fn open_answer<T: DeserializeOwned>(msk: &Key, body: &[u8]) -> Result<T, String> {
    let env = Envelope::from_json(body).map_err(|e| e.to_string())?;
    let plain = open(msk, &env).map_err(|e| e.to_string())?;
    serde_json::from_slice(&plain).map_err(|e| format!("answer plaintext: {e}"))
}

#[cfg(test)]
mod vectors;
