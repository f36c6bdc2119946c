//! Device-side faults (spec 6): a device that misbehaves on purpose, so a server developer can
//! check that their server rejects each misbehaviour with the documented error.
//!
//! [`DeviceFaults`] is `Copy` and a few bytes: a fleet decides per device and per call which
//! faults apply, and a well-behaved device passes [`DeviceFaults::NONE`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use posemu_protocol::headers::{
    AUTHORIZATION, USER_AGENT, X_CLIENT_TYPE, X_DEVICE_ID, X_KEY_ID, X_NONCE, X_SIGNATURE,
    X_TIMESTAMP,
};

/// A request header the device may drop or malform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultHeader {
    DeviceId,
    UserAgent,
    ClientType,
    KeyId,
    Timestamp,
    Nonce,
    Signature,
    Authorization,
}

impl FaultHeader {
    pub const ALL: [FaultHeader; 8] = [
        FaultHeader::DeviceId,
        FaultHeader::UserAgent,
        FaultHeader::ClientType,
        FaultHeader::KeyId,
        FaultHeader::Timestamp,
        FaultHeader::Nonce,
        FaultHeader::Signature,
        FaultHeader::Authorization,
    ];

    /// The header's name as sent on the wire.
    pub fn name(self) -> &'static str {
        match self {
            FaultHeader::DeviceId => X_DEVICE_ID,
            FaultHeader::UserAgent => USER_AGENT,
            FaultHeader::ClientType => X_CLIENT_TYPE,
            FaultHeader::KeyId => X_KEY_ID,
            FaultHeader::Timestamp => X_TIMESTAMP,
            FaultHeader::Nonce => X_NONCE,
            FaultHeader::Signature => X_SIGNATURE,
            FaultHeader::Authorization => AUTHORIZATION,
        }
    }

    /// The value sent instead of the real one when this header is malformed. Each breaks the
    /// header's documented syntax (spec 3.1, 3.2, 4.6), except `X-Key-Id`, which has no syntax:
    /// an unregistered id is the closest a device can get.
    pub fn malformed_value(self) -> &'static str {
        match self {
            FaultHeader::DeviceId => "pos-8f3a2c91",
            FaultHeader::UserAgent => "posemu-malformed/1.0",
            FaultHeader::ClientType => "web",
            FaultHeader::KeyId => "posemu-unregistered-key",
            FaultHeader::Timestamp => "13/12/2025 14:25:30",
            FaultHeader::Nonce => "short-nonce!",
            FaultHeader::Signature => "v1=not*base64",
            FaultHeader::Authorization => "Token malformed",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for FaultHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown header {0:?}: expected one of X-Device-Id, User-Agent, X-Client-Type, X-Key-Id, X-Timestamp, X-Nonce, X-Signature, Authorization")]
pub struct UnknownFaultHeader(pub String);

impl FromStr for FaultHeader {
    type Err = UnknownFaultHeader;

    /// Case-insensitive header name, as typed on a command line.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultHeader::ALL
            .into_iter()
            .find(|h| h.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownFaultHeader(s.to_string()))
    }
}

/// A set of [`FaultHeader`]s, as bits.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct HeaderSet(u16);

impl HeaderSet {
    pub const EMPTY: HeaderSet = HeaderSet(0);

    pub fn with(mut self, h: FaultHeader) -> Self {
        self.insert(h);
        self
    }

    pub fn insert(&mut self, h: FaultHeader) {
        self.0 |= h.bit();
    }

    pub fn contains(self, h: FaultHeader) -> bool {
        self.0 & h.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = FaultHeader> {
        FaultHeader::ALL
            .into_iter()
            .filter(move |h| self.contains(*h))
    }
}

impl fmt::Debug for HeaderSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(|h| h.name()))
            .finish()
    }
}

impl FromIterator<FaultHeader> for HeaderSet {
    fn from_iter<I: IntoIterator<Item = FaultHeader>>(iter: I) -> Self {
        iter.into_iter().fold(HeaderSet::EMPTY, HeaderSet::with)
    }
}

/// The nonce a device with [`DeviceFaults::reuse_nonce`] sends on every attest. A constant
/// keeps the fault stateless: the first attest passes, every later one within the server's
/// nonce memory (10 min) must answer `401 Nonce already used`.
pub const REUSED_NONCE: &str = "posemuReusedNonce0001";

/// How this device misbehaves on a call. `Default` / [`DeviceFaults::NONE`]: not at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceFaults {
    /// Added to `X-Timestamp` (on top of the offset learned from `server_time`), in ms.
    pub clock_skew_ms: i64,
    /// Sign attestations with a key that is not the identity secret.
    pub wrong_secret: bool,
    /// Send [`REUSED_NONCE`] instead of a fresh nonce.
    pub reuse_nonce: bool,
    /// Headers left out of the request.
    pub drop_headers: HeaderSet,
    /// Headers sent with [`FaultHeader::malformed_value`]. Dropping wins over malforming.
    pub malform_headers: HeaderSet,
    /// Replaces the transport's request timeout for these calls.
    pub request_timeout: Option<Duration>,
}

impl DeviceFaults {
    pub const NONE: DeviceFaults = DeviceFaults {
        clock_skew_ms: 0,
        wrong_secret: false,
        reuse_nonce: false,
        drop_headers: HeaderSet::EMPTY,
        malform_headers: HeaderSet::EMPTY,
        request_timeout: None,
    };

    pub fn is_none(&self) -> bool {
        *self == Self::NONE
    }

    /// Short human labels of the active faults, for screens and reports.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.clock_skew_ms != 0 {
            out.push(format!("clock skew {:+} ms", self.clock_skew_ms));
        }
        if self.wrong_secret {
            out.push("wrong identity secret".into());
        }
        if self.reuse_nonce {
            out.push("reused nonce".into());
        }
        for h in self.drop_headers.iter() {
            out.push(format!("no {h} header"));
        }
        for h in self.malform_headers.iter() {
            out.push(format!("malformed {h} header"));
        }
        if let Some(t) = self.request_timeout {
            out.push(format!("request timeout {} ms", t.as_millis()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use posemu_protocol::attest::is_valid_nonce;
    use posemu_protocol::headers::{check_device_headers, is_valid_device_id};

    #[test]
    fn header_names_parse_case_insensitively() {
        assert_eq!("x-client-type".parse(), Ok(FaultHeader::ClientType));
        assert_eq!(" AUTHORIZATION ".parse(), Ok(FaultHeader::Authorization));
        let e = "X-Foo".parse::<FaultHeader>().unwrap_err();
        assert!(e.to_string().contains("X-Foo"), "{e}");
        for h in FaultHeader::ALL {
            assert_eq!(h.name().parse(), Ok(h));
        }
    }

    #[test]
    fn header_sets_hold_what_was_put_in() {
        let s: HeaderSet = [FaultHeader::Nonce, FaultHeader::DeviceId]
            .into_iter()
            .collect();
        assert!(s.contains(FaultHeader::Nonce) && s.contains(FaultHeader::DeviceId));
        assert!(!s.contains(FaultHeader::Signature));
        assert_eq!(format!("{s:?}"), r#"{"X-Device-Id", "X-Nonce"}"#);
        assert!(HeaderSet::EMPTY.is_empty());
    }

    #[test]
    fn malformed_values_really_are_malformed() {
        assert!(!is_valid_device_id(FaultHeader::DeviceId.malformed_value()));
        assert!(!is_valid_nonce(FaultHeader::Nonce.malformed_value()));
        assert!(
            posemu_protocol::clock::parse_rfc3339(FaultHeader::Timestamp.malformed_value())
                .is_none()
        );
        assert!(
            posemu_protocol::attest::parse_signature(FaultHeader::Signature.malformed_value())
                .is_none()
        );
        let ua = FaultHeader::UserAgent.malformed_value();
        assert!(check_device_headers(Some("POS-8F3A2C91"), Some(ua), Some("pos")).is_err());
        assert!(is_valid_nonce(REUSED_NONCE));
        // every value must be sendable as an HTTP header
        for h in FaultHeader::ALL {
            assert!(reqwest::header::HeaderValue::from_str(h.malformed_value()).is_ok());
        }
    }

    #[test]
    fn describes_active_faults() {
        assert!(DeviceFaults::NONE.is_none() && DeviceFaults::default().is_none());
        let f = DeviceFaults {
            clock_skew_ms: 600_000,
            drop_headers: HeaderSet::EMPTY.with(FaultHeader::ClientType),
            ..DeviceFaults::NONE
        };
        assert_eq!(
            f.describe(),
            ["clock skew +600000 ms", "no X-Client-Type header"]
        );
    }
}
