//! The sale's side of the payment machine: a charge or an operation begun, the machine's
//! events fed and its effects turned into [`Cmd`]s, its notes shown.

use super::*;

/// Why a sale ends when fetching the keys again turns into pairing again.
const FORGOTTEN: &str = "The server forgot this terminal: pair it again (the sale was not sent)";

impl Model {
    /// The sale's charge: the amount, the tip chosen, the test card and the entry mode.
    pub(super) fn charge(&mut self) -> Vec<Cmd> {
        let tip = self.tip();
        let year = self.clock.now().year().max(2000) as u32 + 3;
        let s = &mut self.sale;
        let input = ChargeInput {
            amount: s.amount,
            tip: (tip > 0).then_some(tip),
            entry_mode: s.entry_mode(),
            card: CardData {
                pan: s.test_card().pan.to_string(),
                exp_month: 12,
                exp_year: year.min(2099),
            },
            reference: None,
            allow_partial: false,
            pin: None,
            idempotency_key: None,
        };
        s.back = Screen::Amount;
        self.begin(PayOp::Charge(input))
    }

    pub(super) fn begin(&mut self, op: PayOp) -> Vec<Cmd> {
        let mut seed = [0u8; 32];
        if let Some(d) = self.device.as_mut() {
            for chunk in seed.chunks_mut(8) {
                chunk.copy_from_slice(&d.machine.random().to_be_bytes());
            }
        }
        let started_ms = self.now_ms();
        let s = &mut self.sale;
        s.operation = op.name();
        s.started_ms = started_ms;
        s.step = "Connecting…".into();
        s.outcome = None;
        s.screen = Screen::Processing;
        self.pay_event(PayEvent::Begin { op, seed });
        Vec::new()
    }

    /// Steps the payment machine; its calls and timer become commands, its notes are shown.
    pub(in crate::tui::model) fn pay_event(&mut self, event: PayEvent) {
        let Some(d) = self.device.as_mut() else {
            return;
        };
        let generation = d.generation;
        let now = d.machine.now();
        let at = chrono::DateTime::from_timestamp_millis(now.wall_ms).unwrap_or_default();
        let effects = payment::update(d.machine.state_mut(), &mut d.pay, now, event);
        for effect in effects {
            match effect {
                PayEffect::Call { id, call } => self.out.push(Cmd::Pay {
                    generation,
                    id,
                    call: Box::new(call),
                    faults: self.options.faults,
                    at,
                }),
                PayEffect::Wait(after) => self.out.push(Cmd::After {
                    slot: Slot::Pay,
                    after: after / self.options.time_warp.max(1),
                    msg: Box::new(Msg::Pay {
                        generation,
                        event: PayEvent::Timer,
                    }),
                }),
                PayEffect::Rekey => self.device_event(DeviceEvent::Rekey),
                PayEffect::Note(n) => self.pay_note(n),
            }
        }
    }

    /// After the device machine moved: a payment waiting for keys goes on (or gives up).
    pub(in crate::tui::model) fn pay_keys_check(&mut self) {
        if !self.rekeying() {
            return;
        }
        let Some(d) = self.device() else { return };
        let event = match &d.phase {
            // attest answered 409: the server no longer knows the claim, and the device pairs
            // again, which takes the merchant. The customer does not wait for that: the sale
            // ends, and the pairing code is on screen to be claimed.
            Phase::Pairing | Phase::Step(posemu_protocol::api::Step::PairingCode) => {
                self.pay_event(PayEvent::Abort(FORGOTTEN.into()));
                self.toast_(Level::Warn, FORGOTTEN);
                self.sale.outcome = None;
                self.sale.new_sale();
                return;
            }
            Phase::Ready if d.can_pay() => PayEvent::KeysReady,
            Phase::Failed(f) => PayEvent::Abort(format!("{} — {}", f.message(), f.hint())),
            Phase::UpdateRequired { version, min } => PayEvent::Abort(format!(
                "update required: app {version} is below the server's minimum {min}"
            )),
            _ => return,
        };
        self.pay_event(event);
    }

    fn pay_note(&mut self, n: PayNote) {
        let level = match &n {
            PayNote::Finished { outcome, .. } => match outcome {
                PayOutcome::Approved(_) | PayOutcome::Refunded(_) | PayOutcome::Cancelled(_) => {
                    Level::Good
                }
                PayOutcome::Declined(_) => Level::Warn,
                _ => Level::Bad,
            },
            PayNote::Retry { .. } | PayNote::ClockAdopted { .. } => Level::Warn,
            _ => Level::Info,
        };
        self.log(level, n.describe());
        let s = &mut self.sale;
        match n {
            PayNote::Rekeying => s.step = "Fetching the keys again…".into(),
            PayNote::Attempt {
                operation,
                with_pin,
                ..
            } => {
                s.step = match (operation, with_pin) {
                    ("charge", true) => "Authorising with the PIN…",
                    ("charge", false) => "Authorising…",
                    ("refund", _) => "Refunding…",
                    _ => "Cancelling…",
                }
                .into()
            }
            PayNote::Retry { retry, delay, .. } => {
                s.step = format!(
                    "No answer: retry {retry}/{} in {}",
                    payment::MAX_RETRIES,
                    posemu_protocol::duration::took(delay)
                )
            }
            PayNote::ClockAdopted { .. } => s.step = "Adopting the server's clock…".into(),
            PayNote::PinRequired { pin_given } => {
                if !pin_given {
                    s.pin = Secret(String::new());
                    s.screen = Screen::Pin;
                }
            }
            PayNote::Finished { outcome, .. } => {
                match &outcome {
                    PayOutcome::Approved(c)
                    | PayOutcome::Declined(c)
                    | PayOutcome::Cancelled(c) => s.remember(c),
                    PayOutcome::Refunded(r) => {
                        if let Some(c) = &r.charge {
                            s.remember(c);
                        }
                    }
                    _ => {}
                }
                s.outcome = Some(outcome);
                s.screen = Screen::Outcome;
            }
        }
    }
}
