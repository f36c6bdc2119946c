//! The sandbox's in-memory world: devices (named and derived), pairing codes, tokens, sessions.
//!
//! Kept compact so a million touched fleet devices fit in well under 1 KB each: devices are
//! keyed by a `u32` (fleet index, or a slot for named devices), derived secrets are recomputed
//! on demand, and key sets exist only once issued.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use parking_lot::{Mutex, RwLock};

use posemu_protocol::crypto::Key;
use posemu_protocol::provision::{
    derive_identity_secret, derive_zmk, fleet_device_id, fleet_index,
};
use posemu_protocol::rules::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_MERCHANT_ID, DEMO_MERCHANT_NAME, FLEET_IDENTITY_KEY_ID,
};
use posemu_protocol::wire::{DeviceStatus, PairingCodeStatus};

use super::FleetSeed;

/// Below 2^24: a fleet index. From 2^24: a slot of a named (profile or API) device.
pub type DevKey = u32;
const NAMED_BASE: u32 = 1 << 24;
const SHARDS: usize = 64;

pub struct Merchant {
    pub id: String,
    pub name: String,
    /// `None` for merchants that exist only as owners (no portal login).
    pub credentials: Option<(String, String)>,
}

pub struct NamedDevice {
    pub id: String,
    pub key_id: String,
    pub secret: Key,
    pub zmk: Key,
    pub merchant: u16,
}

/// Identity of a device as the handlers need it.
pub struct Identity {
    pub id: String,
    pub key_id: String,
    pub secret: Key,
    pub zmk: Key,
    pub merchant: u16,
}

#[derive(Clone, Copy)]
pub struct Code {
    pub chars: [u8; 6],
    pub issued_ms: i64,
    pub ttl_ms: i64,
    pub used: bool,
    pub replaced: bool,
}

impl Code {
    pub fn status(&self, now_ms: i64) -> PairingCodeStatus {
        if self.used {
            PairingCodeStatus::Used
        } else if self.replaced || now_ms >= self.issued_ms + self.ttl_ms {
            PairingCodeStatus::Expired
        } else {
            PairingCodeStatus::Pending
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.chars).into_owned()
    }
}

/// How long an issued code stays known, so that claiming it answers 410 (expired, replaced)
/// or 409 (used) rather than 404. Past this, only each device's current code is kept: fleets
/// that cycle codes for hours must not grow the sandbox without bound.
const CODE_MEMORY_MS: i64 = 3_600_000;

/// Pairing codes → the device they were issued to (a code no longer pending may be reissued
/// to another device; the newest issue wins).
#[derive(Default)]
pub struct CodeIndex {
    map: HashMap<[u8; 6], (DevKey, i64)>,
    /// Size at which the next prune runs (amortised: twice the size after the last one).
    prune_at: usize,
}

impl CodeIndex {
    pub fn get(&self, code: &[u8; 6]) -> Option<DevKey> {
        self.map.get(code).map(|&(k, _)| k)
    }

    /// Records `code` as issued to `key` at `now_ms`. `is_current(key, code)` tells whether a
    /// code is still its device's latest one (those are kept whatever their age).
    pub fn insert(
        &mut self,
        code: [u8; 6],
        key: DevKey,
        now_ms: i64,
        is_current: impl Fn(DevKey, &[u8; 6]) -> bool,
    ) {
        self.map.insert(code, (key, now_ms));
        if self.map.len() >= self.prune_at.max(65_536) {
            self.map
                .retain(|c, &mut (k, at)| now_ms - at < CODE_MEMORY_MS || is_current(k, c));
            self.prune_at = self.map.len() * 2;
        }
    }
}

pub struct KeySet {
    pub response: posemu_protocol::wire::KeysResponse,
    pub msk: Key,
    /// Kept server-side for payments (spec 7.2 signs with the MAC key, 7.6 PIN blocks use
    /// the TPK); never logged or answered in the clear.
    pub mac: Key,
    pub tpk: Key,
    pub expires_ms: i64,
}

#[derive(Default)]
pub struct DeviceState {
    pub status: Option<DeviceStatus>,
    pub code: Option<Code>,
    pub activated_at: Option<i64>,
    pub keys: Option<Box<KeySet>>,
    /// (hash of nonce, seen at ms): verified nonces of the last 10 minutes.
    pub nonces: Vec<(u64, i64)>,
    pub last_seen_ms: i64,
}

impl DeviceState {
    pub fn status(&self) -> DeviceStatus {
        self.status.unwrap_or(DeviceStatus::Inactive)
    }
}

pub struct AttestationToken {
    pub device: DevKey,
    pub expires_ms: i64,
}

/// Attestation tokens; expired ones are dropped in amortised sweeps (when the map has doubled
/// since the last sweep), so a fleet attesting at once never makes each insert scan them all.
#[derive(Default)]
pub struct TokenIndex {
    map: HashMap<String, AttestationToken>,
    sweep_at: usize,
}

impl TokenIndex {
    pub fn get(&self, token: &str) -> Option<&AttestationToken> {
        self.map.get(token)
    }

    pub fn insert(&mut self, token: String, t: AttestationToken, now_ms: i64) {
        self.map.insert(token, t);
        if self.map.len() >= self.sweep_at.max(4096) {
            self.map.retain(|_, t| t.expires_ms > now_ms);
            self.sweep_at = self.map.len() * 2;
        }
    }
}

pub struct World {
    pub fleet: Option<FleetSeed>,
    pub merchants: RwLock<Vec<Merchant>>,
    named: RwLock<Vec<NamedDevice>>,
    by_id: RwLock<HashMap<String, DevKey>>,
    shards: Vec<Mutex<HashMap<DevKey, DeviceState>>>,
    /// Codes issued in the last hour (and every device's current code) → their device.
    pub codes: Mutex<CodeIndex>,
    pub tokens: Mutex<TokenIndex>,
    /// Hashes of merchant tokens that called `/session/initiate`.
    pub initiated: Mutex<HashSet<u64>>,
    hasher: std::collections::hash_map::RandomState,
}

impl World {
    pub fn new(fleet: Option<FleetSeed>) -> World {
        World {
            fleet,
            merchants: RwLock::new(vec![Merchant {
                id: DEMO_MERCHANT_ID.into(),
                name: DEMO_MERCHANT_NAME.into(),
                credentials: Some((DEMO_CLIENT_ID.into(), DEMO_CLIENT_SECRET.into())),
            }]),
            named: RwLock::new(Vec::new()),
            by_id: RwLock::new(HashMap::new()),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            codes: Mutex::new(CodeIndex::default()),
            tokens: Mutex::new(TokenIndex::default()),
            initiated: Mutex::new(HashSet::new()),
            hasher: Default::default(),
        }
    }

    pub fn hash(&self, s: &str) -> u64 {
        self.hasher.hash_one(s)
    }

    /// The merchant index of `id`, creating an owner-only merchant if it is new.
    pub fn merchant_index(&self, id: &str) -> u16 {
        if let Some(i) = self.merchants.read().iter().position(|m| m.id == id) {
            return i as u16;
        }
        let mut w = self.merchants.write();
        w.push(Merchant {
            id: id.to_string(),
            name: format!("Merchant {id}"),
            credentials: None,
        });
        (w.len() - 1) as u16
    }

    /// Adds a named device; `false` if the id exists already.
    pub fn provision(&self, dev: NamedDevice) -> bool {
        let mut by_id = self.by_id.write();
        if by_id.contains_key(&dev.id) || self.fleet_key(&dev.id).is_some() {
            return false;
        }
        let mut named = self.named.write();
        by_id.insert(dev.id.clone(), NAMED_BASE + named.len() as u32);
        named.push(dev);
        true
    }

    fn fleet_key(&self, id: &str) -> Option<DevKey> {
        let f = self.fleet.as_ref()?;
        fleet_index(&f.prefix, id)
    }

    /// The key of a provisioned device.
    pub fn resolve(&self, id: &str) -> Option<DevKey> {
        if let Some(k) = self.by_id.read().get(id) {
            return Some(*k);
        }
        self.fleet_key(id)
    }

    pub fn identity(&self, key: DevKey) -> Identity {
        if key >= NAMED_BASE {
            let named = self.named.read();
            let d = &named[(key - NAMED_BASE) as usize];
            return Identity {
                id: d.id.clone(),
                key_id: d.key_id.clone(),
                secret: d.secret,
                zmk: d.zmk,
                merchant: d.merchant,
            };
        }
        let f = self
            .fleet
            .as_ref()
            .expect("fleet keys exist only with a fleet seed");
        let id = fleet_device_id(&f.prefix, key);
        Identity {
            secret: derive_identity_secret(&f.seed, &id),
            zmk: derive_zmk(&f.seed, &id),
            id,
            key_id: FLEET_IDENTITY_KEY_ID.into(),
            merchant: 0,
        }
    }

    pub fn device_id(&self, key: DevKey) -> String {
        if key >= NAMED_BASE {
            return self.named.read()[(key - NAMED_BASE) as usize].id.clone();
        }
        let prefix = self
            .fleet
            .as_ref()
            .map(|f| f.prefix.as_str())
            .unwrap_or("00");
        fleet_device_id(prefix, key)
    }

    /// Runs `f` on the device's state (created on first touch).
    pub fn with_device<R>(&self, key: DevKey, f: impl FnOnce(&mut DeviceState) -> R) -> R {
        let mut shard = self.shards[key as usize % SHARDS].lock();
        f(shard.entry(key).or_default())
    }

    /// Reads the device's state without creating it.
    pub fn peek<R>(&self, key: DevKey, f: impl FnOnce(Option<&DeviceState>) -> R) -> R {
        let shard = self.shards[key as usize % SHARDS].lock();
        f(shard.get(&key))
    }

    /// Named devices from slot `from` on, with their ids (for the terminal-id index).
    pub fn named_from(&self, from: usize) -> Vec<(DevKey, String)> {
        let named = self.named.read();
        (from..named.len())
            .map(|i| (NAMED_BASE + i as u32, named[i].id.clone()))
            .collect()
    }

    /// Every device that was provisioned by name or touched, sorted by id.
    pub fn known_devices(&self) -> Vec<DevKey> {
        let mut keys: HashSet<DevKey> = self.by_id.read().values().copied().collect();
        for s in &self.shards {
            keys.extend(s.lock().keys().copied());
        }
        let mut v: Vec<DevKey> = keys.into_iter().collect();
        v.sort_by_cached_key(|k| self.device_id(*k));
        v
    }

    pub fn touched_devices(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// The `limit` most recently seen touched devices of `merchant`, newest first, and how many
    /// touched devices it has in all (for the merchant portal). One shard locked at a time, and
    /// owners read from a snapshot so that no other lock is taken while a shard is held.
    pub fn recent_devices_of(&self, merchant: u16, limit: usize) -> (Vec<DevKey>, usize) {
        use std::cmp::Reverse;
        let named: Vec<u16> = self.named.read().iter().map(|d| d.merchant).collect();
        let owner = |k: DevKey| match k.checked_sub(NAMED_BASE) {
            Some(i) => named.get(i as usize).copied(),
            None => Some(0), // derived fleet devices belong to the default merchant
        };
        let mut heap = std::collections::BinaryHeap::new();
        let mut total = 0;
        for shard in &self.shards {
            for (k, st) in shard.lock().iter() {
                if owner(*k) != Some(merchant) {
                    continue;
                }
                total += 1;
                heap.push(Reverse((st.last_seen_ms, Reverse(*k))));
                if heap.len() > limit {
                    heap.pop();
                }
            }
        }
        let keys = heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse((_, Reverse(k)))| k);
        (keys.collect(), total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_state_stays_small() {
        // 1,000,000 touched devices must fit in well under 1 KB each.
        assert!(
            std::mem::size_of::<DeviceState>() <= 96,
            "{}",
            std::mem::size_of::<DeviceState>()
        );
    }

    #[test]
    fn old_codes_are_forgotten_but_current_ones_kept() {
        let mut idx = CodeIndex::default();
        let code =
            |i: u32| -> [u8; 6] { std::array::from_fn(|j| b'A' + ((i >> (4 * j)) & 15) as u8) };
        // Device i's current code is code(i) for even i; odd devices moved on.
        let current = |k: DevKey, c: &[u8; 6]| k.is_multiple_of(2) && *c == code(k);
        for i in 0..60_000 {
            idx.insert(code(i), i, 0, current);
        }
        assert_eq!(idx.map.len(), 60_000, "no prune below the threshold");
        for i in 60_000..65_535 {
            idx.insert(code(i), i, CODE_MEMORY_MS - 1, current);
        }
        idx.insert(code(70_000), 70_000, CODE_MEMORY_MS + 10, current);
        // The 65,536th code prunes: of those issued at 0 only the current (even) ones stay;
        // the recent ones all stay.
        assert_eq!(idx.map.len(), 30_000 + 5_535 + 1);
        assert_eq!(idx.prune_at, 2 * idx.map.len());
        assert_eq!(idx.get(&code(2)), Some(2));
        assert_eq!(idx.get(&code(3)), None);
        assert_eq!(idx.get(&code(60_001)), Some(60_001));
    }

    #[test]
    fn expired_tokens_are_swept_in_amortised_batches() {
        let mut idx = TokenIndex::default();
        let tok = |device, expires_ms| AttestationToken { device, expires_ms };
        for i in 0..4095 {
            idx.insert(format!("old{i}"), tok(i, 100), 0);
        }
        assert_eq!(idx.map.len(), 4095);
        // The 4096th sweeps the expired ones.
        idx.insert("new".into(), tok(1, 10_000), 200);
        assert_eq!(idx.map.len(), 1);
        assert!(idx.get("old1").is_none() && idx.get("new").is_some());
        // Live tokens are never swept; the next sweep waits for the map to double.
        for i in 0..5000 {
            idx.insert(format!("live{i}"), tok(i, 10_000), 300);
        }
        assert_eq!(idx.map.len(), 5001);
    }

    #[test]
    fn named_devices_shadow_nothing_and_fleet_ids_resolve() {
        let w = World::new(Some(FleetSeed {
            seed: "s".into(),
            prefix: "F0".into(),
        }));
        assert_eq!(w.resolve("POS-F0000010"), Some(0x10));
        assert_eq!(w.resolve("POS-F1000010"), None);
        let dev = |id: &str| NamedDevice {
            id: id.into(),
            key_id: "k".into(),
            secret: [0; 32],
            zmk: [0; 32],
            merchant: 0,
        };
        assert!(!w.provision(dev("POS-F0000010")), "fleet ids are taken");
        assert!(w.provision(dev("POS-12345678")));
        assert!(!w.provision(dev("POS-12345678")));
        assert_eq!(
            w.identity(w.resolve("POS-12345678").unwrap()).id,
            "POS-12345678"
        );
        assert_eq!(w.identity(0x10).id, "POS-F0000010");
    }
}
