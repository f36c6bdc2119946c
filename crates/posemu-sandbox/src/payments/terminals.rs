//! Terminal ids (spec 4.9, 7.2 row 4): `TID-` + 6 digits, stable per device, and the index
//! from a terminal id back to its device.
//!
//! A terminal id is a hash of the device id into a million values, so in a large fleet two
//! devices may share one; the index keeps every device of a terminal id, and the payment
//! routes pick the one whose MAC key `X-Key-Id` names.

use std::collections::HashMap;

use parking_lot::RwLock;

use posemu_protocol::crypto::sha256_hex;

use super::super::state::{DevKey, World};

/// [POSEMU] `TID-` + 6 digits, stable per device (a hash of its id).
pub fn terminal_id(device_id: &str) -> String {
    format!("TID-{:06}", tid_number(device_id))
}

fn tid_number(device_id: &str) -> u32 {
    let h = sha256_hex(device_id.as_bytes());
    u32::from_str_radix(&h[..8], 16).unwrap_or(0) % 1_000_000
}

/// The number of a well-formed `TID-nnnnnn`.
fn parse_tid(tid: &str) -> Option<u32> {
    let digits = tid.strip_prefix("TID-")?;
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

enum Slot {
    One(DevKey),
    Many(Vec<DevKey>),
}

#[derive(Default)]
struct Inner {
    map: HashMap<u32, Slot>,
    /// Named devices indexed so far (they are only ever appended).
    named_seen: usize,
}

impl Inner {
    fn add(&mut self, key: DevKey, device_id: &str) {
        match self.map.entry(tid_number(device_id)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Slot::One(key));
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let slot = o.get_mut();
                match slot {
                    Slot::One(k) if *k == key => {}
                    Slot::One(k) => *slot = Slot::Many(vec![*k, key]),
                    Slot::Many(v) if v.contains(&key) => {}
                    Slot::Many(v) => v.push(key),
                }
            }
        }
    }
}

/// Terminal id → devices. Named devices (profiles, `POST /sandbox/devices`) are indexed as
/// provisioned; derived fleet devices, which exist only virtually, once a key set is issued to
/// them (before that they cannot sign a payment anyway).
#[derive(Default)]
pub struct TerminalIndex {
    inner: RwLock<Inner>,
}

impl TerminalIndex {
    /// Records a device (idempotent).
    pub fn note(&self, key: DevKey, device_id: &str) {
        self.inner.write().add(key, device_id);
    }

    fn catch_up(&self, world: &World) {
        let seen = self.inner.read().named_seen;
        let new = world.named_from(seen);
        if new.is_empty() {
            return;
        }
        let mut w = self.inner.write();
        // another request may have caught up meanwhile
        for (i, (key, id)) in new.iter().enumerate() {
            if seen + i >= w.named_seen {
                w.add(*key, id);
            }
        }
        w.named_seen = w.named_seen.max(seen + new.len());
    }

    /// The devices of a terminal id (empty when none is assigned).
    pub fn lookup(&self, world: &World, tid: &str) -> Vec<DevKey> {
        let Some(n) = parse_tid(tid) else {
            return Vec::new();
        };
        self.catch_up(world);
        match self.inner.read().map.get(&n) {
            None => Vec::new(),
            Some(Slot::One(k)) => vec![*k],
            Some(Slot::Many(v)) => v.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collisions_keep_every_device() {
        let idx = TerminalIndex::default();
        let w = World::new(None);
        // find two ids with the same terminal id
        let mut seen: HashMap<u32, String> = HashMap::new();
        let (a, b) = (0..100_000u32)
            .find_map(|i| {
                let id = format!("POS-{i:08X}");
                let n = tid_number(&id);
                seen.insert(n, id.clone()).map(|prev| (prev, id))
            })
            .expect("a collision among 100k ids");
        idx.note(1, &a);
        idx.note(2, &b);
        idx.note(2, &b);
        assert_eq!(idx.lookup(&w, &terminal_id(&a)), vec![1, 2]);
        assert!(idx.lookup(&w, "TID-1").is_empty());
        assert!(idx.lookup(&w, "nope").is_empty());
        assert_eq!(terminal_id("POS-8F3A2C91").len(), 10);
    }
}
