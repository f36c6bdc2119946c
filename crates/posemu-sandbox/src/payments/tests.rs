//! Unit tests of the payment operations that HTTP cannot reach deterministically.

use super::*;
use posemu_protocol::payments::validate::charge_request;

pub(super) fn terminal(tips_enabled: bool) -> Terminal {
    Terminal {
        key: 1,
        terminal_id: "TID-000001".into(),
        merchant_id: "m".into(),
        currency: "EUR".into(),
        tips_enabled,
        pin_required_above: 5000,
        contactless_limit: 5000,
    }
}

pub(super) fn valid(tip: &str) -> ValidCharge {
    let plain = format!(
        r#"{{"amount":{{"value":"1500","currency":"EUR"}},"tip":{{"value":"{tip}","currency":"EUR"}},"entry_mode":"swipe","card":{{"pan":"4242424242424242","exp_month":12,"exp_year":2030}}}}"#
    );
    charge_request(plain.as_bytes(), &[0x40; 32]).unwrap_or_else(|_| panic!("valid"))
}

pub(super) fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_765_636_200, 0).unwrap_or_default()
}

#[test]
fn tips_when_the_merchant_has_none() {
    let p = Payments::new(1, true, None, now());
    let e = p
        .charge(
            &terminal(false),
            &valid("5"),
            Some("k"),
            "/pos/charge",
            now(),
        )
        .err()
        .map(|e| (e.status, e.message, e.details.is_empty()));
    assert_eq!(
        e,
        Some((422, "Tips are not enabled for this merchant".into(), true))
    );
    // the 422 stored nothing: the key is free for another request
    let ok = p.charge(
        &terminal(false),
        &valid("0"),
        Some("k"),
        "/pos/charge",
        now(),
    );
    assert!(ok.is_ok_and(|a| !a.replayed && a.late_charge_id.is_none()));
    assert!(p
        .charge(&terminal(true), &valid("5"), None, "/pos/charge", now())
        .is_ok());
}

#[test]
fn a_key_in_progress_answers_409() {
    let p = Payments::new(1, true, None, now());
    let t = terminal(true);
    let v = valid("0");
    let d = v.digest();
    assert_eq!(
        p.with_ledger(1, |l| l.idem_begin(
            "k",
            "/pos/charge",
            &d,
            now().timestamp_millis()
        )),
        IdemCheck::Fresh
    );
    let e = p.charge(&t, &v, Some("k"), "/pos/charge", now()).err();
    assert_eq!(
        e.map(|e| (e.status, e.message, e.details)),
        Some((
            409,
            "A request with this Idempotency-Key is in progress".into(),
            serde_json::json!({"idempotency_key": "k"})
                .as_object()
                .cloned()
                .unwrap_or_default()
        ))
    );
}

#[test]
fn charges_per_terminal_are_bounded_and_ids_follow() {
    let p = Payments::new(1, true, None, now());
    let t = terminal(true);
    let mut first = None;
    for _ in 0..MAX_CHARGES_PER_TERMINAL + 1 {
        let a = p.charge(&t, &valid("0"), None, "/pos/charge", now());
        let c: Charge = a
            .ok()
            .and_then(|a| serde_json::from_slice(&a.plaintext).ok())
            .unwrap_or_else(|| panic!("a charge"));
        first.get_or_insert(c.charge_id);
    }
    let first = first.unwrap_or_default();
    assert!(p.find(&first).is_none(), "the oldest went");
    assert_eq!(p.owners.lock().len(), MAX_CHARGES_PER_TERMINAL);
    assert_eq!(
        p.charges_of(&[1], None).charges.len(),
        MAX_CHARGES_PER_TERMINAL
    );
    let newest = p.charges_of(&[1], Some(20));
    assert_eq!(
        (newest.charges.len(), newest.total),
        (20, MAX_CHARGES_PER_TERMINAL)
    );
}

/// Memory per stored charge, and the sandbox-wide bound: twice `MAX_CHARGES` charges over
/// 1,000 terminals keep the RSS of `MAX_CHARGES`.
#[test]
#[ignore = "a measurement: cargo test --release -p posemu-sandbox --lib memory_per_charge -- --ignored --nocapture"]
fn memory_per_charge() {
    fn rss() -> usize {
        let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages = s.split(' ').nth(1).and_then(|v| v.parse::<usize>().ok());
        pages.unwrap_or(0) * 4096
    }
    let p = Payments::new(1, true, None, now());
    let mut t = terminal(false);
    let v = valid("0");
    let n = super::MAX_CHARGES;
    let start = rss();
    let mut at_cap = 0;
    for i in 0..2 * n {
        t.key = (i % 1000) as DevKey;
        let k = format!("{i:08x}-1111-4111-8111-111111111111");
        let _ = p.charge(&t, &v, Some(&k), "/pos/charge", now());
        if i + 1 == n {
            at_cap = rss();
        }
    }
    let end = rss();
    println!(
        "{} bytes per charge; RSS {} MiB at {n} charges, {} MiB at {}",
        (at_cap - start) / n,
        at_cap >> 20,
        end >> 20,
        2 * n
    );
    assert!(end < at_cap + at_cap / 10, "bounded: {at_cap} -> {end}");
}
