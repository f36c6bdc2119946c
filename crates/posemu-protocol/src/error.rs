//! The Viopay error envelope (spec section 2).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `{"error": {...}}`, the body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A 4-character string, see [`error_code_for_status`].
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Map<String, Value>>,
    #[serde(default)]
    pub trace_id: String,
}

impl ErrorEnvelope {
    pub fn new(status: u16, message: impl Into<String>, trace_id: impl Into<String>) -> Self {
        ErrorEnvelope {
            error: ErrorBody {
                code: error_code_for_status(status),
                message: message.into(),
                details: None,
                trace_id: trace_id.into(),
            },
        }
    }

    /// Adds `details`; an empty object is dropped ("omit it when there is nothing to say").
    pub fn with_details(mut self, details: Map<String, Value>) -> Self {
        self.error.details = (!details.is_empty()).then_some(details);
        self
    }
}

/// [POSEMU] first digit of the status, then `0`, then its last two digits: 404 → `4004`.
pub fn error_code_for_status(status: u16) -> String {
    format!("{}0{:02}", status / 100, status % 100)
}

/// [POSEMU] a trace id is 32 lowercase hex characters.
pub fn trace_id_from_bytes(bytes: [u8; 16]) -> String {
    hex::encode(bytes)
}

/// True if `s` is 32 lowercase hex characters.
pub fn is_valid_trace_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_rule_matches_the_spec_table() {
        for (status, code) in [
            (400, "4000"),
            (401, "4001"),
            (403, "4003"),
            (404, "4004"),
            (405, "4005"),
            (409, "4009"),
            (410, "4010"),
            (422, "4022"),
            (426, "4026"),
            (429, "4029"),
            (500, "5000"),
            (503, "5003"),
        ] {
            assert_eq!(error_code_for_status(status), code, "status {status}");
        }
    }

    #[test]
    fn envelope_serializes_as_documented_and_omits_empty_details() {
        let env = ErrorEnvelope::new(404, "Device not found", "ab".repeat(16));
        let v = serde_json::to_value(&env).unwrap();
        assert_eq!(v["error"]["code"], "4004");
        assert!(v["error"].get("details").is_none());
        let mut d = Map::new();
        d.insert("device_id".into(), "POS-UNKNOWN".into());
        let v = serde_json::to_value(env.with_details(d)).unwrap();
        assert_eq!(v["error"]["details"]["device_id"], "POS-UNKNOWN");
        assert!(is_valid_trace_id(v["error"]["trace_id"].as_str().unwrap()));
    }
}
