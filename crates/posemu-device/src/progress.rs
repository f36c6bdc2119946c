//! What a device remembers across restarts (issue 3, "saved progress"): enough to resume
//! (activated → ready; claimed → attest again; a still-valid pending code → keep polling it),
//! and what the ready screen shows. No key material: after a restart the device attests and
//! fetches its (unchanged) key set again, as a terminal without a secure element would.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use posemu_protocol::wire::DeviceStatus;

/// The file format version; a file of another version is moved aside, not misread.
pub const PROGRESS_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    pub version: u32,
    pub device_id: String,
    /// The server the progress belongs to: progress against one server means nothing to another.
    /// Shared with the device's config (a fleet's devices share one).
    pub server: Arc<str>,
    pub status: DeviceStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_code: Option<SavedCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_set: Option<Box<SavedKeySet>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_name: Option<String>,
    /// The decrypted config (spec 4.9), as the server sent it. Boxed, as `parameters`: a
    /// device that is not activated has neither, and a fleet holds many of those.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Box<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Box<SavedParameters>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<String>,
}

impl Progress {
    pub fn new(device_id: &str, server: impl Into<Arc<str>>) -> Progress {
        Progress {
            version: PROGRESS_VERSION,
            device_id: device_id.to_string(),
            server: server.into(),
            status: DeviceStatus::Inactive,
            pending_code: None,
            key_set: None,
            terminal_id: None,
            merchant_name: None,
            config: None,
            parameters: None,
            activated_at: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedCode {
    pub code: String,
    /// Device wall-clock time (Unix ms) at which the code expires.
    pub expires_at_ms: i64,
}

/// The key set by id and check values only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedKeySet {
    pub key_set_id: String,
    pub expires_at: String,
    /// `(name, kcv)` of each key, top-down: tmk, kek, msk, tpk, tdk, mac.
    pub kcvs: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedParameters {
    pub sha256_hex: String,
    pub bytes: usize,
}
