//! One terminal's payment state: its charges, its Idempotency-Keys, its payment nonces and its
//! STAN counter. Plain data, no locks: [`super::Payments`] keeps each ledger behind a shard lock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use posemu_protocol::payments::wire::Charge;

use super::{MAX_CHARGES_PER_TERMINAL, MAX_IDEMPOTENCY_KEYS_PER_TERMINAL, MAX_NONCES_PER_TERMINAL};
use posemu_protocol::payments::{IDEMPOTENCY_TTL_SECS, NONCE_MEMORY_SECS};

/// What a key stores (spec 7.4): the path and digest of the first request, and once it is
/// done its plaintext 200 answer.
struct IdemEntry {
    path: String,
    digest: String,
    stored_ms: i64,
    answer: Option<Arc<[u8]>>,
}

/// What the idempotency check says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdemCheck {
    /// The key is free: it is now held in progress by this request, which must
    /// [`Ledger::idem_finish`] or [`Ledger::idem_release`] it.
    Fresh,
    /// `409 A request with this Idempotency-Key is in progress`.
    InProgress,
    /// `422 Idempotency-Key was used with a different request`.
    Conflict,
    /// The same request: its stored plaintext 200.
    Replay(Arc<[u8]>),
}

#[derive(Default)]
pub struct Ledger {
    charges: HashMap<String, Charge>,
    /// Charge ids, oldest first.
    order: VecDeque<String>,
    idem: HashMap<String, IdemEntry>,
    /// (key, stored_ms), oldest first; an item whose entry was since replaced is skipped.
    idem_order: VecDeque<(String, i64)>,
    nonces: VecDeque<(u64, i64)>,
    nonce_set: HashSet<u64>,
    stan: u32,
    /// See [`super::Payments::terminal`].
    pub terminal: Option<Arc<super::Terminal>>,
}

impl Ledger {
    /// Remembers a verified nonce; `false` if it was seen in the last 10 minutes.
    pub fn remember_nonce(&mut self, nonce_hash: u64, now_ms: i64) -> bool {
        while let Some(&(h, at)) = self.nonces.front() {
            if now_ms - at < NONCE_MEMORY_SECS * 1000 && self.nonces.len() < MAX_NONCES_PER_TERMINAL
            {
                break;
            }
            self.nonces.pop_front();
            self.nonce_set.remove(&h);
        }
        if !self.nonce_set.insert(nonce_hash) {
            return false;
        }
        self.nonces.push_back((nonce_hash, now_ms));
        true
    }

    /// The next STAN: `000001`…`999999`, then `000001` again (spec 7.5).
    pub fn next_stan(&mut self) -> String {
        self.stan = if self.stan >= 999_999 {
            1
        } else {
            self.stan + 1
        };
        format!("{:06}", self.stan)
    }

    fn prune_idem(&mut self, now_ms: i64) {
        while let Some((key, at)) = self.idem_order.front() {
            let expired = now_ms - at >= IDEMPOTENCY_TTL_SECS * 1000;
            if !expired && self.idem_order.len() <= MAX_IDEMPOTENCY_KEYS_PER_TERMINAL {
                break;
            }
            if self.idem.get(key).is_some_and(|e| e.stored_ms == *at) {
                self.idem.remove(key);
            }
            self.idem_order.pop_front();
        }
    }

    /// The checks of spec 7.4 for a request with `key`; on [`IdemCheck::Fresh`] the key is
    /// held in progress.
    pub fn idem_begin(&mut self, key: &str, path: &str, digest: &str, now_ms: i64) -> IdemCheck {
        self.prune_idem(now_ms);
        match self.idem.get(key) {
            Some(e) if e.path != path || e.digest != digest => IdemCheck::Conflict,
            Some(IdemEntry { answer: None, .. }) => IdemCheck::InProgress,
            Some(IdemEntry {
                answer: Some(a), ..
            }) => IdemCheck::Replay(a.clone()),
            None => {
                self.idem.insert(
                    key.to_string(),
                    IdemEntry {
                        path: path.to_string(),
                        digest: digest.to_string(),
                        stored_ms: now_ms,
                        answer: None,
                    },
                );
                self.idem_order.push_back((key.to_string(), now_ms));
                IdemCheck::Fresh
            }
        }
    }

    /// Stores the plaintext 200 of the request that holds `key`.
    pub fn idem_finish(&mut self, key: &str, answer: Arc<[u8]>) {
        if let Some(e) = self.idem.get_mut(key) {
            e.answer = Some(answer);
        }
    }

    /// Frees a key whose request failed with a 4xx (it stores nothing).
    pub fn idem_release(&mut self, key: &str) {
        if self.idem.get(key).is_some_and(|e| e.answer.is_none()) {
            self.idem.remove(key);
        }
    }

    pub fn charge(&self, id: &str) -> Option<&Charge> {
        self.charges.get(id)
    }

    pub fn charge_mut(&mut self, id: &str) -> Option<&mut Charge> {
        self.charges.get_mut(id)
    }

    /// Stores a new charge; returns the id of the oldest one if it had to go.
    pub fn insert_charge(&mut self, charge: Charge) -> Option<String> {
        self.order.push_back(charge.charge_id.clone());
        self.charges.insert(charge.charge_id.clone(), charge);
        if self.order.len() > MAX_CHARGES_PER_TERMINAL {
            let old = self.order.pop_front()?;
            self.charges.remove(&old);
            return Some(old);
        }
        None
    }

    /// Forgets a charge (the sandbox-wide bound, [`super::shard::MAX_CHARGES`]); `false` if
    /// the terminal no longer had it.
    pub fn remove_charge(&mut self, id: &str) -> bool {
        if self.charges.remove(id).is_none() {
            return false;
        }
        // the sandbox's oldest charge is nearly always its terminal's oldest too
        if self.order.front().is_some_and(|o| o == id) {
            self.order.pop_front();
        } else {
            self.order.retain(|o| o != id);
        }
        true
    }

    /// Forgets a finished Idempotency-Key with its stored answer (a key in progress stays).
    pub fn idem_forget(&mut self, key: &str) {
        if self.idem.get(key).is_some_and(|e| e.answer.is_some()) {
            self.idem.remove(key);
        }
    }

    /// Every charge, oldest first.
    pub fn charges(&self) -> impl DoubleEndedIterator<Item = &Charge> {
        self.order.iter().filter_map(|id| self.charges.get(id))
    }

    /// Ids of the charges in creation order (for settlement).
    pub fn charge_ids(&self) -> impl Iterator<Item = &String> {
        self.order.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_begin_finish_release_and_expiry() {
        let mut l = Ledger::default();
        assert_eq!(l.idem_begin("k", "/pos/charge", "d1", 0), IdemCheck::Fresh);
        assert_eq!(
            l.idem_begin("k", "/pos/charge", "d1", 1),
            IdemCheck::InProgress
        );
        assert_eq!(
            l.idem_begin("k", "/pos/charge", "d2", 1),
            IdemCheck::Conflict
        );
        assert_eq!(
            l.idem_begin("k", "/pos/charge/x/refund", "d1", 1),
            IdemCheck::Conflict
        );
        l.idem_finish("k", Arc::from(&b"{}"[..]));
        assert_eq!(
            l.idem_begin("k", "/pos/charge", "d1", 2),
            IdemCheck::Replay(Arc::from(&b"{}"[..]))
        );
        // a 4xx frees its key
        assert_eq!(l.idem_begin("j", "/pos/charge", "d1", 2), IdemCheck::Fresh);
        l.idem_release("j");
        assert_eq!(l.idem_begin("j", "/pos/charge", "d9", 3), IdemCheck::Fresh);
        // a finished key is never released
        l.idem_release("k");
        assert!(matches!(
            l.idem_begin("k", "/pos/charge", "d1", 4),
            IdemCheck::Replay(_)
        ));
        // 24 h later the key is free again
        let day = IDEMPOTENCY_TTL_SECS * 1000;
        assert_eq!(
            l.idem_begin("k", "/pos/charge", "d5", day),
            IdemCheck::Fresh
        );
    }

    #[test]
    fn idempotency_keys_are_bounded() {
        let mut l = Ledger::default();
        for i in 0..MAX_IDEMPOTENCY_KEYS_PER_TERMINAL + 10 {
            assert_eq!(
                l.idem_begin(&format!("k{i}"), "/p", "d", 0),
                IdemCheck::Fresh
            );
        }
        l.idem_begin("last", "/p", "d", 0);
        assert!(l.idem.len() <= MAX_IDEMPOTENCY_KEYS_PER_TERMINAL + 1);
        assert_eq!(
            l.idem_begin("k0", "/p", "other", 0),
            IdemCheck::Fresh,
            "the oldest went"
        );
    }

    #[test]
    fn nonces_expire_after_ten_minutes() {
        let mut l = Ledger::default();
        assert!(l.remember_nonce(1, 0));
        assert!(!l.remember_nonce(1, NONCE_MEMORY_SECS * 1000 - 1));
        assert!(l.remember_nonce(1, NONCE_MEMORY_SECS * 1000));
    }

    #[test]
    fn stan_wraps_to_000001() {
        let mut l = Ledger::default();
        assert_eq!(l.next_stan(), "000001");
        l.stan = 999_998;
        assert_eq!(l.next_stan(), "999999");
        assert_eq!(l.next_stan(), "000001");
    }
}
