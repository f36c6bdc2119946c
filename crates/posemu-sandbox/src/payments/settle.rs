//! Settlement (spec 7.10, 7.12): `POST /sandbox/settle` and `--settle-every`.

use chrono::{DateTime, Utc};

use posemu_protocol::clock::rfc3339;
use posemu_protocol::payments::wire::{
    ChargeStatus, SettleBatch, SettleResponse, Settlement, SettlementStatus,
};
use posemu_protocol::payments::Money;

use super::ledger::Ledger;
use super::{charge_not_found, conflict, Payments, SettleScope};
use crate::error::ApiResult;

impl Payments {
    /// Settles automatically if `--settle-every` is set and a period has passed on the
    /// sandbox clock. Called by every payment route and helper before it reads or writes,
    /// so that what they show is as if a timer had settled at each period's end.
    pub fn tick(&self, now: DateTime<Utc>) {
        let Some(auto) = &self.auto_settle else {
            return;
        };
        let now_ms = now.timestamp_millis();
        let at = {
            let mut a = auto.lock();
            if now_ms < a.next_ms {
                return;
            }
            let at = a.next_ms;
            let periods = (now_ms - a.next_ms) / a.period_ms + 1;
            a.next_ms = a
                .next_ms
                .saturating_add(periods.saturating_mul(a.period_ms));
            at
        };
        // Nothing was charged between the first missed tick and now (a charge would have
        // ticked first), so one settle at the first missed tick is the timer's result.
        let at = DateTime::from_timestamp_millis(at).unwrap_or(now);
        let _ = self.settle(SettleScope::All, at);
    }

    /// `POST /sandbox/settle` (spec 7.12): one batch per terminal of every charge in scope that
    /// is `approved` with settlement `pending`.
    pub fn settle(&self, scope: SettleScope, now: DateTime<Utc>) -> ApiResult<SettleResponse> {
        let at = rfc3339(now);
        let mut batches = Vec::new();
        let mut settle_ledger = |l: &mut Ledger, only: Option<&str>| {
            let ids: Vec<String> = l
                .charge_ids()
                .filter(|id| only.is_none_or(|o| o == id.as_str()))
                .filter(|id| {
                    l.charge(id).is_some_and(|c| {
                        c.status == ChargeStatus::Approved
                            && c.settlement.status == SettlementStatus::Pending
                    })
                })
                .cloned()
                .collect();
            if ids.is_empty() {
                return;
            }
            let batch_id = self.id("bat_");
            let mut total: Option<Money> = None;
            let mut terminal_id = String::new();
            for id in &ids {
                if let Some(c) = l.charge_mut(id) {
                    c.settlement = Settlement {
                        status: SettlementStatus::Settled,
                        batch_id: Some(batch_id.clone()),
                        settled_at: Some(at.clone()),
                    };
                    let approved = c.approved_amount.as_ref().map_or(0, |a| a.value);
                    total = Some(match total.take() {
                        Some(t) => t.saturating_add(approved),
                        None => Money::new(approved, c.amount.currency.clone()),
                    });
                    terminal_id.clone_from(&c.terminal_id);
                }
            }
            batches.push(SettleBatch {
                batch_id,
                terminal_id,
                charge_ids: ids,
                total: total.unwrap_or_else(|| Money::zero("")),
            });
        };
        match scope {
            SettleScope::All => {
                for shard in &self.shards {
                    for l in shard.lock().ledgers_mut() {
                        settle_ledger(l, None);
                    }
                }
            }
            SettleScope::Terminal(keys) => {
                for k in keys {
                    self.with_ledger(k, |l| settle_ledger(l, None));
                }
            }
            SettleScope::Charge(id) => {
                let key = self.owners.lock().get(&id).copied();
                let key = key.ok_or_else(|| charge_not_found(&id))?;
                self.with_ledger(key, |l| {
                    let c = l.charge(&id).ok_or_else(|| charge_not_found(&id))?;
                    if c.status != ChargeStatus::Approved
                        || c.settlement.status != SettlementStatus::Pending
                    {
                        return Err(conflict(c, "Charge cannot be settled")
                            .detail("status", c.status.as_str())
                            .detail("settlement_status", c.settlement.status.as_str()));
                    }
                    settle_ledger(l, Some(&id));
                    Ok(())
                })?;
            }
        }
        batches.sort_by(|a, b| a.terminal_id.cmp(&b.terminal_id));
        Ok(SettleResponse {
            settled_at: at,
            batches,
        })
    }
}
