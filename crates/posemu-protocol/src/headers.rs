//! Device headers (spec 3.1, 3.2, 4.6): building them on the device, checking them in the sandbox.

use serde_json::{json, Map, Value};

pub const X_DEVICE_ID: &str = "X-Device-Id";
pub const USER_AGENT: &str = "User-Agent";
pub const X_CLIENT_TYPE: &str = "X-Client-Type";
pub const X_KEY_ID: &str = "X-Key-Id";
pub const X_TIMESTAMP: &str = "X-Timestamp";
pub const X_NONCE: &str = "X-Nonce";
pub const X_SIGNATURE: &str = "X-Signature";
pub const X_TRACE_ID: &str = "X-Trace-Id";
pub const AUTHORIZATION: &str = "Authorization";
pub const RETRY_AFTER: &str = "Retry-After";

/// The only accepted `X-Client-Type` value.
pub const CLIENT_TYPE_POS: &str = "pos";
/// Every device User-Agent starts with this.
pub const USER_AGENT_PREFIX: &str = "Viopay-POS/";
/// Scheme of the attestation `Authorization` header.
pub const ATTESTATION_SCHEME: &str = "Attestation";

/// `Viopay-POS/{version} ({OS}; {model})`.
pub fn user_agent(app_version: &str, os: &str, model: &str) -> String {
    format!("{USER_AGENT_PREFIX}{app_version} ({os}; {model})")
}

/// The app version of a device User-Agent, if it has the documented prefix and a version.
pub fn user_agent_version(ua: &str) -> Option<&str> {
    let rest = ua.strip_prefix(USER_AGENT_PREFIX)?;
    let version = rest.split([' ', '(']).next().unwrap_or("");
    (!version.is_empty()).then_some(version)
}

/// [POSEMU] `^POS-[0-9A-F]{8}$`.
pub fn is_valid_device_id(id: &str) -> bool {
    id.len() == 12
        && id.starts_with("POS-")
        && id[4..]
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
}

/// A header check failure: status, message and details, exactly as the spec's tables say.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderProblem {
    pub status: u16,
    pub message: String,
    pub details: Map<String, Value>,
}

impl HeaderProblem {
    fn new(status: u16, message: impl Into<String>) -> Self {
        HeaderProblem {
            status,
            message: message.into(),
            details: Map::new(),
        }
    }

    pub fn required(header: &str) -> Self {
        Self::new(400, format!("{header} header is required"))
    }

    pub fn invalid(header: &str) -> Self {
        Self::new(400, format!("{header} header is invalid"))
    }

    fn invalid_expected(header: &str, expected: &str) -> Self {
        let mut p = Self::invalid(header);
        p.details = json!({ "header": header, "expected": expected })
            .as_object()
            .cloned()
            .unwrap_or_default();
        p
    }
}

/// Checks the three device-identification headers in the spec's order (3.1). Absent headers
/// are `None`. Returns the device id on success.
pub fn check_device_headers<'a>(
    device_id: Option<&'a str>,
    user_agent: Option<&str>,
    client_type: Option<&str>,
) -> Result<&'a str, HeaderProblem> {
    let id = device_id.ok_or_else(|| HeaderProblem::required(X_DEVICE_ID))?;
    if !is_valid_device_id(id) {
        return Err(HeaderProblem::invalid_expected(
            X_DEVICE_ID,
            "POS-{8_HEX_CHARS}",
        ));
    }
    check_user_agent_and_client_type(user_agent, client_type)?;
    Ok(id)
}

/// Checks `User-Agent`, then `X-Client-Type`, as spec 3.1 does (payments reuse it, 7.2 row 3).
pub fn check_user_agent_and_client_type(
    user_agent: Option<&str>,
    client_type: Option<&str>,
) -> Result<(), HeaderProblem> {
    let ua = user_agent.ok_or_else(|| HeaderProblem::required(USER_AGENT))?;
    if user_agent_version(ua).is_none() {
        return Err(HeaderProblem::invalid_expected(
            USER_AGENT,
            "Viopay-POS/{version} ({OS}; {model})",
        ));
    }
    let ct = client_type.ok_or_else(|| HeaderProblem::required(X_CLIENT_TYPE))?;
    if ct != CLIENT_TYPE_POS {
        return Err(HeaderProblem::invalid_expected(
            X_CLIENT_TYPE,
            CLIENT_TYPE_POS,
        ));
    }
    Ok(())
}

/// Checks only `X-Device-Id` (attestation-authorised endpoints, spec 3.2).
pub fn check_device_id(device_id: Option<&str>) -> Result<&str, HeaderProblem> {
    let id = device_id.ok_or_else(|| HeaderProblem::required(X_DEVICE_ID))?;
    if !is_valid_device_id(id) {
        return Err(HeaderProblem::invalid_expected(
            X_DEVICE_ID,
            "POS-{8_HEX_CHARS}",
        ));
    }
    Ok(id)
}

/// The token of `Authorization: Attestation att_…`, if the header uses that scheme.
pub fn attestation_token(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    (scheme == ATTESTATION_SCHEME && !token.trim().is_empty()).then(|| token.trim())
}

/// The token of `Authorization: Bearer …`.
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("Bearer") && !token.trim().is_empty()).then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UA: &str = "Viopay-POS/1.4.2 (Android 12; PAX-A920)";

    #[test]
    fn builds_the_documented_user_agent() {
        assert_eq!(user_agent("1.4.2", "Android 12", "PAX-A920"), UA);
        assert_eq!(user_agent_version(UA), Some("1.4.2"));
        assert_eq!(user_agent_version("Viopay-POS/"), None);
        assert_eq!(user_agent_version("curl/8.0"), None);
    }

    #[test]
    fn device_id_must_be_uppercase_hex() {
        assert!(is_valid_device_id("POS-8F3A2C91"));
        for bad in [
            "POS-8f3a2c91",
            "POS-8F3A2C9",
            "POS-8F3A2C911",
            "XOS-8F3A2C91",
            "POS-8F3A2CG1",
            "",
        ] {
            assert!(!is_valid_device_id(bad), "{bad}");
        }
    }

    #[test]
    fn header_checks_run_in_the_spec_order() {
        let ok = check_device_headers(Some("POS-8F3A2C91"), Some(UA), Some("pos"));
        assert_eq!(ok, Ok("POS-8F3A2C91"));
        let e = check_device_headers(None, None, None).unwrap_err();
        assert_eq!(e.message, "X-Device-Id header is required");
        let e = check_device_headers(Some("pos-1"), None, None).unwrap_err();
        assert_eq!(e.message, "X-Device-Id header is invalid");
        assert_eq!(e.details["expected"], "POS-{8_HEX_CHARS}");
        let e = check_device_headers(Some("POS-8F3A2C91"), None, None).unwrap_err();
        assert_eq!(e.message, "User-Agent header is required");
        let e = check_device_headers(Some("POS-8F3A2C91"), Some("curl/8"), None).unwrap_err();
        assert_eq!(e.message, "User-Agent header is invalid");
        assert_eq!(e.details["header"], "User-Agent");
        let e = check_device_headers(Some("POS-8F3A2C91"), Some(UA), None).unwrap_err();
        assert_eq!(e.message, "X-Client-Type header is required");
        let e = check_device_headers(Some("POS-8F3A2C91"), Some(UA), Some("web")).unwrap_err();
        assert_eq!(e.message, "X-Client-Type header is invalid");
        assert_eq!(e.details["expected"], "pos");
        assert_eq!(e.status, 400);
    }

    #[test]
    fn parses_authorization_schemes() {
        assert_eq!(attestation_token(Some("Attestation att_x")), Some("att_x"));
        assert_eq!(attestation_token(Some("Bearer att_x")), None);
        assert_eq!(attestation_token(Some("Attestation ")), None);
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(None), None);
    }
}
