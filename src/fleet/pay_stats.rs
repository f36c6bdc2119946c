//! What the fleet counts about payments: latency and errors per payment request (charge,
//! refund, cancel and the sandbox's settle helper), and how the operations ended. Kept beside
//! the activation [`Stats`](super::stats::Stats) as one field of it, merged the same way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::stats::{error_key, EndpointStats, Hist};
use posemu_device::payment::PayOutcome;
use posemu_protocol::api::CallError;

/// The payment requests a fleet makes, each a latency row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PayOp {
    Charge,
    Refund,
    Cancel,
    /// `POST /sandbox/settle`, before a refund.
    Settle,
}

pub const PAY_OPS: usize = 4;

impl PayOp {
    pub const ALL: [PayOp; PAY_OPS] = [PayOp::Charge, PayOp::Refund, PayOp::Cancel, PayOp::Settle];

    pub fn name(self) -> &'static str {
        match self {
            PayOp::Charge => "charge",
            PayOp::Refund => "refund",
            PayOp::Cancel => "cancel",
            PayOp::Settle => "settle",
        }
    }

    pub fn from_name(s: &str) -> Option<PayOp> {
        PayOp::ALL.into_iter().find(|o| o.name() == s)
    }

    /// The row of a machine operation (`charge`, `refund`, `cancel`, `reverse`).
    pub fn of_operation(op: &str) -> PayOp {
        match op {
            "refund" => PayOp::Refund,
            "cancel" | "reverse" => PayOp::Cancel,
            _ => PayOp::Charge,
        }
    }
}

/// How payment operations ended. Every field is a count, so shards add up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcomes {
    /// Charge operations begun.
    pub started: u64,
    /// Charge operations ended (approved, partially approved, declined, unknown, error).
    pub charges: u64,
    /// Approved for the whole amount.
    pub approved: u64,
    pub partially_approved: u64,
    pub declined: u64,
    /// Declines by `decline_code`.
    pub declined_by_code: BTreeMap<String, u64>,
    /// Any operation whose outcome the terminal could not learn (spec 7.11).
    pub unknown: u64,
    /// Any operation the server refused with a 4xx (never retried).
    pub rejected: u64,
    /// Any operation the terminal could not send.
    pub refused: u64,
    pub refunded: u64,
    pub cancelled: u64,
    /// Refunds not tried: the server has no `POST /sandbox/settle`.
    pub refunds_skipped: u64,
    /// Charges that came due while the terminal was still busy with the last one.
    pub busy_skipped: u64,
    /// Retries of a request after no answer, a timeout or a 5xx (same Idempotency-Key).
    pub retries: u64,
}

/// Distinct decline codes and error keys kept; the rest count under "other".
const MAX_KEYS: usize = 64;

fn bump(map: &mut BTreeMap<String, u64>, key: String, n: u64) {
    let key = if map.len() >= MAX_KEYS && !map.contains_key(&key) {
        "other".to_string()
    } else {
        key
    };
    *map.entry(key).or_default() += n;
}

impl Outcomes {
    pub fn add(&mut self, o: &Outcomes) {
        self.started += o.started;
        self.charges += o.charges;
        self.approved += o.approved;
        self.partially_approved += o.partially_approved;
        self.declined += o.declined;
        for (k, v) in &o.declined_by_code {
            bump(&mut self.declined_by_code, k.clone(), *v);
        }
        self.unknown += o.unknown;
        self.rejected += o.rejected;
        self.refused += o.refused;
        self.refunded += o.refunded;
        self.cancelled += o.cancelled;
        self.refunds_skipped += o.refunds_skipped;
        self.busy_skipped += o.busy_skipped;
        self.retries += o.retries;
    }

    /// Counts an ended operation (`charge`, `refund`, `cancel`, `reverse`).
    pub fn ended(&mut self, operation: &str, outcome: &PayOutcome) {
        if PayOp::of_operation(operation) == PayOp::Charge {
            self.charges += 1;
        }
        match outcome {
            PayOutcome::Approved(c) if c.partial_approval => self.partially_approved += 1,
            PayOutcome::Approved(_) => self.approved += 1,
            PayOutcome::Declined(c) => {
                self.declined += 1;
                let code = c.decline_code.map_or("none", |d| d.as_str());
                bump(&mut self.declined_by_code, code.to_string(), 1);
            }
            PayOutcome::Refunded(_) => self.refunded += 1,
            PayOutcome::Cancelled(_) => self.cancelled += 1,
            PayOutcome::Unknown { .. } => self.unknown += 1,
            PayOutcome::Rejected(_) => self.rejected += 1,
            PayOutcome::Refused(_) => self.refused += 1,
        }
    }
}

/// One worker's payment counts (or the sum of several).
#[derive(Debug, Clone, Default)]
pub struct PayStats {
    pub ops: [EndpointStats; PAY_OPS],
    /// Error answers by `{request} {key}` (`charge 5004`, `settle HTTP 404`).
    pub errors: BTreeMap<String, u64>,
    pub outcomes: Outcomes,
    /// Latency of the charge requests sent once every device of the run had settled
    /// (activated or failed): the steady state, without the activation storm.
    pub charge_activated: Hist,
}

impl PayStats {
    pub fn request(&mut self, op: PayOp, latency_us: u64, error: Option<&CallError>) {
        let e = &mut self.ops[op as usize];
        e.latency.record(latency_us);
        if let Some(err) = error {
            e.errors += 1;
            bump(
                &mut self.errors,
                format!("{} {}", op.name(), error_key(err)),
                1,
            );
        }
    }

    pub fn requests(&self) -> u64 {
        self.ops.iter().map(|e| e.latency.len()).sum()
    }

    pub fn error_count(&self) -> u64 {
        self.ops.iter().map(|e| e.errors).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.requests() == 0 && self.outcomes == Outcomes::default()
    }

    pub fn add(&mut self, o: &PayStats) {
        for (a, b) in self.ops.iter_mut().zip(&o.ops) {
            a.latency.add(&b.latency);
            a.errors += b.errors;
        }
        for (k, v) in &o.errors {
            bump(&mut self.errors, k.clone(), *v);
        }
        self.outcomes.add(&o.outcomes);
        self.charge_activated.add(&o.charge_activated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_keys_are_bounded() {
        let mut s = PayStats::default();
        for i in 0..200u16 {
            let e = CallError::Http {
                status: 400 + (i % 100),
                error: None,
                retry_after: None,
            };
            s.request(PayOp::Charge, 10, Some(&e));
        }
        assert!(s.errors.len() <= MAX_KEYS + 1, "{}", s.errors.len());
        assert_eq!(s.errors.values().sum::<u64>(), 200);
        assert_eq!(s.error_count(), 200);
        let mut t = PayStats::default();
        t.add(&s);
        t.add(&s);
        assert_eq!(t.requests(), 400);
        assert!(t.errors.len() <= MAX_KEYS + 1);
    }

    #[test]
    fn op_names_round_trip() {
        for o in PayOp::ALL {
            assert_eq!(PayOp::from_name(o.name()), Some(o));
        }
        assert_eq!(PayOp::of_operation("reverse"), PayOp::Cancel);
    }
}
