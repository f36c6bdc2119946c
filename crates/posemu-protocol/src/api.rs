//! What the device machine asks the runtime to call, and what comes back.
//!
//! The machine never does I/O: it emits an [`ApiCall`]; the runtime hands it to `client/`,
//! which builds headers, signs, encrypts, sends, decrypts and records the exchange, then feeds
//! the [`ApiAnswer`] or [`CallError`] back to the machine as an event.

use std::fmt;
use std::time::Duration;

use crate::crypto::Key;
use crate::error::ErrorBody;
use crate::wire::{
    ActivationChecks, ActivationResult, AttestResponse, BootstrapResponse, KeysResponse,
    PairingCodeResponse, StatusResponse,
};

/// A value that never shows in `Debug` output (tokens, keys).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(pub T);

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> Secret<T> {
    pub fn expose(&self) -> &T {
        &self.0
    }
}

/// One API call of the device (spec steps 1–3, 5–8).
#[derive(Debug, Clone, PartialEq)]
pub enum ApiCall {
    Bootstrap,
    PairingCode,
    Status,
    /// The client stamps `X-Timestamp` with its wall clock plus `clock_offset_ms` (the offset
    /// the device learned from `server_time`), draws the nonce and signs.
    Attest {
        clock_offset_ms: i64,
    },
    Keys {
        token: Secret<String>,
    },
    /// The client decrypts the envelope with `msk` and answers the plaintext.
    Config {
        token: Secret<String>,
        msk: Secret<Key>,
    },
    TerminalParameters {
        token: Secret<String>,
        msk: Secret<Key>,
    },
    /// The client encrypts `checks` under `msk` and decrypts the answer.
    Activate {
        token: Secret<String>,
        msk: Secret<Key>,
        checks: ActivationChecks,
    },
}

impl ApiCall {
    /// The endpoint's step name, as shown in timelines and reports.
    pub fn step(&self) -> &'static str {
        match self {
            ApiCall::Bootstrap => "bootstrap",
            ApiCall::PairingCode => "pairing-code",
            ApiCall::Status => "status",
            ApiCall::Attest { .. } => "attest",
            ApiCall::Keys { .. } => "keys",
            ApiCall::Config { .. } => "config",
            ApiCall::TerminalParameters { .. } => "terminal-parameters",
            ApiCall::Activate { .. } => "activate",
        }
    }
}

/// A successful answer, already decrypted where the endpoint answers an envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiAnswer {
    Bootstrap(BootstrapResponse),
    PairingCode(PairingCodeResponse),
    Status(StatusResponse),
    Attest(AttestResponse),
    Keys(Box<KeysResponse>),
    /// The decrypted config JSON (spec 4.9).
    Config(serde_json::Value),
    /// The decrypted terminal parameters: SHA-256 (hex) of the JSON bytes and their size.
    TerminalParameters {
        sha256_hex: String,
        bytes: usize,
    },
    Activate(ActivationResult),
}

/// Why a call did not produce an answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// Connection refused, reset or dropped, DNS failure: the server may come back.
    #[error("network error: {0}")]
    Network(String),
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// A non-2xx answer. `error` is the parsed error envelope if the body was one.
    #[error("HTTP {status}{}", .error.as_ref().map(|e| format!(" {} {}", e.code, e.message)).unwrap_or_default())]
    Http {
        status: u16,
        retry_after: Option<Duration>,
        error: Option<ErrorBody>,
    },
    /// A 2xx answer the device cannot use: wrong JSON shape, an envelope that does not decrypt.
    #[error("unusable answer: {0}")]
    Decode(String),
}

impl CallError {
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's error envelope, if the answer carried one.
    pub fn error_body(&self) -> Option<&ErrorBody> {
        match self {
            CallError::Http { error, .. } => error.as_ref(),
            _ => None,
        }
    }

    /// Network errors, timeouts and 5xx are worth retrying with backoff (spec 4.3).
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Network(_) | CallError::Timeout(_) => true,
            CallError::Http { status, .. } => *status >= 500,
            CallError::Decode(_) => false,
        }
    }
}
