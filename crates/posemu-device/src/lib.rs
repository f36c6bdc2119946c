//! The terminal's brain, with no I/O: the activation state machine, its poll policy and the
//! key-set handling. The TUI, `activate` and the fleet all run this same machine.
//!
//! In the workspace: depends only on `posemu-protocol`. It never reaches the client (its calls
//! leave as `Effect::Call(ApiCall)` and come back as events), the sandbox, the runtime or the
//! binary.

pub mod describe;
pub mod events;
pub mod failure;
pub mod keyset;
pub mod machine;
pub mod payment;
pub mod poll;
pub mod progress;

pub use failure::{Failure, FailureKind};
pub use machine::{
    update, CodeGone, DeviceConfig, DeviceEvent, DeviceState, Effect, Note, Now, Phase, Step, Timer,
};
pub use progress::Progress;
