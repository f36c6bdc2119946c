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

/// Index of a merchant in [`Merchants`].
pub type MerchantIdx = u32;

/// Most merchants the sandbox keeps (each provisioned device may name a new one).
pub const MAX_MERCHANTS: usize = 100_000;
/// Most named devices (profiles and `POST /sandbox/devices`).
pub const MAX_NAMED_DEVICES: usize = 1_000_000;

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
    pub merchant: MerchantIdx,
}

/// Identity of a device as the handlers need it.
pub struct Identity {
    pub id: String,
    pub key_id: String,
    pub secret: Key,
    pub zmk: Key,
    pub merchant: MerchantIdx,
}

/// Every merchant, by index and by id. The demo merchant is index 0.
pub struct Merchants {
    list: Vec<Merchant>,
    by_id: HashMap<String, MerchantIdx>,
}

impl Merchants {
    fn new(first: Merchant) -> Merchants {
        let mut m = Merchants {
            list: Vec::new(),
            by_id: HashMap::new(),
        };
        m.by_id.insert(first.id.clone(), 0);
        m.list.push(first);
        m
    }

    pub fn get(&self, i: MerchantIdx) -> Option<&Merchant> {
        self.list.get(usize::try_from(i).ok()?)
    }

    pub fn find(&self, id: &str) -> Option<MerchantIdx> {
        self.by_id.get(id).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Merchant> {
        self.list.iter()
    }

    pub fn count(&self) -> usize {
        self.list.len()
    }

    /// The index of `id`, adding an owner-only merchant if it is new; `None` when full.
    fn index_or_add(&mut self, id: &str) -> Option<MerchantIdx> {
        if let Some(i) = self.find(id) {
            return Some(i);
        }
        if self.list.len() >= MAX_MERCHANTS {
            return None;
        }
        let i = MerchantIdx::try_from(self.list.len()).ok()?;
        self.list.push(Merchant {
            id: id.to_string(),
            name: format!("Merchant {id}"),
            credentials: None,
        });
        self.by_id.insert(id.to_string(), i);
        Some(i)
    }
}

/// Why a device could not be provisioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisionError {
    Exists,
    TooManyDevices,
    TooManyMerchants,
}

/// A device to provision: its identity and the id of its merchant.
pub struct NewDevice {
    pub id: String,
    pub key_id: String,
    pub secret: Key,
    pub zmk: Key,
    pub merchant_id: String,
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
        } else if self.replaced || now_ms >= self.issued_ms.saturating_add(self.ttl_ms) {
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

/// Most merchant sessions initiated and not yet expired; past it `/session/initiate` answers
/// 429 until some expire.
pub const MAX_INITIATED_SESSIONS: usize = 100_000;

/// Merchant sessions that called `/session/initiate`: hash of the token → its expiry (ms).
/// Expired ones are swept in amortised batches; the total is bounded.
#[derive(Default)]
pub struct InitiatedSessions {
    map: HashMap<u64, i64>,
    sweep_at: usize,
}

impl InitiatedSessions {
    pub fn contains(&self, token_hash: u64, now_ms: i64) -> bool {
        self.map.get(&token_hash).is_some_and(|&exp| exp > now_ms)
    }

    /// Records a session until `expires_ms`; `false` when full of live sessions.
    pub fn insert(&mut self, token_hash: u64, expires_ms: i64, now_ms: i64) -> bool {
        if !self.map.contains_key(&token_hash)
            && self.map.len() >= self.sweep_at.clamp(1024, MAX_INITIATED_SESSIONS)
        {
            self.map.retain(|_, &mut exp| exp > now_ms);
            self.sweep_at = self.map.len().saturating_mul(2);
        }
        if self.map.len() >= MAX_INITIATED_SESSIONS && !self.map.contains_key(&token_hash) {
            return false;
        }
        self.map.insert(token_hash, expires_ms);
        true
    }

    pub fn count(&self) -> usize {
        self.map.len()
    }
}

pub struct World {
    pub fleet: Option<FleetSeed>,
    pub merchants: RwLock<Merchants>,
    named: RwLock<Vec<NamedDevice>>,
    by_id: RwLock<HashMap<String, DevKey>>,
    shards: Vec<Mutex<HashMap<DevKey, DeviceState>>>,
    /// Codes issued in the last hour (and every device's current code) → their device.
    pub codes: Mutex<CodeIndex>,
    pub tokens: Mutex<TokenIndex>,
    /// Merchant tokens that called `/session/initiate`.
    pub initiated: Mutex<InitiatedSessions>,
    hasher: std::collections::hash_map::RandomState,
}

impl World {
    pub fn new(fleet: Option<FleetSeed>) -> World {
        World {
            fleet,
            merchants: RwLock::new(Merchants::new(Merchant {
                id: DEMO_MERCHANT_ID.into(),
                name: DEMO_MERCHANT_NAME.into(),
                credentials: Some((DEMO_CLIENT_ID.into(), DEMO_CLIENT_SECRET.into())),
            })),
            named: RwLock::new(Vec::new()),
            by_id: RwLock::new(HashMap::new()),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            codes: Mutex::new(CodeIndex::default()),
            tokens: Mutex::new(TokenIndex::default()),
            initiated: Mutex::new(InitiatedSessions::default()),
            hasher: Default::default(),
        }
    }

    pub fn hash(&self, s: &str) -> u64 {
        self.hasher.hash_one(s)
    }

    /// Adds a named device, checking first that its id is free: a merchant is created (if
    /// new) only for a device that is added.
    pub fn provision(&self, dev: NewDevice) -> Result<DevKey, ProvisionError> {
        let mut by_id = self.by_id.write();
        if by_id.contains_key(&dev.id) || self.fleet_key(&dev.id).is_some() {
            return Err(ProvisionError::Exists);
        }
        let mut named = self.named.write();
        if named.len() >= MAX_NAMED_DEVICES {
            return Err(ProvisionError::TooManyDevices);
        }
        let key = u32::try_from(named.len())
            .ok()
            .and_then(|i| NAMED_BASE.checked_add(i))
            .ok_or(ProvisionError::TooManyDevices)?;
        let merchant = self
            .merchants
            .write()
            .index_or_add(&dev.merchant_id)
            .ok_or(ProvisionError::TooManyMerchants)?;
        by_id.insert(dev.id.clone(), key);
        named.push(NamedDevice {
            id: dev.id,
            key_id: dev.key_id,
            secret: dev.secret,
            zmk: dev.zmk,
            merchant,
        });
        Ok(key)
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

    pub fn named_devices(&self) -> usize {
        self.named.read().len()
    }

    pub fn touched_devices(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// The `limit` most recently seen touched devices of `merchant`, newest first, and how many
    /// touched devices it has in all (for the merchant portal). One shard locked at a time, and
    /// owners read from a snapshot so that no other lock is taken while a shard is held.
    pub fn recent_devices_of(&self, merchant: MerchantIdx, limit: usize) -> (Vec<DevKey>, usize) {
        use std::cmp::Reverse;
        let named: Vec<MerchantIdx> = self.named.read().iter().map(|d| d.merchant).collect();
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
#[path = "state_tests.rs"]
mod tests;
