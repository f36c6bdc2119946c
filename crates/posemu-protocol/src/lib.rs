//! The contract of `shared/spec/pos-api.md`, used by both the device side and the sandbox:
//! wire types, headers, the error envelope, signatures, MSK envelopes, TR-31 and KCVs, and
//! payments (section 7).
//!
//! Nothing here does I/O or reads a clock: times and random bytes come in as arguments.
//!
//! In the workspace: the bottom crate. It depends on no other posemu crate; device, client,
//! sandbox, profile and runtime all build on it, and it is where the two sides of the wire meet.

pub mod api;
pub mod attest;
pub mod clock;
pub mod crypto;
pub mod duration;
pub mod envelope;
pub mod error;
pub mod headers;
pub mod payments;
pub mod provision;
pub mod rules;
pub mod text;
pub mod tr31;
pub mod version;
pub mod wire;

pub use error::{error_code_for_status, ErrorBody, ErrorEnvelope};
