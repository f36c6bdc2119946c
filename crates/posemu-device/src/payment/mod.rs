//! Payments on the device (spec 7.11) as a pure machine beside the activation one:
//! `update(&mut DeviceState, &mut Payments, Now, PayEvent) -> Vec<PayEffect>`. No I/O, no clock
//! reads, no randomness inside: time and a random number come in [`Now`], and the seed that
//! Idempotency-Keys are drawn from comes with [`PayEvent::Begin`].
//!
//! One operation at a time (charge, refund, cancel/reverse); one call in flight. The machine
//! builds the plaintext; the host's client seals it under the MSK (fresh IV), signs it with the
//! MAC key (fresh nonce and timestamp, the learnt clock offset added) and sends it.
//!
//! The rules of 7.11, each in one place:
//! - one Idempotency-Key (lowercase UUID v4) per attempt, the same on every retry of it
//!   (`run::Run::new_key`);
//! - no answer, a timeout or a 5xx: at most [`MAX_RETRIES`] retries with the backoff of 4.3,
//!   then "payment outcome unknown", with the `charge_id` a 504 gave to cancel (`run::Run::on_error`);
//! - `401 Timestamp outside allowed window`: adopt the offset of `details.server_time`, retry once;
//! - decline `pin_required`: a PIN (given up front, or asked for) and a new attempt with a new key
//!   and a PIN block under the TPK;
//! - other declines and other 4xx end the operation, never retried.

mod notes;
pub mod receipt;
mod run;

use std::time::Duration;

pub use notes::{error_text, PayNote};

use super::machine::{DeviceState, Now};
use posemu_protocol::api::{CallError, PayAnswer, PayCall, PayRequest, Secret};
use posemu_protocol::payments::money::is_valid_currency;
use posemu_protocol::payments::wire::CardData;
use posemu_protocol::payments::{Charge, DeclineCode, EntryMode, Refund, RefundReason};

/// [POSEMU] retries of one attempt after no answer, a timeout or a 5xx (spec 7.11).
pub const MAX_RETRIES: u32 = 3;
/// The message of the 401 whose `details.server_time` the device adopts (spec 7.2 row 9).
pub const TIMESTAMP_WINDOW_MESSAGE: &str = "Timestamp outside allowed window";

/// A charge as the cashier and the card reader give it; amounts in minor units of the
/// terminal's currency (config `emv.currency`).
#[derive(Debug, Clone, PartialEq)]
pub struct ChargeInput {
    pub amount: u64,
    pub tip: Option<u64>,
    pub entry_mode: EntryMode,
    pub card: CardData,
    pub reference: Option<String>,
    pub allow_partial: bool,
    /// A PIN given up front answers a `pin_required` decline without asking.
    pub pin: Option<Secret<String>>,
    /// The first attempt's Idempotency-Key instead of a drawn one.
    pub idempotency_key: Option<String>,
}

/// One payment operation.
#[derive(Debug, Clone, PartialEq)]
pub enum PayOp {
    Charge(ChargeInput),
    /// `amount` in minor units of the terminal's currency.
    Refund {
        charge_id: String,
        amount: u64,
        reason: Option<RefundReason>,
        idempotency_key: Option<String>,
    },
    /// `reverse`: through `/reverse` instead of `/cancel` (the same operation).
    Cancel {
        charge_id: String,
        reverse: bool,
    },
}

impl PayOp {
    /// `charge`, `refund`, `cancel` or `reverse`.
    pub fn name(&self) -> &'static str {
        match self {
            PayOp::Charge(_) => "charge",
            PayOp::Refund { .. } => "refund",
            PayOp::Cancel { reverse: false, .. } => "cancel",
            PayOp::Cancel { reverse: true, .. } => "reverse",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PayEvent {
    /// Start an operation. `seed` (random bytes from the host) is what this operation's
    /// Idempotency-Keys are drawn from, together with each event's `Now::random`.
    Begin { op: PayOp, seed: [u8; 32] },
    /// The device machine is back at `Ready` (after [`PayEffect::Rekey`]).
    KeysReady,
    /// The PIN typed on the keypad after `pin_required`.
    Pin(Secret<String>),
    /// The cardholder would not enter a PIN: the decline stands.
    NoPin,
    /// Give up what is in progress (e.g. the re-key failed), with a reason to show.
    Abort(String),
    /// The answer to call `call`.
    Answer {
        call: u32,
        result: Result<PayAnswer, CallError>,
    },
    /// The retry timer asked for by [`PayEffect::Wait`].
    Timer,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PayEffect {
    /// Make this call; answer with `PayEvent::Answer { call: id, .. }`.
    Call {
        id: u32,
        call: PayCall,
    },
    /// Fire `PayEvent::Timer` after this long (replacing a pending one).
    Wait(Duration),
    /// The device has no keys in memory: feed `DeviceEvent::Rekey` to the device machine and,
    /// once it is `Ready` again, `PayEvent::KeysReady` (or `Abort` if it failed).
    Rekey,
    Note(PayNote),
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PayOutcome {
    /// A charge approved (possibly partially: `partial_approval`).
    Approved(Box<Charge>),
    Declined(Box<Charge>),
    Refunded(Box<Refund>),
    Cancelled(Box<Charge>),
    /// No answer after every retry, or an answer that could not be read: the server may have
    /// processed it. `charge_id` is the one a 504 named, to cancel.
    Unknown {
        error: CallError,
        charge_id: Option<String>,
    },
    /// The server refused (a 4xx other than the ones handled), never retried.
    Rejected(CallError),
    /// The device could not even send it (not activated, no currency in the config, a bad PIN).
    Refused(String),
}

impl PayOutcome {
    pub fn kind(&self) -> &'static str {
        match self {
            PayOutcome::Approved(_) => "approved",
            PayOutcome::Declined(_) => "declined",
            PayOutcome::Refunded(_) => "succeeded",
            PayOutcome::Cancelled(_) => "cancelled",
            PayOutcome::Unknown { .. } => "unknown",
            PayOutcome::Rejected(_) => "error",
            PayOutcome::Refused(_) => "refused",
        }
    }

    pub fn decline_code(&self) -> Option<DeclineCode> {
        match self {
            PayOutcome::Declined(c) => c.decline_code,
            _ => None,
        }
    }
}

/// Where the payment side is.
#[derive(Debug, Clone, PartialEq)]
pub enum PayPhase {
    Idle,
    /// Waiting for the device to fetch its keys again.
    NeedKeys,
    /// A call is in flight.
    Sending,
    /// Waiting to retry.
    Backoff {
        due_ms: u64,
    },
    /// `pin_required`: waiting for [`PayEvent::Pin`] or [`PayEvent::NoPin`].
    AwaitingPin,
    Done(PayOutcome),
}

/// The payment side's state, next to the device's [`DeviceState`].
#[derive(Debug, Clone)]
pub struct Payments {
    pub phase: PayPhase,
    op: Option<PayOp>,
    /// The current attempt's plaintext request (the same on each retry).
    request: Option<PayRequest>,
    key: Option<String>,
    seed: Secret<[u8; 32]>,
    keys_drawn: u32,
    /// Retries of the current attempt after transient failures.
    pub retries: u32,
    clock_retried: bool,
    /// The `charge_id` of a 504's details (spec 7.7 row 13).
    late_charge_id: Option<String>,
    /// The `pin_required` decline, kept while the PIN is asked for.
    pin_decline: Option<Box<Charge>>,
    in_flight: Option<u32>,
    next_call_id: u32,
    /// Attempts so far (a new Idempotency-Key each).
    pub attempts: u32,
}

impl Default for Payments {
    fn default() -> Self {
        Payments::new()
    }
}

impl Payments {
    pub fn new() -> Payments {
        Payments {
            phase: PayPhase::Idle,
            op: None,
            request: None,
            key: None,
            seed: Secret([0; 32]),
            keys_drawn: 0,
            retries: 0,
            clock_retried: false,
            late_charge_id: None,
            pin_decline: None,
            in_flight: None,
            next_call_id: 0,
            attempts: 0,
        }
    }

    /// The Idempotency-Key of the current attempt.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    pub fn outcome(&self) -> Option<&PayOutcome> {
        match &self.phase {
            PayPhase::Done(o) => Some(o),
            _ => None,
        }
    }

    /// Idle or done: a new operation may begin.
    pub fn is_free(&self) -> bool {
        matches!(self.phase, PayPhase::Idle | PayPhase::Done(_))
    }
}

/// The terminal's currency: config `emv.currency` (spec 4.9).
pub fn terminal_currency(device: &DeviceState) -> Option<String> {
    let c = device
        .progress
        .config
        .as_ref()?
        .get("emv")?
        .get("currency")?;
    c.as_str()
        .filter(|c| is_valid_currency(c))
        .map(str::to_string)
}

/// Keeps of the config only what payments without a receipt read (`emv.currency`): a fleet
/// holds thousands of charging terminals, and the whole config tree is most of each one's
/// memory. A screen or `posemu pay`, which print receipts, keep it whole.
pub fn keep_only_currency(device: &mut DeviceState) {
    let currency = terminal_currency(device);
    device.progress.config =
        currency.map(|c| Box::new(serde_json::json!({ "emv": { "currency": c } })));
}

/// Advances the payment side by one event.
pub fn update(
    device: &mut DeviceState,
    pay: &mut Payments,
    now: Now,
    event: PayEvent,
) -> Vec<PayEffect> {
    let mut r = run::Run {
        d: device,
        p: pay,
        now,
        fx: Vec::new(),
    };
    r.handle(event);
    r.fx
}

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
