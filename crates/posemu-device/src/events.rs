//! The machine's vocabulary: steps, phases, events in, effects out, notes for people.

use std::time::Duration;

use super::failure::Failure;
pub use posemu_protocol::api::Step;
use posemu_protocol::api::{ApiAnswer, ApiCall, CallError};
use posemu_protocol::wire::PairingCodeStatus;

/// Where the device is.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Not started.
    Off,
    /// Working on a step: its call is in flight or waiting to be retried.
    Step(Step),
    /// Showing the pairing code and polling `GET /pos/status`.
    Pairing,
    /// The app is older than the server's `min_supported_version`.
    UpdateRequired {
        version: String,
        min: String,
    },
    /// Activated: ready for payments.
    Ready,
    Failed(Box<Failure>),
}

/// The time and a random number that come with every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// A monotonic clock in ms (timers, latencies).
    pub mono_ms: u64,
    /// The device's wall clock, Unix ms (clock offset, saved code expiry).
    pub wall_ms: i64,
    /// A uniformly random value (backoff jitter, first-poll phase).
    pub random: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    Poll,
    CodeExpiry,
    Retry,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DeviceEvent {
    /// Power on.
    Start,
    /// Forget all progress and start over.
    Restart,
    /// After a failure or "update required": try again from the step that stopped.
    Retry,
    /// The answer to call `call`.
    Answer {
        call: u32,
        result: Result<ApiAnswer, CallError>,
    },
    Timer(Timer),
    SetPollInterval(Duration),
    /// An activated device without keys in memory (restarted from saved progress) fetches them
    /// again: bootstrap, attest, keys, then `Ready` with keys. Ignored unless `Ready` without keys.
    Rekey,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Make this call; answer with `DeviceEvent::Answer { call: id, .. }`.
    Call {
        id: u32,
        call: ApiCall,
    },
    /// Fire `DeviceEvent::Timer(timer)` after `after`, replacing any pending timer of that kind.
    Wait {
        timer: Timer,
        after: Duration,
    },
    Cancel(Timer),
    /// Persist `state.progress`.
    Save,
    /// Something a person or a report wants to know.
    Note(Note),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    StepStarted(Step),
    StepDone {
        step: Step,
        took: Duration,
    },
    ClockOffset {
        offset_ms: i64,
    },
    CodeShown {
        code: String,
        expires_in: Duration,
        resumed: bool,
    },
    Polled {
        count: u32,
        status: PairingCodeStatus,
    },
    /// The code is gone, and why.
    CodeExpired {
        code: String,
        why: CodeGone,
    },
    /// A 429: waiting `wait`, the poll interval is now `interval`.
    SlowDown {
        wait: Duration,
        interval: Duration,
    },
    Backoff {
        step: Step,
        attempt: u32,
        delay: Duration,
        error: CallError,
    },
    Claimed,
    /// The server no longer knows the claim (`POST /pos/attest` answered 409: the device was
    /// reset, or the server is a new sandbox): the attest step ends here and pairing starts over.
    Repair {
        step: Step,
        took: Duration,
    },
    ReAttest {
        step: Step,
    },
    KeysInstalled {
        key_set_id: String,
    },
    Activated {
        terminal_id: String,
        activated_at: String,
        /// From `Start` (or `Restart`) to activated.
        total: Duration,
    },
    /// Resumed from saved progress already activated.
    ReadyFromSaved,
    UpdateRequired {
        version: String,
        min: String,
    },
    Failed(Failure),
}

/// Why a pairing code stopped being usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeGone {
    /// The device's own timer ran out first.
    DeviceTimer,
    /// The server answered `expired`.
    ServerExpired,
    /// The server answered `none`: it has no pending code for the device (a restarted or
    /// reset server), so the code never expired as such.
    ServerForgot,
}

impl CodeGone {
    /// Machine name (`--json`'s `why`).
    pub fn as_str(self) -> &'static str {
        match self {
            CodeGone::DeviceTimer => "device_timer",
            CodeGone::ServerExpired => "server_expired",
            CodeGone::ServerForgot => "server_forgot",
        }
    }
}
