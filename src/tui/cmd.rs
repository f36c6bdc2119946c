//! What `update` asks of the world: plain data, carried out in one place ([`super::exec`]),
//! whose results come back as [`Msg`](super::Msg)s. `update` itself changes only the model.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::model::{Msg, SandboxAction};
use posemu_client::{DeviceFaults, Exchange};
use posemu_device::progress::Progress;
use posemu_device::Effect;
use posemu_protocol::api::PayCall;
use posemu_runtime::DeviceOptions;

pub enum Cmd {
    /// Leave the screen.
    Quit,
    /// Put this text on the clipboard (OSC 52 to the terminal; the loop's, which owns it).
    Clipboard(String),
    /// Carry out one of the device machine's effects (a call, a timer, cancelling a timer) for
    /// the device of this generation; answers come back as [`Msg::Device`].
    Device { generation: u64, effect: Effect },
    /// Persist this device's progress; a failure comes back as [`Msg::SaveFailed`].
    Save {
        generation: u64,
        progress: Box<Progress>,
    },
    /// Call a sandbox helper for this device; the answer is a [`Msg::Sandbox`].
    SandboxHelper {
        generation: u64,
        action: SandboxAction,
        /// The code on screen (claim, expire): what the answer names.
        code: Option<String>,
    },
    /// Open another device (a profile or server switch); the answer is [`Msg::Attached`] or
    /// [`Msg::OpenFailed`].
    Open(Box<DeviceOptions>),
    /// Read the profiles on disk; the answer is [`Msg::Profiles`].
    ListProfiles,
    /// Write these exchanges as a HAR file named `name`; the answer is [`Msg::Exported`].
    Export {
        exchanges: Vec<Arc<Exchange>>,
        name: String,
    },
    /// Send `msg` after `after`, replacing what `slot` had pending.
    After {
        slot: Slot,
        after: Duration,
        msg: Box<Msg>,
    },
    /// Forget what `slot` had pending.
    Cancel(Slot),
    /// Make one payment call (sealed, signed, logged) for the device of this generation; the
    /// answer comes back as [`Msg::Pay`] with `PayEvent::Answer { call: id, .. }`.
    Pay {
        generation: u64,
        id: u32,
        call: Box<PayCall>,
        faults: DeviceFaults,
        /// The device's wall time the payment machine stepped at (the device machine's clock,
        /// the one clock of the device): what the request is stamped and signed with.
        at: DateTime<Utc>,
    },
    /// Settle the terminal's pending charges (sandbox helper `POST /sandbox/settle`); the
    /// answer is a [`Msg::Sandbox`] with [`SandboxAction::Settle`].
    Settle {
        generation: u64,
        terminal_id: String,
    },
    /// Read the terminal's charges (sandbox helper `GET /sandbox/terminals/{tid}/charges`);
    /// the answer is [`Msg::Charges`].
    LoadCharges {
        generation: u64,
        terminal_id: String,
    },
}

/// A pending [`Cmd::After`]: a newer one in the same slot replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// Demo mode's next kiosk move.
    Demo,
    /// The payment machine's retry timer.
    Pay,
}
