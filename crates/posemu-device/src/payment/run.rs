//! The rules of spec 7.11 as the payment machine's transitions (see the module above).

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{
    terminal_currency, PayEffect, PayEvent, PayNote, PayOp, PayOutcome, PayPhase, Payments,
    MAX_RETRIES, TIMESTAMP_WINDOW_MESSAGE,
};
use crate::machine::{DeviceState, Now};
use crate::poll::backoff_delay;
use crate::Phase;
use posemu_protocol::api::{CallError, PayAnswer, PayCall, PayRequest, Secret};
use posemu_protocol::crypto::hmac_sha256;
use posemu_protocol::payments::money::MAX_REQUEST_DIGITS;
use posemu_protocol::payments::pinblock::encipher_with_pad;
use posemu_protocol::payments::wire::RefundAmount;
use posemu_protocol::payments::{
    new_idempotency_key, Charge, ChargeRequest, ChargeStatus, DeclineCode, Money, RefundRequest,
};

pub(super) struct Run<'a> {
    pub(super) d: &'a mut DeviceState,
    pub(super) p: &'a mut Payments,
    pub(super) now: Now,
    pub(super) fx: Vec<PayEffect>,
}

impl Run<'_> {
    fn note(&mut self, n: PayNote) {
        self.fx.push(PayEffect::Note(n));
    }

    pub(super) fn handle(&mut self, event: PayEvent) {
        match event {
            PayEvent::Begin { op, seed } => self.begin(op, seed),
            PayEvent::KeysReady => {
                if self.p.phase == PayPhase::NeedKeys {
                    self.first_attempt();
                }
            }
            PayEvent::Pin(pin) => self.pin_entered(pin),
            PayEvent::NoPin => {
                if self.p.phase == PayPhase::AwaitingPin {
                    if let Some(c) = self.p.pin_decline.take() {
                        self.finish(PayOutcome::Declined(c));
                    }
                }
            }
            PayEvent::Abort(why) => {
                if !self.p.is_free() {
                    self.p.in_flight = None;
                    self.finish(PayOutcome::Refused(why));
                }
            }
            PayEvent::Answer { call, result } => {
                if self.p.in_flight != Some(call) {
                    return; // abandoned or stale
                }
                self.p.in_flight = None;
                match result {
                    Ok(a) => self.on_answer(a),
                    Err(e) => self.on_error(e),
                }
            }
            PayEvent::Timer => {
                if let PayPhase::Backoff { due_ms } = self.p.phase {
                    if due_ms <= self.now.mono_ms {
                        self.send();
                    }
                }
            }
        }
    }

    fn begin(&mut self, op: PayOp, seed: [u8; 32]) {
        if !self.p.is_free() {
            return;
        }
        let next_call_id = self.p.next_call_id;
        *self.p = Payments::new();
        self.p.next_call_id = next_call_id;
        self.p.seed = Secret(seed);
        self.p.op = Some(op);
        if self.d.phase == Phase::Ready && self.d.keys().is_none() {
            self.p.phase = PayPhase::NeedKeys;
            self.note(PayNote::Rekeying);
            self.fx.push(PayEffect::Rekey);
            return;
        }
        self.first_attempt();
    }

    fn first_attempt(&mut self) {
        if !self.d.can_pay() {
            let why = if self.d.phase != Phase::Ready {
                "the device is not activated"
            } else {
                "the device has no keys or terminal id"
            };
            return self.finish(PayOutcome::Refused(why.into()));
        }
        let Some(currency) = terminal_currency(self.d) else {
            return self.finish(PayOutcome::Refused(
                "the terminal's config has no emv.currency".into(),
            ));
        };
        let Some(op) = self.p.op.clone() else { return };
        let (request, key) = match op {
            PayOp::Charge(c) => {
                if let Err(why) = check_amount("amount", c.amount) {
                    return self.finish(PayOutcome::Refused(why));
                }
                let request = ChargeRequest {
                    amount: Money::new(c.amount, currency.clone()),
                    tip: c.tip.map(|t| Money::new(t, currency)),
                    entry_mode: c.entry_mode,
                    card: c.card,
                    pin_block: None,
                    reference: c.reference,
                    allow_partial_approval: c.allow_partial.then_some(true),
                };
                (PayRequest::Charge(request), c.idempotency_key)
            }
            PayOp::Refund {
                charge_id,
                amount,
                reason,
                idempotency_key,
            } => {
                if let Err(why) = check_amount("refund amount", amount) {
                    return self.finish(PayOutcome::Refused(why));
                }
                let request = RefundRequest {
                    amount: RefundAmount {
                        value: amount,
                        currency: Some(currency),
                    },
                    reason,
                };
                (PayRequest::Refund { charge_id, request }, idempotency_key)
            }
            PayOp::Cancel { charge_id, reverse } => {
                (PayRequest::Cancel { charge_id, reverse }, None)
            }
        };
        self.attempt(request, key);
    }

    /// A new attempt: a new Idempotency-Key (unless given), fresh retry counts.
    fn attempt(&mut self, request: PayRequest, key: Option<String>) {
        let key = match &request {
            PayRequest::Cancel { .. } => None, // ignored on cancel (spec 7.4)
            _ => Some(key.unwrap_or_else(|| self.new_key())),
        };
        self.p.attempts = self.p.attempts.saturating_add(1);
        self.p.retries = 0;
        self.p.clock_retried = false;
        self.p.late_charge_id = None;
        self.note(PayNote::Attempt {
            operation: request.name(),
            attempt: self.p.attempts,
            idempotency_key: key.clone(),
            with_pin: matches!(&request, PayRequest::Charge(c) if c.pin_block.is_some()),
        });
        self.p.request = Some(request);
        self.p.key = key;
        self.send();
    }

    /// A fresh key (a lowercase UUID v4): drawn from HMAC-SHA256(seed, count ‖ random), so
    /// every key comes from injected randomness and no two of one operation are alike.
    fn new_key(&mut self) -> String {
        self.p.keys_drawn = self.p.keys_drawn.wrapping_add(1);
        let mut msg = [0u8; 12];
        msg[..4].copy_from_slice(&self.p.keys_drawn.to_be_bytes());
        msg[4..].copy_from_slice(&self.now.random.to_be_bytes());
        let bytes = hmac_sha256(self.p.seed.expose(), &msg);
        new_idempotency_key(&mut StdRng::from_seed(bytes))
    }

    fn send(&mut self) {
        let (Some(request), Some(keys), Some(tid)) = (
            self.p.request.clone(),
            self.d.keys(),
            self.d.progress.terminal_id.clone(),
        ) else {
            return self.finish(PayOutcome::Refused("the device lost its keys".into()));
        };
        let call = PayCall {
            request,
            idempotency_key: self.p.key.clone(),
            terminal_id: tid,
            key_id: keys.mac_key_id.clone(),
            mac_key: keys.mac.clone(),
            msk: keys.msk.clone(),
            clock_offset_ms: self.d.clock_offset_ms,
        };
        self.p.next_call_id = self.p.next_call_id.wrapping_add(1);
        let id = self.p.next_call_id;
        self.p.in_flight = Some(id);
        self.p.phase = PayPhase::Sending;
        self.fx.push(PayEffect::Call { id, call });
    }

    fn finish(&mut self, outcome: PayOutcome) {
        self.p.phase = PayPhase::Done(outcome.clone());
        self.p.pin_decline = None;
        let operation = self.p.op.as_ref().map_or("payment", PayOp::name);
        self.note(PayNote::Finished { operation, outcome });
    }

    fn on_answer(&mut self, answer: PayAnswer) {
        let Some(request) = self.p.request.clone() else {
            return;
        };
        match (request, answer) {
            (PayRequest::Charge(req), PayAnswer::Charge(c)) => match c.status {
                ChargeStatus::Approved => self.finish(PayOutcome::Approved(c)),
                ChargeStatus::Declined
                    if c.decline_code == Some(DeclineCode::PinRequired)
                        && req.pin_block.is_none() =>
                {
                    self.pin_required(c)
                }
                ChargeStatus::Declined => self.finish(PayOutcome::Declined(c)),
                other => self.unusable(format!(
                    "a new charge answered with status {}",
                    other.as_str()
                )),
            },
            (PayRequest::Refund { .. }, PayAnswer::Refund(r)) => {
                self.finish(PayOutcome::Refunded(r))
            }
            (PayRequest::Cancel { .. }, PayAnswer::Charge(c)) => match c.status {
                ChargeStatus::Cancelled => self.finish(PayOutcome::Cancelled(c)),
                other => self.unusable(format!("a cancel answered with status {}", other.as_str())),
            },
            (req, _) => self.unusable(format!("{} got an answer of another kind", req.name())),
        }
    }

    /// A 2xx the device cannot use: the server may have done it, so the outcome is unknown.
    fn unusable(&mut self, why: String) {
        let charge_id = self.p.late_charge_id.clone();
        self.finish(PayOutcome::Unknown {
            error: CallError::Decode(why),
            charge_id,
        });
    }

    fn pin_required(&mut self, decline: Box<Charge>) {
        let given = match &self.p.op {
            Some(PayOp::Charge(c)) => c.pin.clone(),
            _ => None,
        };
        self.note(PayNote::PinRequired {
            pin_given: given.is_some(),
        });
        self.p.pin_decline = Some(decline);
        self.p.phase = PayPhase::AwaitingPin;
        if let Some(pin) = given {
            self.pin_entered(pin);
        }
    }

    fn pin_entered(&mut self, pin: Secret<String>) {
        if self.p.phase != PayPhase::AwaitingPin {
            return;
        }
        let (Some(PayRequest::Charge(mut req)), Some(keys)) =
            (self.p.request.clone(), self.d.keys())
        else {
            return;
        };
        let pad = self.now.random.to_be_bytes();
        match encipher_with_pad(keys.tpk.expose(), pin.expose(), &req.card.pan, pad) {
            Ok(block) => {
                self.p.pin_decline = None;
                req.pin_block = Some(block);
                self.attempt(PayRequest::Charge(req), None);
            }
            Err(e) => self.finish(PayOutcome::Refused(format!("PIN: {e}"))),
        }
    }

    fn on_error(&mut self, e: CallError) {
        if e.is_transient() {
            if let Some(id) = late_charge_id(&e) {
                self.p.late_charge_id = Some(id);
            }
            if self.p.retries >= MAX_RETRIES {
                let charge_id = self.p.late_charge_id.clone();
                return self.finish(PayOutcome::Unknown {
                    error: e,
                    charge_id,
                });
            }
            self.p.retries += 1;
            let delay = backoff_delay(self.p.retries, self.now.random);
            let due_ms = self.now.mono_ms.saturating_add(delay.as_millis() as u64);
            self.p.phase = PayPhase::Backoff { due_ms };
            self.fx.push(PayEffect::Wait(delay));
            self.note(PayNote::Retry {
                retry: self.p.retries,
                delay,
                error: e,
                idempotency_key: self.p.key.clone(),
            });
            return;
        }
        if let CallError::Decode(_) = e {
            // a 2xx that does not decrypt or parse: the server did something
            let charge_id = self.p.late_charge_id.clone();
            return self.finish(PayOutcome::Unknown {
                error: e,
                charge_id,
            });
        }
        if !self.p.clock_retried {
            if let Some(server_ms) = window_server_time(&e) {
                self.p.clock_retried = true;
                let offset_ms = server_ms.saturating_sub(self.now.wall_ms);
                self.d.clock_offset_ms = offset_ms;
                self.note(PayNote::ClockAdopted { offset_ms });
                return self.send();
            }
        }
        self.finish(PayOutcome::Rejected(e));
    }
}

fn check_amount(what: &str, v: u64) -> Result<(), String> {
    let max = 10u64.pow(MAX_REQUEST_DIGITS as u32) - 1;
    if v == 0 || v > max {
        return Err(format!("{what} must be 1 to {max} minor units, not {v}"));
    }
    Ok(())
}

/// `details.charge_id` of a 504 (spec 7.7 row 13).
fn late_charge_id(e: &CallError) -> Option<String> {
    if e.status() != Some(504) {
        return None;
    }
    let id = e
        .error_body()?
        .details
        .as_ref()?
        .get("charge_id")?
        .as_str()?;
    // shown and put on a command line later: keep it to what a charge id can be
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then(|| id.to_string())
}

/// `details.server_time` (Unix ms) of a `401 Timestamp outside allowed window`.
fn window_server_time(e: &CallError) -> Option<i64> {
    if e.status() != Some(401) {
        return None;
    }
    let body = e.error_body()?;
    if body.message != TIMESTAMP_WINDOW_MESSAGE {
        return None;
    }
    let t = body.details.as_ref()?.get("server_time")?.as_str()?;
    posemu_protocol::clock::parse_rfc3339(t).map(|t| t.timestamp_millis())
}
