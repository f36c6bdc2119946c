//! Payments (spec section 7): per-terminal ledgers of charges, refunds, Idempotency-Keys and
//! nonces, settlement, and the operations the payment routes call. Every operation here is
//! synchronous: an `await` never separates claiming an Idempotency-Key from storing its answer.
//!
//! # Retention
//!
//! Memory is bounded per terminal and in all; within these bounds a payment is never lost or
//! applied twice:
//!
//! - charges: the newest [`MAX_CHARGES_PER_TERMINAL`] of each terminal, and about the newest
//!   [`shard::MAX_CHARGES`] of the whole sandbox (older ones are forgotten, oldest first, with the
//!   Idempotency-Key that made them, and then answer 404);
//! - Idempotency-Keys: 24 h from the request that stored them
//!   ([`posemu_protocol::payments::IDEMPOTENCY_TTL_SECS`]), and at most the newest
//!   [`MAX_IDEMPOTENCY_KEYS_PER_TERMINAL`] of each terminal;
//! - payment nonces: 10 min ([`posemu_protocol::payments::NONCE_MEMORY_SECS`]), at most the
//!   newest [`MAX_NONCES_PER_TERMINAL`] of each terminal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use posemu_protocol::clock::rfc3339;
use posemu_protocol::payments::card::{brand_of, last4, masked_pan, TEST_PIN};
use posemu_protocol::payments::validate::ValidCharge;
use posemu_protocol::payments::wire::{
    CardSummary, Charge, ChargeStatus, Cvm, Gateway, Refund, RefundRequest, Settlement,
    SettlementStatus, REFUND_SUCCEEDED,
};
use posemu_protocol::payments::Money;

use crate::error::{ApiError, ApiResult};
use crate::state::DevKey;

pub mod ledger;
pub mod outcome;
mod settle;
mod shard;
pub mod terminals;

use ledger::{IdemCheck, Ledger};
#[cfg(test)]
use shard::MAX_CHARGES;
use shard::{Shard, SHARDS};

/// Charges kept per terminal (see the module docs).
pub const MAX_CHARGES_PER_TERMINAL: usize = 10_000;
/// Idempotency-Keys kept per terminal, besides their 24 h lifetime.
pub const MAX_IDEMPOTENCY_KEYS_PER_TERMINAL: usize = 10_000;
/// Payment nonces kept per terminal, besides their 10 min lifetime.
pub const MAX_NONCES_PER_TERMINAL: usize = 100_000;
/// [POSEMU] `gateway.acquirer` in the sandbox (spec 7.5).
pub const ACQUIRER: &str = "posemu-sandbox";
/// Random base62 characters after `ch_`, `re_` and `bat_` (spec 7.5, 7.8, 7.12).
pub const ID_RANDOM_LEN: usize = 24;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// What a payment needs to know about its terminal (from its device and config, 4.9).
/// [`Payments::terminal`] keeps it per device: none of it can change once the device exists.
pub struct Terminal {
    pub key: DevKey,
    pub terminal_id: String,
    pub merchant_id: String,
    /// Config `emv.currency`.
    pub currency: String,
    /// Config `merchant.tip_info.enabled`.
    pub tips_enabled: bool,
    /// Config `security.pin_required_above_minor` and `security.contactless_limit_minor`.
    pub pin_required_above: u64,
    pub contactless_limit: u64,
}

/// The 200 of a charge or refund, as plaintext to seal.
pub struct Answer {
    pub plaintext: Arc<[u8]>,
    /// An Idempotency-Key replay (`Idempotent-Replayed: true`).
    pub replayed: bool,
    /// Row 13 of 7.7: answer `504` with this charge id instead.
    pub late_charge_id: Option<String>,
}

/// Which charges `POST /sandbox/settle` settles.
pub enum SettleScope {
    All,
    Terminal(Vec<DevKey>),
    Charge(String),
}

/// What [`Payments::charges_of`] answers.
#[derive(Debug, Default)]
pub struct ChargeList {
    /// Newest first.
    pub charges: Vec<Charge>,
    pub total: usize,
    /// Approved charges whose settlement is pending.
    pub pending: usize,
}

struct AutoSettle {
    period_ms: i64,
    next_ms: i64,
}

pub struct Payments {
    pub terminals: terminals::TerminalIndex,
    shards: Vec<Mutex<Shard>>,
    /// Charge id → its terminal's device.
    owners: Mutex<HashMap<String, DevKey>>,
    rng: Mutex<StdRng>,
    rrn_base: u64,
    rrn_next: AtomicU64,
    magic_amounts: bool,
    auto_settle: Option<Mutex<AutoSettle>>,
}

fn json_bytes<T: serde::Serialize>(v: &T) -> Arc<[u8]> {
    Arc::from(serde_json::to_vec(v).unwrap_or_default())
}

fn charge_not_found(id: &str) -> ApiError {
    ApiError::new(404, "Charge not found").detail("charge_id", id)
}

/// What the idempotency check means for the request: the stored answer to replay
/// (`Ok(Some)`), its 409/422 (`Err`), or go on with the key held (`Ok(None)`).
fn idem_gate(check: IdemCheck, key: &str) -> ApiResult<Option<Answer>> {
    match check {
        IdemCheck::Fresh => Ok(None),
        IdemCheck::Replay(plaintext) => Ok(Some(Answer {
            plaintext,
            replayed: true,
            late_charge_id: None,
        })),
        IdemCheck::InProgress => Err(ApiError::new(
            409,
            "A request with this Idempotency-Key is in progress",
        )
        .detail("idempotency_key", key)),
        IdemCheck::Conflict => Err(ApiError::new(
            422,
            "Idempotency-Key was used with a different request",
        )
        .detail("idempotency_key", key)),
    }
}

impl Payments {
    /// `settle_every`: automatic settlement every so many ms of sandbox clock from `start`.
    pub fn new(
        seed: u64,
        magic_amounts: bool,
        settle_every_ms: Option<i64>,
        start: DateTime<Utc>,
    ) -> Payments {
        let mut rng = StdRng::seed_from_u64(seed);
        let rrn_base = rng.random_range(100_000u64..900_000) * 1_000_000;
        Payments {
            terminals: Default::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            owners: Mutex::new(HashMap::new()),
            rng: Mutex::new(rng),
            rrn_base,
            rrn_next: AtomicU64::new(1),
            magic_amounts,
            auto_settle: settle_every_ms.filter(|&p| p > 0).map(|period_ms| {
                Mutex::new(AutoSettle {
                    period_ms,
                    next_ms: start.timestamp_millis().saturating_add(period_ms),
                })
            }),
        }
    }

    /// The terminal of a device: built by `make` the first time (outside the lock), kept in its
    /// ledger after that. Its terminal id and config derive from the device id and merchant,
    /// which are fixed when the device is provisioned, so the copy never goes stale; building
    /// it costs the config JSON and, for a fleet device, the derivation of its identity.
    pub fn terminal(&self, key: DevKey, make: impl FnOnce() -> Terminal) -> Arc<Terminal> {
        if let Some(t) = self.with_ledger(key, |l| l.terminal.clone()) {
            return t;
        }
        let t = Arc::new(make());
        self.with_ledger(key, |l| l.terminal.get_or_insert(t).clone())
    }

    fn shard(&self, key: DevKey) -> parking_lot::MutexGuard<'_, Shard> {
        self.shards[key as usize % SHARDS].lock()
    }

    fn with_ledger<R>(&self, key: DevKey, f: impl FnOnce(&mut Ledger) -> R) -> R {
        f(self.shard(key).ledger(key))
    }

    fn id(&self, prefix: &str) -> String {
        let mut rng = self.rng.lock();
        let tail: String = (0..ID_RANDOM_LEN)
            .map(|_| BASE62[rng.random_range(0..62)] as char)
            .collect();
        format!("{prefix}{tail}")
    }

    fn auth_code(&self) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut rng = self.rng.lock();
        (0..6)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    }

    /// 12 digits, unique per sandbox run.
    fn rrn(&self) -> String {
        let n = self.rrn_next.fetch_add(1, Ordering::Relaxed);
        format!("{:012}", (self.rrn_base + n) % 1_000_000_000_000)
    }

    /// Remembers a verified nonce of the terminal; `false` if already used (spec 7.2 row 11).
    pub fn remember_nonce(&self, key: DevKey, nonce_hash: u64, now_ms: i64) -> bool {
        self.with_ledger(key, |l| l.remember_nonce(nonce_hash, now_ms))
    }

    /// `POST /pos/charge` after the request checks (spec 7.4, 7.6, 7.7).
    pub fn charge(
        &self,
        t: &Terminal,
        v: &ValidCharge,
        idem_key: Option<&str>,
        path: &str,
        now: DateTime<Utc>,
    ) -> ApiResult<Answer> {
        let now_ms = now.timestamp_millis();
        let digest = v.digest();
        if let Some(k) = idem_key {
            let check = self.with_ledger(t.key, |l| l.idem_begin(k, path, &digest, now_ms));
            if let Some(replay) = idem_gate(check, k)? {
                return Ok(replay);
            }
        }
        let release = |e: ApiError| {
            if let Some(k) = idem_key {
                self.with_ledger(t.key, |l| l.idem_release(k));
            }
            e
        };
        let r = &v.request;
        if r.amount.currency != t.currency {
            return Err(release(
                ApiError::new(422, "Currency not supported by terminal")
                    .detail("currency", r.amount.currency.as_str())
                    .detail("supported", t.currency.as_str()),
            ));
        }
        let tip = v.tip();
        if tip != 0 && !t.tips_enabled {
            return Err(release(ApiError::new(
                422,
                "Tips are not enabled for this merchant",
            )));
        }
        let pin = v.pin.as_ref().map(|p| p.expose().as_str());
        let total = r.amount.value.saturating_add(tip);
        let decided = outcome::decide(&outcome::Input {
            pan: &r.card.pan,
            exp_month: r.card.exp_month,
            exp_year: r.card.exp_year,
            pin,
            amount: r.amount.value,
            total,
            entry_mode: r.entry_mode,
            allow_partial_approval: v.allow_partial_approval(),
            now,
            magic_amounts: self.magic_amounts,
            pin_required_above: t.pin_required_above,
            contactless_limit: t.contactless_limit,
        });
        let currency = r.amount.currency.as_str();
        let (status, approved, decline, settlement, late) = match decided {
            outcome::Outcome::Approved {
                approved_amount,
                late,
                ..
            } => (
                ChargeStatus::Approved,
                Some(Money::new(approved_amount, currency)),
                None,
                SettlementStatus::Pending,
                late,
            ),
            outcome::Outcome::Declined(d) => (
                ChargeStatus::Declined,
                None,
                Some(d),
                SettlementStatus::None,
                false,
            ),
        };
        let mut charge = Charge {
            charge_id: self.id("ch_"),
            terminal_id: t.terminal_id.clone(),
            merchant_id: t.merchant_id.clone(),
            status,
            amount: r.amount.clone(),
            tip: Money::new(tip, currency),
            total: Money::new(total, currency),
            partial_approval: approved.as_ref().is_some_and(|a| a.value < total),
            approved_amount: approved,
            refunded_amount: Money::zero(currency),
            entry_mode: r.entry_mode,
            card: CardSummary {
                brand: brand_of(&r.card.pan),
                masked_pan: masked_pan(&r.card.pan),
                last4: last4(&r.card.pan),
            },
            cvm: if pin == Some(TEST_PIN) {
                Cvm::OnlinePin
            } else {
                Cvm::None
            },
            auth_code: (status == ChargeStatus::Approved).then(|| self.auth_code()),
            decline_code: decline,
            reference: r.reference.clone(),
            gateway: Gateway {
                acquirer: ACQUIRER.into(),
                response_code: decided.response_code().into(),
                rrn: self.rrn(),
                stan: String::new(),
                pos_entry_mode: r.entry_mode.pos_entry_mode().into(),
            },
            settlement: Settlement {
                status: settlement,
                batch_id: None,
                settled_at: None,
            },
            refunds: Vec::new(),
            created_at: rfc3339(now),
            cancelled_at: None,
        };
        let id = charge.charge_id.clone();
        let (plaintext, evicted) = {
            let mut shard = self.shard(t.key);
            let l = shard.ledger(t.key);
            charge.gateway.stan = l.next_stan();
            let plaintext = json_bytes(&charge);
            if let Some(k) = idem_key {
                l.idem_finish(k, plaintext.clone());
            }
            (plaintext, shard.insert_charge(t.key, charge, idem_key))
        };
        {
            let mut owners = self.owners.lock();
            for old in &evicted {
                owners.remove(old);
            }
            owners.insert(id.clone(), t.key);
        }
        Ok(Answer {
            plaintext,
            replayed: false,
            late_charge_id: late.then_some(id),
        })
    }

    /// `POST /pos/charge/{id}/refund` after the request checks (spec 7.8). One critical
    /// section from the Idempotency-Key check to storing the answer.
    pub fn refund(
        &self,
        t: &Terminal,
        charge_id: &str,
        req: &RefundRequest,
        idem_key: Option<&str>,
        path: &str,
        now: DateTime<Utc>,
    ) -> ApiResult<Answer> {
        let now_ms = now.timestamp_millis();
        let refund_id = self.id("re_");
        self.with_ledger(t.key, |l| {
            let currency = l
                .charge(charge_id)
                .ok_or_else(|| charge_not_found(charge_id))?
                .amount
                .currency
                .clone();
            if let Some(k) = idem_key {
                let check = l.idem_begin(k, path, &req.digest(&currency), now_ms);
                if let Some(replay) = idem_gate(check, k)? {
                    return Ok(replay);
                }
            }
            let result = apply_refund(l, charge_id, req, refund_id, now);
            match (&result, idem_key) {
                (Ok(a), Some(k)) => l.idem_finish(k, a.plaintext.clone()),
                (Err(_), Some(k)) => l.idem_release(k),
                _ => {}
            }
            result
        })
    }

    /// `POST /pos/charge/{id}/cancel` and `/reverse` after 7.2 (spec 7.9): the charge object.
    pub fn cancel(
        &self,
        t: &Terminal,
        charge_id: &str,
        now: DateTime<Utc>,
    ) -> ApiResult<Arc<[u8]>> {
        self.with_ledger(t.key, |l| {
            let c = l
                .charge_mut(charge_id)
                .ok_or_else(|| charge_not_found(charge_id))?;
            if c.status == ChargeStatus::Declined {
                return Err(conflict(c, "Charge was declined").detail("status", "declined"));
            }
            if c.settlement.status == SettlementStatus::Settled {
                let at = c.settlement.settled_at.clone();
                return Err(conflict(c, "Charge is already settled; refund it instead")
                    .detail("settled_at", at));
            }
            if c.status == ChargeStatus::Approved {
                c.status = ChargeStatus::Cancelled;
                c.settlement.status = SettlementStatus::None;
                c.cancelled_at = Some(rfc3339(now));
            }
            Ok(json_bytes(c))
        })
    }

    /// The charge as it is now (`GET /sandbox/charges/{id}`).
    pub fn find(&self, charge_id: &str) -> Option<Charge> {
        let key = *self.owners.lock().get(charge_id)?;
        self.with_ledger(key, |l| l.charge(charge_id).cloned())
    }

    /// Every charge of these devices, newest first.
    /// The newest `limit` charges of a terminal (all without a limit), newest first, with how
    /// many it has in all and how many await settlement. Only the charges returned are cloned.
    pub fn charges_of(&self, keys: &[DevKey], limit: Option<usize>) -> ChargeList {
        let take = limit.unwrap_or(usize::MAX);
        let mut list = ChargeList::default();
        for &k in keys {
            self.with_ledger(k, |l| {
                for c in l.charges() {
                    list.total = list.total.saturating_add(1);
                    if c.settlement.status == SettlementStatus::Pending {
                        list.pending = list.pending.saturating_add(1);
                    }
                }
                list.charges.extend(l.charges().rev().take(take).cloned());
            });
        }
        if keys.len() > 1 {
            list.charges.sort_by(|a, b| b.created_at.cmp(&a.created_at));
            list.charges.truncate(take);
        }
        list
    }
}

fn conflict(c: &Charge, message: &str) -> ApiError {
    ApiError::new(409, message).detail("charge_id", c.charge_id.as_str())
}

/// The checks and effect of a refund on a charge of this ledger (spec 7.8, in its order).
fn apply_refund(
    l: &mut Ledger,
    charge_id: &str,
    req: &RefundRequest,
    refund_id: String,
    now: DateTime<Utc>,
) -> ApiResult<Answer> {
    let c = l
        .charge_mut(charge_id)
        .ok_or_else(|| charge_not_found(charge_id))?;
    match c.status {
        ChargeStatus::Declined => {
            return Err(conflict(c, "Charge was declined").detail("status", "declined"))
        }
        ChargeStatus::Cancelled => {
            return Err(conflict(c, "Charge was cancelled").detail("status", "cancelled"))
        }
        _ => {}
    }
    if c.settlement.status == SettlementStatus::Pending {
        return Err(conflict(c, "Charge is not settled; cancel it instead")
            .detail("settlement_status", "pending"));
    }
    if c.status == ChargeStatus::Refunded {
        return Err(conflict(c, "Charge is already fully refunded").detail("status", "refunded"));
    }
    let charge_currency = c.amount.currency.clone();
    let currency = req
        .amount
        .currency
        .clone()
        .unwrap_or_else(|| charge_currency.clone());
    if currency != charge_currency {
        return Err(ApiError::new(422, "Currency does not match charge")
            .detail("currency", currency)
            .detail("charge_currency", charge_currency));
    }
    let approved = c.approved_amount.as_ref().map_or(0, |a| a.value);
    let remaining = approved.saturating_sub(c.refunded_amount.value);
    if req.amount.value > remaining {
        return Err(ApiError::new(422, "Refund amount exceeds remaining amount")
            .detail("charge_id", charge_id)
            .detail("requested", req.amount.value.to_string())
            .detail("remaining", remaining.to_string()));
    }
    let refund = Refund {
        refund_id,
        charge_id: charge_id.to_string(),
        status: REFUND_SUCCEEDED.into(),
        amount: Money::new(req.amount.value, currency),
        reason: req.reason.unwrap_or_default(),
        created_at: rfc3339(now),
        charge: None,
    };
    c.refunded_amount = c.refunded_amount.saturating_add(req.amount.value);
    c.status = if c.refunded_amount.value >= approved {
        ChargeStatus::Refunded
    } else {
        ChargeStatus::PartiallyRefunded
    };
    c.refunds.push(refund.clone());
    let answer = Refund {
        charge: Some(Box::new(c.clone())),
        ..refund
    };
    Ok(Answer {
        plaintext: json_bytes(&answer),
        replayed: false,
        late_charge_id: None,
    })
}

#[cfg(test)]
mod tests;
