//! posemu: an emulator of a Viopay POS payment terminal, with an embedded Viopay sandbox.
//!
//! Layers, arrows pointing down only (see README "Architecture"):
//! `cli`/`tui`/`fleet` → `device` (pure) → `client` (HTTP) → `protocol`; `sandbox` → `protocol`.

pub mod cli;
pub mod client;
pub mod clock;
pub mod device;
pub mod fleet;
pub mod profile;
pub mod protocol;
pub mod runtime;
pub mod sandbox;
pub mod tui;
