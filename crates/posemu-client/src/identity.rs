//! Who the device is on the wire: its id, User-Agent, identity key id and identity secret.

use std::fmt;

use reqwest::header::HeaderValue;

use posemu_protocol::api::Secret;
use posemu_protocol::crypto::Key;
use posemu_protocol::headers::is_valid_device_id;
use posemu_protocol::provision::derive_identity_secret;
use posemu_protocol::rules::FLEET_IDENTITY_KEY_ID;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("device id {0:?} is not \"POS-\" and 8 uppercase hex digits")]
    DeviceId(String),
    #[error("{field} {value:?} cannot be sent as an HTTP header value (visible ASCII only)")]
    HeaderValue { field: &'static str, value: String },
}

/// A device's identity, ready to stamp on requests.
///
/// Header values are kept pre-validated as [`HeaderValue`]s: cloning one shares its bytes, so
/// a fleet whose devices share a User-Agent and key id pays for them once
/// (see [`DeviceIdentity::derived_with`]).
#[derive(Clone)]
pub struct DeviceIdentity {
    device_id: HeaderValue,
    shared: SharedHeaders,
    secret: Secret<Key>,
}

/// A User-Agent and key id, held once for every device that has the same (a fleet's derived
/// devices): a device keeps a pointer to them, not two header values of its own (72 bytes less
/// per device).
#[derive(Clone)]
pub struct SharedHeaders(std::sync::Arc<[HeaderValue; 2]>);

impl SharedHeaders {
    pub fn new(user_agent: HeaderValue, key_id: HeaderValue) -> SharedHeaders {
        SharedHeaders(std::sync::Arc::new([user_agent, key_id]))
    }

    /// A fleet's derived devices: their User-Agent and the fleet identity key id (spec 5).
    pub fn fleet(user_agent: HeaderValue) -> SharedHeaders {
        SharedHeaders::new(user_agent, HeaderValue::from_static(FLEET_IDENTITY_KEY_ID))
    }

    pub fn user_agent(&self) -> &HeaderValue {
        &self.0[0]
    }

    pub fn key_id(&self) -> &HeaderValue {
        &self.0[1]
    }
}

fn header_value(field: &'static str, value: &str) -> Result<HeaderValue, IdentityError> {
    HeaderValue::from_str(value).map_err(|_| IdentityError::HeaderValue {
        field,
        value: value.to_string(),
    })
}

impl DeviceIdentity {
    pub fn new(
        device_id: &str,
        user_agent: &str,
        key_id: &str,
        identity_secret: Key,
    ) -> Result<Self, IdentityError> {
        Self::with_shared(
            device_id,
            SharedHeaders::new(
                header_value("User-Agent", user_agent)?,
                header_value("key id", key_id)?,
            ),
            identity_secret,
        )
    }

    /// With a User-Agent and key id shared with other devices.
    pub fn with_shared(
        device_id: &str,
        shared: SharedHeaders,
        identity_secret: Key,
    ) -> Result<Self, IdentityError> {
        // Checked here so that a typo fails at start-up, not as a 400 from the server. The
        // malformed-header fault sends bad ids on purpose, past this check.
        if !is_valid_device_id(device_id) {
            return Err(IdentityError::DeviceId(device_id.to_string()));
        }
        Ok(DeviceIdentity {
            device_id: header_value("device id", device_id)?,
            shared,
            secret: Secret(identity_secret),
        })
    }

    /// A fleet device derived from the seed (spec 5), with its own User-Agent.
    pub fn derived(seed: &str, device_id: &str, user_agent: &str) -> Result<Self, IdentityError> {
        let shared = SharedHeaders::fleet(header_value("User-Agent", user_agent)?);
        Self::derived_with(seed, device_id, &shared)
    }

    /// A fleet device derived from the seed (spec 5), sharing its User-Agent and key id with
    /// the fleet ([`SharedHeaders::fleet`]).
    pub fn derived_with(
        seed: &str,
        device_id: &str,
        shared: &SharedHeaders,
    ) -> Result<Self, IdentityError> {
        Self::with_shared(
            device_id,
            shared.clone(),
            derive_identity_secret(seed, device_id),
        )
    }

    pub fn device_id(&self) -> &str {
        // Built from a validated &str, so always visible ASCII.
        self.device_id.to_str().unwrap_or_default()
    }

    pub fn user_agent(&self) -> &str {
        self.shared.user_agent().to_str().unwrap_or_default()
    }

    pub fn key_id(&self) -> &str {
        self.shared.key_id().to_str().unwrap_or_default()
    }

    pub fn identity_secret(&self) -> &Secret<Key> {
        &self.secret
    }

    pub(crate) fn device_id_header(&self) -> &HeaderValue {
        &self.device_id
    }

    pub(crate) fn user_agent_header(&self) -> &HeaderValue {
        self.shared.user_agent()
    }

    pub(crate) fn key_id_header(&self) -> &HeaderValue {
        self.shared.key_id()
    }
}

impl fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("device_id", &self.device_id())
            .field("user_agent", &self.user_agent())
            .field("key_id", &self.key_id())
            .field("identity_secret", &self.secret)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug() {
        let secret = [0x5Au8; 32];
        let id = DeviceIdentity::new(
            "POS-8F3A2C91",
            "Viopay-POS/1.4.2 (Android 12; PAX-A920)",
            "device-id-key-2025-01",
            secret,
        )
        .unwrap();
        assert_eq!(id.device_id(), "POS-8F3A2C91");
        assert_eq!(id.user_agent(), "Viopay-POS/1.4.2 (Android 12; PAX-A920)");
        assert_eq!(id.key_id(), "device-id-key-2025-01");
        let dbg = format!("{id:?}");
        assert!(dbg.contains("POS-8F3A2C91"));
        assert!(!dbg.contains(&hex::encode_upper(secret)));
        assert!(!dbg.contains(&hex::encode(secret)));
    }

    #[test]
    fn derived_matches_the_spec_vector() {
        let id = DeviceIdentity::derived("posemu-demo", "POS-F0000001", "Viopay-POS/1.4.2 (x; y)")
            .unwrap();
        assert_eq!(
            hex::encode_upper(id.identity_secret().expose()),
            "F427B06FC1531115C0A8E566549C974C544ECC80777EE6C22C29782089C64C5B"
        );
        assert_eq!(id.key_id(), FLEET_IDENTITY_KEY_ID);
    }

    #[test]
    fn rejects_what_cannot_be_sent() {
        assert_eq!(
            DeviceIdentity::new("POS-8f3a2c91", "Viopay-POS/1", "k", [0; 32]).unwrap_err(),
            IdentityError::DeviceId("POS-8f3a2c91".into())
        );
        let e = DeviceIdentity::new("POS-8F3A2C91", "Viopay-POS/1\n", "k", [0; 32]).unwrap_err();
        assert!(e.to_string().starts_with("User-Agent"), "{e}");
    }
}
