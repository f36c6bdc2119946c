//! Request and response bodies of every endpoint (spec section 4).
//!
//! Answers are read leniently: a field the device side does not need carries
//! `#[serde(default)]`, so a server that sends fewer (or more) fields still works (spec 5: a
//! client reads no field it does not need). Serializing (the sandbox) is unchanged.

use serde::{Deserialize, Serialize};

pub mod paths {
    pub const BOOTSTRAP: &str = "/pos/bootstrap";
    pub const PAIRING_CODE: &str = "/pos/pairing-code";
    pub const STATUS: &str = "/pos/status";
    pub const CLAIM: &str = "/pos/claim";
    pub const ATTEST: &str = "/pos/attest";
    pub const KEYS: &str = "/pos/keys";
    pub const CONFIG: &str = "/pos/config";
    pub const TERMINAL_PARAMETERS: &str = "/pos/terminal-parameters";
    pub const ACTIVATE: &str = "/pos/activate";
    pub const CLIENT_SESSION: &str = "/client/session";
    pub const AUTH_TOKEN: &str = "/auth/token";
    pub const SESSION_INITIATE: &str = "/session/initiate";
    pub const HEALTH: &str = "/health/live";
    pub const PORTAL: &str = "/portal";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    Inactive,
    Claimed,
    Activated,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Inactive => "inactive",
            DeviceStatus::Claimed => "claimed",
            DeviceStatus::Activated => "activated",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairingCodeStatus {
    None,
    Pending,
    Used,
    Expired,
}

impl PairingCodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PairingCodeStatus::None => "none",
            PairingCodeStatus::Pending => "pending",
            PairingCodeStatus::Used => "used",
            PairingCodeStatus::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootstrapResponse {
    #[serde(default)]
    pub status: String,
    pub server_time: String,
    pub min_supported_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairingCodeResponse {
    pub pairing_code: String,
    pub expires_in_sec: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// Only read once claimed (activated or not); `is_claimed` decides.
    #[serde(default = "inactive")]
    pub device_status: DeviceStatus,
    pub is_claimed: bool,
    pub pairing_code_status: PairingCodeStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimRequest {
    pub pairing_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimResponse {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub device_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientSessionRequest {
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientSessionResponse {
    pub access_token: String,
    #[serde(default)]
    pub token_type: String,
    /// Missing: the documented 300 s.
    #[serde(default = "merchant_ttl")]
    pub expires_in: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInitiateRequest {
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInitiateResponse {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub merchant_id: String,
    #[serde(default)]
    pub merchant_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttestResponse {
    #[serde(default)]
    pub status: String,
    pub attestation_token: String,
    /// Missing: the documented 300 s.
    #[serde(default = "attestation_ttl")]
    pub expires_in_sec: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeySetInfo {
    pub key_set_id: String,
    #[serde(default)]
    pub issued_at: String,
    #[serde(default)]
    pub expires_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transport {
    pub format: String,
    pub version: String,
    pub encryption: String,
    pub wrapped_under: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WrappedKey {
    #[serde(default)]
    pub key_id: String,
    pub key_block: String,
    /// The TR-31 header inside `key_block` is what the device checks.
    #[serde(default)]
    pub usage: String,
    #[serde(default)]
    pub wrapped_under: String,
    pub kcv: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WrappedKeys {
    pub tmk: WrappedKey,
    pub kek: WrappedKey,
    pub msk: WrappedKey,
    pub tpk: WrappedKey,
    pub tdk: WrappedKey,
    pub mac: WrappedKey,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeysResponse {
    pub key_set: KeySetInfo,
    #[serde(default)]
    pub transport: Transport,
    pub keys: WrappedKeys,
}

/// Plaintext of the activate request (spec 4.11). Unknown fields are ignored, as the Go
/// backend's decoder does; the three flags are required booleans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationChecks {
    pub emv_ready: bool,
    pub keys_installed: bool,
    pub network_ok: bool,
}

impl ActivationChecks {
    pub const ALL_OK: ActivationChecks = ActivationChecks {
        emv_ready: true,
        keys_installed: true,
        network_ok: true,
    };

    /// Names of the flags that are false, in the documented order.
    pub fn failed(&self) -> Vec<&'static str> {
        [
            ("emv_ready", self.emv_ready),
            ("keys_installed", self.keys_installed),
            ("network_ok", self.network_ok),
        ]
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| n)
        .collect()
    }
}

/// Plaintext of the activate answer (spec 4.11).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationResult {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub device_id: String,
    /// Missing: the device keeps the one its config gave.
    #[serde(default)]
    pub terminal_id: String,
    pub activated_at: String,
}

/// The parts of the decrypted config (spec 4.9) that the device uses; the rest is kept as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSummary {
    pub terminal_id: String,
    #[serde(default)]
    pub device_id: Option<String>,
    /// Shown on the ready screen; missing reads as no name.
    #[serde(default)]
    pub merchant: MerchantSummary,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MerchantSummary {
    #[serde(default)]
    pub merchant_id: Option<String>,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthResponse {
    pub status: String,
}

fn inactive() -> DeviceStatus {
    DeviceStatus::Inactive
}

fn attestation_ttl() -> u64 {
    crate::rules::ATTESTATION_TTL_SECS
}

fn merchant_ttl() -> u64 {
    crate::rules::MERCHANT_TOKEN_TTL_SECS
}
