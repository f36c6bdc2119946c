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

/// The API steps of the flow, in order (status is the poll of step 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    Bootstrap,
    PairingCode,
    Status,
    Attest,
    Keys,
    Config,
    TerminalParameters,
    Activate,
}

impl Step {
    pub const ALL: [Step; 8] = [
        Step::Bootstrap,
        Step::PairingCode,
        Step::Status,
        Step::Attest,
        Step::Keys,
        Step::Config,
        Step::TerminalParameters,
        Step::Activate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Bootstrap => "bootstrap",
            Step::PairingCode => "pairing-code",
            Step::Status => "status",
            Step::Attest => "attest",
            Step::Keys => "keys",
            Step::Config => "config",
            Step::TerminalParameters => "terminal-parameters",
            Step::Activate => "activate",
        }
    }

    /// A human title, as the POS screen and `posemu activate` show it.
    pub fn title(self) -> &'static str {
        match self {
            Step::Bootstrap => "Connecting to Viopay",
            Step::PairingCode => "Requesting pairing code",
            Step::Status => "Waiting for merchant",
            Step::Attest => "Proving device identity",
            Step::Keys => "Installing keys",
            Step::Config => "Downloading configuration",
            Step::TerminalParameters => "Downloading terminal parameters",
            Step::Activate => "Activating",
        }
    }

    /// Steps 6–8 (and 7b) need the attestation token (spec 3.2).
    pub fn needs_token(self) -> bool {
        matches!(
            self,
            Step::Keys | Step::Config | Step::TerminalParameters | Step::Activate
        )
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
    /// The step this call belongs to.
    pub fn step(&self) -> Step {
        match self {
            ApiCall::Bootstrap => Step::Bootstrap,
            ApiCall::PairingCode => Step::PairingCode,
            ApiCall::Status => Step::Status,
            ApiCall::Attest { .. } => Step::Attest,
            ApiCall::Keys { .. } => Step::Keys,
            ApiCall::Config { .. } => Step::Config,
            ApiCall::TerminalParameters { .. } => Step::TerminalParameters,
            ApiCall::Activate { .. } => Step::Activate,
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

impl ApiAnswer {
    /// The step this answer belongs to.
    pub fn step(&self) -> Step {
        match self {
            ApiAnswer::Bootstrap(_) => Step::Bootstrap,
            ApiAnswer::PairingCode(_) => Step::PairingCode,
            ApiAnswer::Status(_) => Step::Status,
            ApiAnswer::Attest(_) => Step::Attest,
            ApiAnswer::Keys(_) => Step::Keys,
            ApiAnswer::Config(_) => Step::Config,
            ApiAnswer::TerminalParameters { .. } => Step::TerminalParameters,
            ApiAnswer::Activate(_) => Step::Activate,
        }
    }
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

/// One payment call (spec 7): a type of its own beside [`ApiCall`], so the activation flow's
/// exhaustive matches stay as they are. The client draws the IV, nonce and timestamp (its wall
/// clock plus `clock_offset_ms`), seals the plaintext under `msk`, signs the bytes it sends
/// with `mac_key` and decrypts the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct PayCall {
    pub request: PayRequest,
    /// The same on every retry of one attempt (spec 7.4, 7.11); never sent on cancel.
    pub idempotency_key: Option<String>,
    pub terminal_id: String,
    /// The `key_id` of the key set's `mac` entry (`X-Key-Id`).
    pub key_id: String,
    pub mac_key: Secret<Key>,
    pub msk: Secret<Key>,
    pub clock_offset_ms: i64,
}

/// What a payment call asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum PayRequest {
    Charge(crate::payments::ChargeRequest),
    Refund {
        charge_id: String,
        request: crate::payments::RefundRequest,
    },
    /// `reverse`: the `/reverse` path, the same operation (spec 7.9).
    Cancel {
        charge_id: String,
        reverse: bool,
    },
}

impl PayRequest {
    /// `charge`, `refund`, `cancel` or `reverse` (the exchange log's step name).
    pub fn name(&self) -> &'static str {
        match self {
            PayRequest::Charge(_) => "charge",
            PayRequest::Refund { .. } => "refund",
            PayRequest::Cancel { reverse: false, .. } => "cancel",
            PayRequest::Cancel { reverse: true, .. } => "reverse",
        }
    }

    /// The path after the server's base URL (spec 7.1).
    pub fn path(&self) -> String {
        use crate::payments::paths;
        match self {
            PayRequest::Charge(_) => paths::CHARGE.to_string(),
            PayRequest::Refund { charge_id, .. } => paths::refund(charge_id),
            PayRequest::Cancel {
                charge_id,
                reverse: false,
            } => paths::cancel(charge_id),
            PayRequest::Cancel {
                charge_id,
                reverse: true,
            } => paths::reverse(charge_id),
        }
    }

    /// The plaintext JSON sealed into the request envelope; `None` for cancel (no body).
    pub fn plaintext(&self) -> Option<Vec<u8>> {
        match self {
            PayRequest::Charge(c) => serde_json::to_vec(c).ok(),
            PayRequest::Refund { request, .. } => serde_json::to_vec(request).ok(),
            PayRequest::Cancel { .. } => None,
        }
    }

    /// The plaintext as logs show it: PAN masked, expiry hidden, `pin_block` as `***`.
    pub fn redacted_json(&self) -> Option<serde_json::Value> {
        match self {
            PayRequest::Charge(c) => Some(c.redacted_json()),
            PayRequest::Refund { request, .. } => serde_json::to_value(request).ok(),
            PayRequest::Cancel { .. } => None,
        }
    }
}

/// A payment call's 200, decrypted: the charge object (charge, cancel) or the refund (refund).
#[derive(Debug, Clone, PartialEq)]
pub enum PayAnswer {
    Charge(Box<crate::payments::Charge>),
    Refund(Box<crate::payments::Refund>),
}
