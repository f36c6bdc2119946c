//! The server-side checks of a payment request body (spec 7.3, 7.6, 7.8), in the spec's order:
//! the envelope, then the plaintext field by field. Pure functions, so the device side can run
//! them on what it is about to send, and tests can run them without a server.

use serde_json::{Map, Value};

use super::money::{is_valid_currency, parse_minor, parse_tip, Money};
use super::pinblock;
use super::wire::{CardData, ChargeRequest, EntryMode, RefundAmount, RefundReason, RefundRequest};
use crate::api::Secret;
use crate::crypto::{sha256_hex, Key};
use crate::envelope::{open, DataEnvelope, Envelope, EnvelopeError, FORMAT_SINGLE, MODE_CBC};

/// Why a request envelope was refused (spec 7.3, rows 1–3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeProblem {
    /// `400 Invalid request body`, `{"reason":"expected a TR31-DATA envelope"}`.
    Shape,
    /// `400 key_kcv does not match MSK`.
    Kcv,
    /// `400 Envelope could not be decrypted`.
    Decrypt,
}

/// Why a plaintext was refused (spec 7.3, rows 4–5): both answer `400 Invalid request body`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyProblem {
    /// `{"reason":"plaintext is not a JSON object"}`.
    NotObject,
    /// `{"field": …, "reason": "required" | "invalid"}`.
    Field { field: &'static str, reason: Reason },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Required,
    Invalid,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Required => "required",
            Reason::Invalid => "invalid",
        }
    }
}

/// The `details` reason of a shape problem.
pub const REASON_NOT_ENVELOPE: &str = "expected a TR31-DATA envelope";
/// The `details` reason of a plaintext that is not an object.
pub const REASON_NOT_OBJECT: &str = "plaintext is not a JSON object";

fn absent(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

/// Opens a request envelope: a JSON object with `format` `TR31-DATA`, `mode` `CBC`, string
/// `ciphertext` and `initialization_vector`, and no `content_encoding` (`null` counts as
/// absent, as for `key_kcv`). A `key_kcv` must be the MSK's KCV (any case).
pub fn open_request_envelope(msk: &Key, body: &[u8]) -> Result<Vec<u8>, EnvelopeProblem> {
    let v: Value = serde_json::from_slice(body).map_err(|_| EnvelopeProblem::Shape)?;
    let o = v.as_object().ok_or(EnvelopeProblem::Shape)?;
    let text = |k: &str| o.get(k).and_then(Value::as_str);
    let shape_ok = text("format") == Some(FORMAT_SINGLE)
        && text("mode") == Some(MODE_CBC)
        && text("ciphertext").is_some()
        && text("initialization_vector").is_some()
        && absent(o.get("content_encoding"));
    if !shape_ok {
        return Err(EnvelopeProblem::Shape);
    }
    let key_kcv = match o.get("key_kcv") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        // present and not a string: it cannot be the MSK's KCV
        Some(_) => return Err(EnvelopeProblem::Kcv),
    };
    let env = Envelope::Single(DataEnvelope {
        format: FORMAT_SINGLE.into(),
        content_encoding: None,
        ciphertext: text("ciphertext").unwrap_or_default().to_string(),
        initialization_vector: text("initialization_vector")
            .unwrap_or_default()
            .to_string(),
        mode: MODE_CBC.into(),
        key_kcv,
    });
    open(msk, &env).map_err(|e| match e {
        EnvelopeError::Kcv { .. } => EnvelopeProblem::Kcv,
        _ => EnvelopeProblem::Decrypt,
    })
}

fn object(plain: &[u8]) -> Result<Map<String, Value>, BodyProblem> {
    match serde_json::from_slice::<Value>(plain) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(BodyProblem::NotObject),
    }
}

fn err(field: &'static str, reason: Reason) -> BodyProblem {
    BodyProblem::Field { field, reason }
}

/// A required field: missing, `null` or `""` is `required`.
fn required<'a>(
    o: &'a Map<String, Value>,
    k: &str,
    field: &'static str,
) -> Result<&'a Value, BodyProblem> {
    match o.get(k) {
        None | Some(Value::Null) => Err(err(field, Reason::Required)),
        Some(Value::String(s)) if s.is_empty() => Err(err(field, Reason::Required)),
        Some(v) => Ok(v),
    }
}

/// An optional field: missing or `null` is absent.
fn optional<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    o.get(k).filter(|v| !v.is_null())
}

fn as_object<'a>(v: &'a Value, field: &'static str) -> Result<&'a Map<String, Value>, BodyProblem> {
    v.as_object().ok_or(err(field, Reason::Invalid))
}

fn as_str<'a>(v: &'a Value, field: &'static str) -> Result<&'a str, BodyProblem> {
    v.as_str().ok_or(err(field, Reason::Invalid))
}

/// A JSON integer in `range` (`12`, not `12.0` or `"12"`).
fn integer(
    v: &Value,
    field: &'static str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u32, BodyProblem> {
    v.as_u64()
        .filter(|n| range.contains(n))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(err(field, Reason::Invalid))
}

fn is_valid_reference(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| (0x20..=0x7E).contains(&b))
}

/// A charge plaintext that passed every check of spec 7.6.
pub struct ValidCharge {
    /// The normalized request: `tip` filled with `"0"` when absent, `pin_block` uppercase,
    /// `allow_partial_approval` set; unknown fields dropped.
    pub request: ChargeRequest,
    /// The PIN of a `pin_block` that deciphered (never logged or returned).
    pub pin: Option<Secret<String>>,
}

impl ValidCharge {
    /// SHA-256 (hex) of the normalized request (spec 7.4): a re-encrypted or re-serialized
    /// copy of the same plaintext has the same digest; a new PIN block (new pad) does not.
    pub fn digest(&self) -> String {
        sha256_hex(&serde_json::to_vec(&self.request).unwrap_or_default())
    }

    pub fn allow_partial_approval(&self) -> bool {
        self.request.allow_partial_approval.unwrap_or(false)
    }

    pub fn tip(&self) -> u64 {
        self.request.tip.as_ref().map_or(0, |t| t.value)
    }
}

/// Checks a charge plaintext in the order of spec 7.6; the first failure is reported. The
/// PIN block is deciphered with `tpk` and `card.pan`.
pub fn charge_request(plain: &[u8], tpk: &Key) -> Result<ValidCharge, BodyProblem> {
    let o = object(plain)?;
    let amount = as_object(required(&o, "amount", "amount")?, "amount")?;
    let value = as_str(required(amount, "value", "amount.value")?, "amount.value")?;
    let value = parse_minor(value).ok_or(err("amount.value", Reason::Invalid))?;
    let currency = as_str(
        required(amount, "currency", "amount.currency")?,
        "amount.currency",
    )?;
    if !is_valid_currency(currency) {
        return Err(err("amount.currency", Reason::Invalid));
    }
    let tip = match optional(&o, "tip") {
        None => 0,
        Some(t) => {
            let t = as_object(t, "tip")?;
            let tv = as_str(required(t, "value", "tip.value")?, "tip.value")?;
            let tv = parse_tip(tv).ok_or(err("tip.value", Reason::Invalid))?;
            let tc = as_str(required(t, "currency", "tip.currency")?, "tip.currency")?;
            if tc != currency {
                return Err(err("tip.currency", Reason::Invalid));
            }
            tv
        }
    };
    let entry = as_str(required(&o, "entry_mode", "entry_mode")?, "entry_mode")?;
    let entry_mode = EntryMode::parse(entry).ok_or(err("entry_mode", Reason::Invalid))?;
    let card = as_object(required(&o, "card", "card")?, "card")?;
    let pan = as_str(required(card, "pan", "card.pan")?, "card.pan")?;
    if !super::card::is_valid_pan(pan) {
        return Err(err("card.pan", Reason::Invalid));
    }
    let exp_month = integer(
        required(card, "exp_month", "card.exp_month")?,
        "card.exp_month",
        1..=12,
    )?;
    let exp_year = integer(
        required(card, "exp_year", "card.exp_year")?,
        "card.exp_year",
        2000..=2099,
    )?;
    let (pin_block, pin) = match optional(&o, "pin_block") {
        None => (None, None),
        Some(b) => {
            let b = as_str(b, "pin_block")?;
            let pin =
                pinblock::decipher(tpk, b, pan).map_err(|_| err("pin_block", Reason::Invalid))?;
            (Some(b.to_ascii_uppercase()), Some(pin))
        }
    };
    let reference = match optional(&o, "reference") {
        None => None,
        Some(r) => {
            let r = as_str(r, "reference")?;
            if !is_valid_reference(r) {
                return Err(err("reference", Reason::Invalid));
            }
            Some(r.to_string())
        }
    };
    let allow_partial = match optional(&o, "allow_partial_approval") {
        None => false,
        Some(b) => b
            .as_bool()
            .ok_or(err("allow_partial_approval", Reason::Invalid))?,
    };
    Ok(ValidCharge {
        request: ChargeRequest {
            amount: Money::new(value, currency),
            tip: Some(Money::new(tip, currency)),
            entry_mode,
            card: CardData {
                pan: pan.to_string(),
                exp_month,
                exp_year,
            },
            pin_block,
            reference,
            allow_partial_approval: Some(allow_partial),
        },
        pin,
    })
}

/// Checks a refund plaintext in the order of spec 7.8.
pub fn refund_request(plain: &[u8]) -> Result<RefundRequest, BodyProblem> {
    let o = object(plain)?;
    let amount = as_object(required(&o, "amount", "amount")?, "amount")?;
    let value = as_str(required(amount, "value", "amount.value")?, "amount.value")?;
    let value = parse_minor(value).ok_or(err("amount.value", Reason::Invalid))?;
    let currency = match optional(amount, "currency") {
        None => None,
        Some(c) => {
            let c = as_str(c, "amount.currency")?;
            if !is_valid_currency(c) {
                return Err(err("amount.currency", Reason::Invalid));
            }
            Some(c.to_string())
        }
    };
    let reason = match optional(&o, "reason") {
        None => None,
        Some(r) => {
            Some(RefundReason::parse(as_str(r, "reason")?).ok_or(err("reason", Reason::Invalid))?)
        }
    };
    Ok(RefundRequest {
        amount: RefundAmount { value, currency },
        reason,
    })
}

impl RefundRequest {
    /// The request with its defaults filled in: the charge's currency and
    /// `requested_by_customer`.
    pub fn normalized(&self, charge_currency: &str) -> RefundRequest {
        RefundRequest {
            amount: RefundAmount {
                value: self.amount.value,
                currency: Some(
                    self.amount
                        .currency
                        .clone()
                        .unwrap_or_else(|| charge_currency.to_string()),
                ),
            },
            reason: Some(self.reason.unwrap_or_default()),
        }
    }

    /// SHA-256 (hex) of the normalized request (spec 7.4).
    pub fn digest(&self, charge_currency: &str) -> String {
        sha256_hex(&serde_json::to_vec(&self.normalized(charge_currency)).unwrap_or_default())
    }
}
