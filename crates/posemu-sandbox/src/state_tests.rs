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
    let code = |i: u32| -> [u8; 6] { std::array::from_fn(|j| b'A' + ((i >> (4 * j)) & 15) as u8) };
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
fn initiated_sessions_expire_and_are_bounded() {
    let mut s = InitiatedSessions::default();
    for i in 0..1024 {
        assert!(s.insert(i, 100, 0));
    }
    assert!(s.contains(5, 50) && !s.contains(5, 100));
    // The next insert after they expired sweeps them.
    assert!(s.insert(9999, 10_000, 200));
    assert_eq!(s.count(), 1);
    for i in 0..MAX_INITIATED_SESSIONS as u64 {
        s.insert(i, 10_000, 300);
    }
    assert_eq!(s.count(), MAX_INITIATED_SESSIONS);
    assert!(!s.insert(u64::MAX, 10_000, 300), "full of live sessions");
    assert!(s.insert(u64::MAX, 20_000, 10_000), "room once they expired");
    assert_eq!(s.count(), 1);
}

#[test]
fn merchants_are_bounded_and_never_alias() {
    let w = World::new(None);
    let dev = |i: usize, merchant: String| NewDevice {
        id: format!("POS-{i:08X}"),
        key_id: "k".into(),
        secret: [0; 32],
        zmk: [0; 32],
        merchant_id: merchant,
    };
    // Duplicates create no merchant.
    assert!(w.provision(dev(1, "m-first".into())).is_ok());
    for i in 0..70_000 {
        assert_eq!(
            w.provision(dev(1, format!("dup-{i}"))),
            Err(ProvisionError::Exists)
        );
    }
    assert_eq!(w.merchants.read().count(), 2);
    // Past 65,535 merchants an index is still its own merchant's.
    for i in 2..70_000 {
        w.provision(dev(i, format!("m-{i}"))).unwrap();
    }
    let key = w.resolve(&format!("POS-{:08X}", 69_999)).unwrap();
    let m = w.identity(key).merchant;
    assert_eq!(w.merchants.read().get(m).unwrap().id, "m-69999");
    assert!(m > u32::from(u16::MAX));
}

#[test]
fn named_devices_shadow_nothing_and_fleet_ids_resolve() {
    let w = World::new(Some(FleetSeed {
        seed: "s".into(),
        prefix: "F0".into(),
    }));
    assert_eq!(w.resolve("POS-F0000010"), Some(0x10));
    assert_eq!(w.resolve("POS-F1000010"), None);
    let dev = |id: &str| NewDevice {
        id: id.into(),
        key_id: "k".into(),
        secret: [0; 32],
        zmk: [0; 32],
        merchant_id: DEMO_MERCHANT_ID.into(),
    };
    assert_eq!(
        w.provision(dev("POS-F0000010")),
        Err(ProvisionError::Exists),
        "fleet ids are taken"
    );
    assert!(w.provision(dev("POS-12345678")).is_ok());
    assert_eq!(
        w.provision(dev("POS-12345678")),
        Err(ProvisionError::Exists)
    );
    assert_eq!(
        w.identity(w.resolve("POS-12345678").unwrap()).id,
        "POS-12345678"
    );
    assert_eq!(w.identity(0x10).id, "POS-F0000010");
}
