//! One of the [`SHARDS`] locks of the payment state: the ledgers of the terminals whose key
//! falls in it, and its charges oldest first, so that the sandbox as a whole keeps at most
//! [`MAX_CHARGES`] however many terminals charge.

use std::collections::{HashMap, VecDeque};

use posemu_protocol::payments::wire::Charge;

#[cfg(test)]
use super::ledger::IdemCheck;
use super::ledger::Ledger;
use crate::state::DevKey;
#[cfg(test)]
use std::sync::Arc;

/// Locks of the payment state; a terminal's ledger lives in shard `key % SHARDS`.
pub const SHARDS: usize = 16;
/// Charges kept by the whole sandbox: each shard keeps its newest `MAX_CHARGES / SHARDS`.
pub const MAX_CHARGES: usize = 16 * 16_384;

pub struct Shard {
    /// The charges this shard keeps: `MAX_CHARGES / SHARDS` (fewer in tests).
    cap: usize,
    ledgers: HashMap<DevKey, Ledger>,
    /// Every charge stored in this shard, oldest first, with the Idempotency-Key that made it.
    /// An entry whose charge its terminal already dropped is skipped when it comes up.
    order: VecDeque<(DevKey, String, Option<String>)>,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard::with_cap(MAX_CHARGES / SHARDS)
    }
}

impl Shard {
    pub fn with_cap(cap: usize) -> Shard {
        Shard {
            cap,
            ledgers: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn ledger(&mut self, key: DevKey) -> &mut Ledger {
        self.ledgers.entry(key).or_default()
    }

    pub fn ledgers_mut(&mut self) -> impl Iterator<Item = &mut Ledger> {
        self.ledgers.values_mut()
    }

    /// Stores a new charge of terminal `key`, made with `idem_key`; returns the ids of the
    /// charges that had to go: the terminal's oldest past [`super::MAX_CHARGES_PER_TERMINAL`],
    /// and the shard's oldest past its share of [`MAX_CHARGES`] (with its Idempotency-Key,
    /// whose stored answer is the largest part of a charge's memory).
    pub fn insert_charge(
        &mut self,
        key: DevKey,
        charge: Charge,
        idem_key: Option<&str>,
    ) -> Vec<String> {
        let id = charge.charge_id.clone();
        let mut gone: Vec<String> = self.ledger(key).insert_charge(charge).into_iter().collect();
        self.order
            .push_back((key, id, idem_key.map(str::to_string)));
        while self.order.len() > self.cap {
            let Some((k, old, idem)) = self.order.pop_front() else {
                break;
            };
            let Some(l) = self.ledgers.get_mut(&k) else {
                continue;
            };
            if l.remove_charge(&old) {
                if let Some(idem) = idem {
                    l.idem_forget(&idem);
                }
                gone.push(old);
            }
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::MAX_CHARGES_PER_TERMINAL;

    /// A real charge of the sandbox, renamed.
    fn charge(id: &str) -> Charge {
        use crate::payments::tests::{now, terminal, valid};
        let p = crate::payments::Payments::new(1, true, None, now());
        let a = p.charge(&terminal(false), &valid("0"), None, "/pos/charge", now());
        let mut c: Charge = a
            .ok()
            .and_then(|a| serde_json::from_slice(&a.plaintext).ok())
            .unwrap_or_else(|| panic!("a charge"));
        c.charge_id = id.into();
        c
    }

    #[test]
    fn the_shard_keeps_its_newest_charges_across_terminals_with_their_keys() {
        let mut s = Shard::with_cap(3);
        for (i, key) in [1, 2, 1, 2, 1].into_iter().enumerate() {
            let id = format!("ch_{i}");
            let idem = format!("k{i}");
            assert_eq!(
                s.ledger(key).idem_begin(&idem, "/pos/charge", "d", 0),
                IdemCheck::Fresh
            );
            s.ledger(key).idem_finish(&idem, Arc::from(&b"{}"[..]));
            let gone = s.insert_charge(key, charge(&id), Some(&idem));
            let want: Vec<String> = match i {
                3 => vec!["ch_0".into()],
                4 => vec!["ch_1".into()],
                _ => vec![],
            };
            assert_eq!(gone, want, "after ch_{i}");
        }
        let ids = |s: &mut Shard, k| {
            s.ledger(k)
                .charges()
                .map(|c| c.charge_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&mut s, 1), ["ch_2", "ch_4"]);
        assert_eq!(ids(&mut s, 2), ["ch_3"]);
        // the key of a forgotten charge is free again; a kept one still replays
        assert_eq!(
            s.ledger(1).idem_begin("k0", "/pos/charge", "other", 1),
            IdemCheck::Fresh
        );
        assert!(matches!(
            s.ledger(1).idem_begin("k2", "/pos/charge", "d", 1),
            IdemCheck::Replay(_)
        ));
    }

    #[test]
    fn a_charge_its_terminal_already_dropped_is_not_counted_twice() {
        let mut s = Shard::with_cap(MAX_CHARGES_PER_TERMINAL + 1);
        let mut gone = Vec::new();
        for i in 0..MAX_CHARGES_PER_TERMINAL + 2 {
            gone.extend(s.insert_charge(7, charge(&format!("ch_{i}")), None));
        }
        // the terminal's cap dropped ch_0 and ch_1; the shard's own turn for ch_0 is a no-op
        assert_eq!(gone, ["ch_0", "ch_1"]);
        assert_eq!(s.ledger(7).charges().count(), MAX_CHARGES_PER_TERMINAL);
    }
}
