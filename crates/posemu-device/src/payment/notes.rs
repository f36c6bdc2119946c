//! What the payment side tells people: notes in words and as JSON (`posemu pay --json`).
//! Notes hold no PAN, PIN or key: a charge shows only its masked card.

use std::time::Duration;

use serde_json::{json, Value};

use super::PayOutcome;
use posemu_protocol::api::CallError;
use posemu_protocol::payments::Charge;

#[derive(Debug, Clone, PartialEq)]
pub enum PayNote {
    /// The device fetches its keys again first (restarted from saved progress).
    Rekeying,
    /// An attempt starts (a new Idempotency-Key, except on cancel).
    Attempt {
        operation: &'static str,
        attempt: u32,
        idempotency_key: Option<String>,
        with_pin: bool,
    },
    /// No usable answer: retrying the same attempt (same key, new nonce and signature).
    Retry {
        retry: u32,
        delay: Duration,
        error: CallError,
        idempotency_key: Option<String>,
    },
    /// `401 Timestamp outside allowed window`: the server's clock adopted, sending again.
    ClockAdopted { offset_ms: i64 },
    /// Declined `pin_required`: the PIN given up front is used, or one is asked for.
    PinRequired { pin_given: bool },
    /// The operation (`charge`, `refund`, `cancel`, `reverse`) ended.
    Finished {
        operation: &'static str,
        outcome: PayOutcome,
    },
}

/// `{code} {message}` and the trace id of a server error, or the error itself.
pub fn error_text(e: &CallError) -> String {
    match e.error_body() {
        Some(b) => {
            let mut s = format!("HTTP {} {} {}", e.status().unwrap_or(0), b.code, b.message);
            if !b.trace_id.is_empty() {
                s.push_str(&format!(" (trace id {})", b.trace_id));
            }
            s
        }
        None => e.to_string(),
    }
}

fn charge_json(c: &Charge) -> Value {
    json!({
        "charge_id": c.charge_id,
        "status": c.status.as_str(),
        "amount": c.amount.major(),
        "tip": c.tip.major(),
        "total": c.total.major(),
        "currency": c.total.currency,
        "approved_amount": c.approved_amount.as_ref().map(|m| m.major()),
        "partial_approval": c.partial_approval,
        "auth_code": c.auth_code,
        "decline_code": c.decline_code.map(|d| d.as_str()),
        "masked_pan": c.card.masked_pan,
        "brand": c.card.brand.as_str(),
        "cvm": c.cvm,
        "rrn": c.gateway.rrn,
        "stan": c.gateway.stan,
        "response_code": c.gateway.response_code,
    })
}

impl PayOutcome {
    /// One line for a person.
    pub fn describe(&self) -> String {
        match self {
            PayOutcome::Approved(c) => {
                let approved = c.approved_amount.as_ref().unwrap_or(&c.total);
                if c.partial_approval {
                    format!(
                        "APPROVED (partial) {approved} of {} · auth {} · {}",
                        c.total,
                        c.auth_code.as_deref().unwrap_or("-"),
                        c.charge_id
                    )
                } else {
                    format!(
                        "APPROVED {approved} · auth {} · {}",
                        c.auth_code.as_deref().unwrap_or("-"),
                        c.charge_id
                    )
                }
            }
            PayOutcome::Declined(c) => match c.decline_code {
                Some(d) => format!(
                    "DECLINED {} · {} ({d}, response {}) · {}",
                    c.total,
                    d.words(),
                    c.gateway.response_code,
                    c.charge_id
                ),
                None => format!("DECLINED {} · {}", c.total, c.charge_id),
            },
            PayOutcome::Refunded(r) => format!(
                "REFUNDED {} of {} · {} ({})",
                r.amount, r.charge_id, r.refund_id, r.status
            ),
            PayOutcome::Cancelled(c) => format!(
                "CANCELLED {} · {} (cancelled at {})",
                c.total,
                c.charge_id,
                c.cancelled_at.as_deref().unwrap_or("-")
            ),
            PayOutcome::Unknown { error, charge_id } => {
                let mut s = format!("payment outcome unknown: {}", error_text(error));
                if let Some(id) = charge_id {
                    s.push_str(&format!(
                        "; the server named charge {id}: cancel it with `posemu cancel {id}`"
                    ));
                }
                s
            }
            PayOutcome::Rejected(e) => format!("refused by the server: {}", error_text(e)),
            PayOutcome::Refused(why) => format!("not sent: {why}"),
        }
    }

    /// The outcome as the last JSON line of `posemu pay|refund|cancel --json`.
    pub fn to_json(&self) -> Value {
        let mut v = match self {
            PayOutcome::Approved(c) | PayOutcome::Declined(c) | PayOutcome::Cancelled(c) => {
                charge_json(c)
            }
            PayOutcome::Refunded(r) => json!({
                "refund_id": r.refund_id,
                "charge_id": r.charge_id,
                "amount": r.amount.major(),
                "currency": r.amount.currency,
                "reason": r.reason.as_str(),
                "charge_status": r.charge.as_ref().map(|c| c.status.as_str()),
            }),
            PayOutcome::Unknown { error, charge_id } => json!({
                "charge_id": charge_id, "message": error_text(error), "http_status": error.status(),
            }),
            PayOutcome::Rejected(e) => {
                let b = e.error_body();
                json!({
                    "message": error_text(e),
                    "http_status": e.status(),
                    "code": b.map(|b| b.code.clone()),
                    "server_message": b.map(|b| b.message.clone()),
                    "trace_id": b.map(|b| b.trace_id.clone()),
                })
            }
            PayOutcome::Refused(why) => json!({ "message": why }),
        };
        v["status"] = json!(self.kind());
        v
    }
}

impl PayNote {
    pub fn kind(&self) -> &'static str {
        match self {
            PayNote::Rekeying => "rekeying",
            PayNote::Attempt { .. } => "attempt",
            PayNote::Retry { .. } => "retry",
            PayNote::ClockAdopted { .. } => "clock_adopted",
            PayNote::PinRequired { .. } => "pin_required",
            PayNote::Finished { operation, .. } => operation,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PayNote::Rekeying => {
                "no keys in memory (restarted): attesting and fetching the key set again".into()
            }
            PayNote::Attempt {
                operation,
                attempt,
                idempotency_key,
                with_pin,
            } => {
                let mut s = format!("{operation} attempt {attempt}");
                if *with_pin {
                    s.push_str(" with PIN block");
                }
                if let Some(k) = idempotency_key {
                    s.push_str(&format!(" · Idempotency-Key {k}"));
                }
                s
            }
            PayNote::Retry {
                retry,
                delay,
                error,
                ..
            } => format!(
                "no usable answer ({}); retry {retry}/{} in {} with the same Idempotency-Key",
                error_text(error),
                super::MAX_RETRIES,
                posemu_protocol::duration::took(*delay)
            ),
            PayNote::ClockAdopted { offset_ms } => format!(
                "timestamp outside the server's window: adopting its clock ({:+.1} s) and retrying once",
                *offset_ms as f64 / 1000.0
            ),
            PayNote::PinRequired { pin_given: true } => {
                "PIN required: sending again with the PIN block (new Idempotency-Key)".into()
            }
            PayNote::PinRequired { pin_given: false } => "PIN required".into(),
            PayNote::Finished { outcome, .. } => outcome.describe(),
        }
    }

    /// One JSON object; `event` is the kind, and for the outcome the operation (`charge`, …).
    pub fn to_json(&self) -> Value {
        let mut v = match self {
            PayNote::Rekeying => json!({}),
            PayNote::Attempt {
                operation,
                attempt,
                idempotency_key,
                with_pin,
            } => json!({
                "operation": operation, "attempt": attempt,
                "idempotency_key": idempotency_key, "with_pin": with_pin,
            }),
            PayNote::Retry {
                retry,
                delay,
                error,
                idempotency_key,
            } => json!({
                "retry": retry, "delay_ms": delay.as_millis() as u64,
                "error": error_text(error), "http_status": error.status(),
                "idempotency_key": idempotency_key,
            }),
            PayNote::ClockAdopted { offset_ms } => json!({ "offset_ms": offset_ms }),
            PayNote::PinRequired { pin_given } => json!({ "pin_given": pin_given }),
            PayNote::Finished { outcome, .. } => outcome.to_json(),
        };
        v["event"] = json!(self.kind());
        v
    }
}
