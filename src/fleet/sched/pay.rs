//! The payment side of a fleet terminal: once activated (with `--charges-per-minute`), a
//! terminal stays in its worker's slab and runs the pure payment machine
//! (`posemu_device::payment::update`) with the keys its activation installed. Charges arrive
//! as a Poisson process (exponential gaps from the worker's seeded rng); each one's kind comes
//! from the mix. Follow-ups (a cancel, or settle then refund) run as the same terminal's next
//! operations. Retries are the machine's: same Idempotency-Key, so never a second payment.

use chrono::Datelike;

use super::super::charges::{charge_for, ChargeKind};
use super::super::pay_stats::PayOp as Row;
use super::*;
use posemu_client::payments::is_safe_charge_id;
use posemu_client::sandbox_settle_charge;
use posemu_device::payment::{self, PayEffect, PayEvent, PayNote, PayOp, PayOutcome, Payments};

/// A terminal's payment state.
pub(super) struct Till {
    pay: Payments,
    /// The kind of the charge in progress (for its follow-up).
    kind: ChargeKind,
    /// The card's expiry year (a few years ahead).
    exp_year: u32,
    /// Waiting for `POST /sandbox/settle` before refunding this many minor units.
    settling: Option<u64>,
}

impl Till {
    fn busy(&self) -> bool {
        !self.pay.is_free() || self.settling.is_some()
    }
}

impl Worker {
    fn take_live(&mut self, j: usize) -> Option<Box<Dev>> {
        if !matches!(self.slots[j], Slot::Live(_)) {
            return None;
        }
        match std::mem::replace(&mut self.slots[j], Slot::Done) {
            Slot::Live(dev) => Some(dev),
            _ => None,
        }
    }

    /// The device just activated: open its till and schedule its first charge.
    pub(super) fn open_till(&mut self, j: usize, dev: &mut Dev) {
        // a fleet prints no receipts: the whole config tree was most of a terminal's memory
        payment::keep_only_currency(&mut dev.state);
        dev.till = Some(Box::new(Till {
            pay: Payments::new(),
            kind: ChargeKind::Approve,
            exp_year: (Utc::now().year().max(2000) as u32).saturating_add(3),
            settling: None,
        }));
        self.schedule_charge(j, dev);
    }

    fn schedule_charge(&mut self, j: usize, dev: &mut Dev) {
        let Some(plan) = &self.plan.charges else {
            return;
        };
        let gap = plan.gap(self.rng.random());
        let at = self.plan.now_ms() + gap.as_millis() as u64;
        dev.due[CHARGE] = at;
        self.timers.push(at, j as u32, CHARGE as u8);
    }

    /// A charge arrives at terminal `j`.
    pub(super) fn charge_due(&mut self, j: usize) {
        let Some(mut dev) = self.take_live(j) else {
            return;
        };
        self.schedule_charge(j, &mut dev);
        let plan = self.plan.clone();
        if let (Some(till), Some(charges)) = (dev.till.as_mut(), &plan.charges) {
            if till.busy() {
                self.stats.lock().pay.outcomes.busy_skipped += 1;
            } else {
                let kind = charges.mix.pick(self.rng.random());
                till.kind = kind;
                let op = charge_for(kind, self.rng.random(), self.rng.random(), till.exp_year);
                self.stats.lock().pay.outcomes.started += 1;
                let seed = self.rng.random();
                self.run_pay(j, &mut dev, PayEvent::Begin { op, seed });
            }
        }
        self.slots[j] = Slot::Live(dev);
    }

    /// Feeds one event to terminal `j`'s payment machine.
    pub(super) fn feed_pay(&mut self, j: usize, event: PayEvent) {
        let Some(mut dev) = self.take_live(j) else {
            return;
        };
        self.run_pay(j, &mut dev, event);
        self.slots[j] = Slot::Live(dev);
    }

    fn run_pay(&mut self, j: usize, dev: &mut Dev, event: PayEvent) {
        let now = Now {
            mono_ms: self.plan.now_ms(),
            wall_ms: Utc::now().timestamp_millis(),
            random: self.rng.random(),
        };
        let Dev {
            state, till, due, ..
        } = dev;
        let Some(till) = till.as_mut() else {
            return;
        };
        let mut next: Option<PayEvent> = None;
        for effect in payment::update(state, &mut till.pay, now, event) {
            match effect {
                PayEffect::Call { id, call } => self.queue.push_back(Queued::Pay {
                    slot: j as u32,
                    id,
                    call: Box::new(call),
                }),
                PayEffect::Wait(after) => {
                    let at = now.mono_ms + after.as_millis() as u64;
                    due[PAY_RETRY] = at;
                    self.timers.push(at, j as u32, PAY_RETRY as u8);
                }
                // the fleet's terminals keep their keys in memory; nothing to fetch them with
                PayEffect::Rekey => {
                    next = Some(PayEvent::Abort("the terminal has no keys".into()));
                }
                PayEffect::Note(PayNote::Retry { .. }) => {
                    self.stats.lock().pay.outcomes.retries += 1;
                }
                PayEffect::Note(PayNote::Finished { operation, outcome }) => {
                    self.stats.lock().pay.outcomes.ended(operation, &outcome);
                    next = self.follow_up(till, operation, &outcome, j);
                }
                PayEffect::Note(_) => {}
            }
        }
        if let Some(e) = next {
            self.run_pay(j, dev, e);
        }
    }

    /// What an approved charge of a `cancel` or `refund` kind does next.
    fn follow_up(
        &mut self,
        till: &mut Till,
        operation: &str,
        outcome: &PayOutcome,
        j: usize,
    ) -> Option<PayEvent> {
        let PayOutcome::Approved(c) = outcome else {
            return None;
        };
        if operation != "charge" || !matches!(till.kind, ChargeKind::Cancel | ChargeKind::Refund) {
            return None;
        }
        if !is_safe_charge_id(&c.charge_id) {
            // it goes into a request path: a hostile id is not followed up
            self.stats.lock().pay.outcomes.refused += 1;
            return None;
        }
        match till.kind {
            ChargeKind::Cancel => Some(PayEvent::Begin {
                op: PayOp::Cancel {
                    charge_id: c.charge_id.clone(),
                    reverse: false,
                },
                seed: self.rng.random(),
            }),
            ChargeKind::Refund => {
                let amount = c.approved_amount.as_ref().unwrap_or(&c.total).value;
                till.settling = Some(amount);
                self.queue.push_back(Queued::Settle {
                    slot: j as u32,
                    charge_id: c.charge_id.clone(),
                });
                None
            }
            _ => None,
        }
    }

    pub(super) fn send_pay(&mut self, j: usize, id: u32, call: PayCall) {
        let Slot::Live(dev) = &self.slots[j] else {
            return;
        };
        let op = Row::of_operation(call.request.name());
        let steady = self
            .plan
            .unsettled
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0;
        let transport = dev.transport.as_deref().unwrap_or(&self.transport);
        let fut = transport.pay(
            &dev.identity,
            &dev.faults,
            &call,
            Utc::now(),
            &mut self.rng,
            None,
        );
        let slot = j as u32;
        self.in_flight.push(Box::pin(async move {
            let (result, latency_us) = super::calls::timed(fut).await;
            Done::Paid {
                slot,
                call: id,
                op,
                steady,
                result,
                latency_us,
            }
        }));
    }

    pub(super) fn on_paid(
        &mut self,
        j: usize,
        call: u32,
        (op, steady): (Row, bool),
        result: Result<PayAnswer, CallError>,
        latency_us: u64,
    ) {
        {
            let mut s = self.stats.lock();
            s.pay.request(op, latency_us, result.as_ref().err());
            if steady && op == Row::Charge {
                s.pay.charge_activated.record(latency_us);
            }
        }
        self.feed_pay(j, PayEvent::Answer { call, result });
    }

    pub(super) fn send_settle(&mut self, j: usize, charge_id: String) {
        let transport = match &self.slots[j] {
            Slot::Live(dev) => dev.transport.as_deref().unwrap_or(&self.transport).clone(),
            _ => return,
        };
        let slot = j as u32;
        self.in_flight.push(Box::pin(async move {
            let (result, latency_us) =
                super::calls::timed(sandbox_settle_charge(&transport, &charge_id, None)).await;
            Done::Settled {
                slot,
                charge_id,
                result: result.map(|_| ()).map_err(|e| e.source),
                latency_us,
            }
        }));
    }

    /// The settle helper answered: refund in full, or count the refund as skipped when the
    /// server has no such helper.
    pub(super) fn on_settled(
        &mut self,
        j: usize,
        charge_id: String,
        result: Result<(), CallError>,
        latency_us: u64,
    ) {
        let no_helper = matches!(&result, Err(e) if is_missing_route(e));
        {
            let mut s = self.stats.lock();
            let error = result.as_ref().err().filter(|_| !no_helper);
            s.pay.request(Row::Settle, latency_us, error);
            if no_helper {
                s.pay.outcomes.refunds_skipped += 1;
            }
        }
        let Some(mut dev) = self.take_live(j) else {
            return;
        };
        let amount = dev.till.as_mut().and_then(|t| t.settling.take());
        if let (Some(amount), Ok(())) = (amount, result) {
            let seed = self.rng.random();
            let op = PayOp::Refund {
                charge_id,
                amount,
                reason: None,
                idempotency_key: None,
            };
            self.run_pay(j, &mut dev, PayEvent::Begin { op, seed });
        }
        self.slots[j] = Slot::Live(dev);
    }
}

/// A server without the sandbox's settle route: 405, 501, or a 404 that is not the helper's
/// own `Charge not found` (spec 7.12).
fn is_missing_route(e: &CallError) -> bool {
    match e.status() {
        Some(405 | 501) => true,
        Some(404) => e.error_body().is_none_or(|b| b.message != CHARGE_NOT_FOUND),
        _ => false,
    }
}

/// The message of the settle helper's 404 for an unknown charge (spec 7.12).
const CHARGE_NOT_FOUND: &str = "Charge not found";

#[cfg(test)]
mod tests {
    use super::*;
    use posemu_protocol::error::ErrorBody;

    fn http(status: u16, message: Option<&str>) -> CallError {
        CallError::Http {
            status,
            retry_after: None,
            error: message.map(|m| ErrorBody {
                code: "4004".into(),
                message: m.into(),
                details: None,
                trace_id: String::new(),
            }),
        }
    }

    #[test]
    fn a_server_without_the_settle_helper_is_told_from_a_missing_charge() {
        assert!(is_missing_route(&http(404, None)));
        assert!(is_missing_route(&http(404, Some("Route not found"))));
        assert!(is_missing_route(&http(405, Some("Method not allowed"))));
        assert!(is_missing_route(&http(501, None)));
        assert!(!is_missing_route(&http(404, Some("Charge not found"))));
        assert!(!is_missing_route(&http(
            409,
            Some("Charge cannot be settled")
        )));
        assert!(!is_missing_route(&http(500, None)));
        assert!(!is_missing_route(&CallError::Network("refused".into())));
    }
}
