//! The only place that talks HTTP for a device (reqwest): headers, signing, envelopes,
//! timeouts, and the exchange log.
//!
//! - [`Transport`]: a connection pool, a server and timeouts; clone it freely (a fleet shares
//!   one), or give a device its own pool with [`Transport::separate_pool`]; a fleet's workers
//!   send through [`Transport::direct_pool`] (`http1.rs`: HTTP/1.1 of its own for plain
//!   `http://`, the same requests at a fraction of reqwest's CPU).
//! - [`DeviceIdentity`]: who the device is on the wire.
//! - [`DeviceFaults`]: how it misbehaves on purpose (spec 6).
//! - [`Transport::call`]: one [`ApiCall`](posemu_protocol::api::ApiCall) →
//!   [`ApiAnswer`](posemu_protocol::api::ApiAnswer) or [`CallError`](posemu_protocol::api::CallError),
//!   recorded in an optional [`ExchangeLog`].
//! - [`Transport::pay`]: one payment call ([`PayCall`](posemu_protocol::api::PayCall)), sealed,
//!   signed, decrypted ([`payments`]).
//! - [`export`]: HAR 1.2, copy as curl, OSC 52; [`merchant`]: claiming for unattended runs.
//!
//! In the workspace: depends only on `posemu-protocol`. It never reaches the device machine (a
//! sibling: the host passes `ApiCall`s in and answers out), the sandbox, the runtime or the
//! binary.

// `CallError` carries the server's error envelope by value: a failed call is rare, and the
// envelope is what every caller shows.
#![allow(clippy::result_large_err)]

pub mod call;
pub mod device_faults;
pub mod exchange;
pub mod export;
mod http1;
pub mod identity;
pub mod merchant;
pub mod payments;
pub mod redact;
pub mod transport;

pub use call::new_nonce;
pub use device_faults::{DeviceFaults, FaultHeader, HeaderSet};
pub use exchange::{Captured, Exchange, ExchangeLog};
pub use identity::{DeviceIdentity, IdentityError, SharedHeaders};
pub use merchant::{
    sandbox_claim, sandbox_expire_code, sandbox_reset, sandbox_settle_charge, MerchantCredentials,
    MerchantError, MerchantSession,
};
/// Header values a fleet shares between devices (see [`SharedHeaders`]).
pub use reqwest::header::HeaderValue;
pub use transport::{Transport, TransportConfig, TransportError};
