//! Every [POSEMU] number of the spec in one place, so a user can see them (README lists them).

/// Pairing-code alphabet: uppercase, no `0 O 1 I` (spec 4.2).
pub const CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// [POSEMU] A code as a person typed it matches after dropping white space and dashes (any
/// Unicode dash, as the portal does) and upper-casing.
pub fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '\u{2010}'..='\u{2015}' | '\u{2212}'))
        .flat_map(char::to_uppercase)
        .collect()
}

/// Whether `code` is exactly what a server may issue: 6 characters of [`CODE_ALPHABET`].
pub fn is_valid_code(code: &str) -> bool {
    code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b))
}
/// Pairing-code length (spec 4.2, DOC).
pub const CODE_LEN: usize = 6;
/// Default pairing-code lifetime in seconds (spec 4.2, DOC).
pub const CODE_TTL_SECS: u64 = 300;
/// Attestation-token lifetime in seconds (spec 4.6, DOC).
pub const ATTESTATION_TTL_SECS: u64 = 300;
/// Merchant session token lifetime in seconds (spec 4.5).
pub const MERCHANT_TOKEN_TTL_SECS: u64 = 300;
/// How far `X-Timestamp` may lag behind server time (spec 4.6, DOC).
pub const TIMESTAMP_MAX_BEHIND_SECS: i64 = 300;
/// How far `X-Timestamp` may run ahead of server time (spec 4.6, DOC).
pub const TIMESTAMP_MAX_AHEAD_SECS: i64 = 60;
/// How long a verified nonce is remembered per device (spec 4.6).
pub const NONCE_MEMORY_SECS: u64 = 600;
/// Nonce length bounds; nonces are ASCII alphanumerics (spec 4.6).
pub const NONCE_MIN_LEN: usize = 12;
pub const NONCE_MAX_LEN: usize = 64;
/// Attestation token: `att_` + this many base62 characters (spec 4.6).
pub const ATTESTATION_TOKEN_RANDOM_LEN: usize = 24;
/// Gzip bytes per chunk of a `TR31-DATA-CHUNKED` envelope (spec 4.8).
pub const ENVELOPE_CHUNK_BYTES: usize = 8192;
/// Default minimum supported app version (spec 4.1).
pub const DEFAULT_MIN_VERSION: &str = "1.3.5";
/// Key-set lifetime in days (spec 4.7).
pub const KEY_SET_LIFETIME_DAYS: i64 = 365;
/// Identity key id of derived fleet devices (spec 5).
pub const FLEET_IDENTITY_KEY_ID: &str = "device-id-key-2025-01";
/// Default fleet prefix (spec 5).
pub const DEFAULT_FLEET_PREFIX: &str = "F0";

/// Poll interval bounds in seconds and the default (spec 4.3).
pub const POLL_MIN_SECS: u64 = 3;
pub const POLL_MAX_SECS: u64 = 5;
pub const POLL_DEFAULT_SECS: u64 = 3;
/// Added to the poll interval after a 429 (spec 4.3, like RFC 8628 `slow_down`).
pub const SLOW_DOWN_SECS: u64 = 5;
/// Backoff with full jitter on network errors, timeouts and 5xx (spec 4.3).
pub const BACKOFF_BASE_MS: u64 = 1_000;
pub const BACKOFF_CAP_MS: u64 = 30_000;

/// Default sandbox merchant (spec 4.5).
pub const DEMO_MERCHANT_ID: &str = "550e8400-e29b-41d4-a716-446655440000";
pub const DEMO_MERCHANT_NAME: &str = "Demo Merchant";
pub const DEMO_CLIENT_ID: &str = "demo-merchant";
pub const DEMO_CLIENT_SECRET: &str = "demo-secret";
/// `iss` claim of sandbox merchant JWTs (spec 4.5).
pub const JWT_ISSUER: &str = "posemu-sandbox";
