//! Payments over real HTTP: the Idempotency-Key rules of spec 7.4 (a repeat answers the first
//! outcome, another request under the same key is refused, keys per terminal and operation).

use serde_json::{json, Value};

use crate::payments_support::*;
use crate::sandbox_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_7_4() {
    let env = start().await;
    let t = activate(&env, &pax()).await;
    let key = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let p = plain("1500", VISA);
    let first = t.charge(&env, &p, Some(key)).await;
    let first_env = ok_json(Ok(first)).await;
    let c = open_json(&t.keys.msk, &first_env);
    let raw = |v: &Value| {
        let env = posemu_protocol::envelope::Envelope::from_value(v.clone()).unwrap();
        posemu_protocol::envelope::open(&t.keys.msk, &env).unwrap()
    };
    // the same request, re-encrypted and re-serialized with unknown fields and defaults spelled out
    env.advance_secs(30);
    let same = json!({"card": {"exp_year": 2030, "exp_month": 12, "pan": VISA}, "entry_mode": "swipe",
        "amount": {"currency": "EUR", "value": "1500"}, "tip": {"value": "0", "currency": "EUR"},
        "allow_partial_approval": false, "reference": null, "unknown": true});
    let r = t.charge(&env, &same, Some(key)).await;
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let replay_env = ok_json(Ok(r)).await;
    assert_ne!(
        replay_env["initialization_vector"], first_env["initialization_vector"],
        "a fresh IV"
    );
    assert_eq!(
        raw(&replay_env),
        raw(&first_env),
        "the stored plaintext, byte for byte"
    );
    // 422: a different request, or the same key on another path
    expect_error(
        Ok(t.charge(&env, &plain("1600", VISA), Some(key)).await),
        422,
        "Idempotency-Key was used with a different request",
        Some(json!({"idempotency_key": key})),
    )
    .await;
    let id = c["charge_id"].as_str().unwrap();
    ok_json(settle(&env, Some(json!({"charge_id": id}))).await).await;
    let r = t
        .refund_req(&env, id, &json!({"amount": {"value": "100"}}))
        .set("Idempotency-Key", Some(key))
        .send(&env)
        .await;
    expect_error(
        Ok(r),
        422,
        "Idempotency-Key was used with a different request",
        Some(json!({"idempotency_key": key})),
    )
    .await;
    // a replay is a snapshot: the charge is settled now, the replay still says pending
    let r = t.charge(&env, &p, Some(key)).await;
    let snap = t.open_ok(r).await;
    assert_eq!(snap, c);
    assert_eq!(
        sandbox_charge(&env, id).await["settlement"]["status"],
        "settled"
    );

    // a 4xx stores nothing and the key stays free
    let k2 = "free-after-422";
    let usd = json!({"amount": {"value": "1500", "currency": "USD"}, "entry_mode": "swipe",
                     "card": {"pan": VISA, "exp_month": 12, "exp_year": 2030}});
    expect_error(
        Ok(t.charge(&env, &usd, Some(k2)).await),
        422,
        "Currency not supported by terminal",
        Some(json!({"currency": "USD", "supported": "EUR"})),
    )
    .await;
    let r = t.charge(&env, &plain("1700", VISA), Some(k2)).await;
    assert!(r.headers().get("idempotent-replayed").is_none());
    t.open_ok(r).await;
    // a decline is stored like an approval
    let k3 = "declined-once";
    let d1 = t
        .open_ok(t.charge(&env, &plain("1500", DECLINE), Some(k3)).await)
        .await;
    let d2 = t
        .open_ok(t.charge(&env, &plain("1500", DECLINE), Some(k3)).await)
        .await;
    assert_eq!(d1, d2);
    assert_eq!(d1["status"], "declined");

    // refunds: one per key
    let rk = "refund-key-1";
    let body = json!({"amount": {"value": "100"}});
    let r1 = t
        .open_ok(
            t.refund_req(&env, id, &body)
                .set("Idempotency-Key", Some(rk))
                .send(&env)
                .await,
        )
        .await;
    let r = t.refund_req(&env, id, &json!({"amount": {"value": "100", "currency": "EUR"}, "reason": "requested_by_customer"}))
        .set("Idempotency-Key", Some(rk)).send(&env).await;
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_eq!(t.open_ok(r).await, r1);
    assert_eq!(
        sandbox_charge(&env, id).await["refunded_amount"]["value"],
        "100"
    );
    // a refund 4xx frees its key too
    let rk2 = "refund-key-2";
    let r = t
        .refund_req(&env, id, &json!({"amount": {"value": "99999"}}))
        .set("Idempotency-Key", Some(rk2))
        .send(&env)
        .await;
    expect_error(
        Ok(r),
        422,
        "Refund amount exceeds remaining amount",
        Some(json!({"charge_id": id, "requested": "99999", "remaining": "1400"})),
    )
    .await;
    t.open_ok(
        t.refund_req(&env, id, &json!({"amount": {"value": "400"}}))
            .set("Idempotency-Key", Some(rk2))
            .send(&env)
            .await,
    )
    .await;

    // cancel ignores the header, even a malformed one
    let c4 = t.charge_ok(&env, &plain("1800", VISA)).await;
    let path = format!("/pos/charge/{}/cancel", c4["charge_id"].as_str().unwrap());
    let x = t
        .open_ok(
            t.signed(&env, &path, Vec::new())
                .set("Idempotency-Key", Some(""))
                .send(&env)
                .await,
        )
        .await;
    assert_eq!(x["status"], "cancelled");

    // the scope is one terminal: another terminal's same key is a new charge
    let other = activate(&env, &profile_dev("sunmi-p2")).await;
    let r = other.charge(&env, &p, Some(key)).await;
    assert!(r.headers().get("idempotent-replayed").is_none());
    assert_ne!(other.open_ok(r).await["charge_id"], c["charge_id"]);

    // 24 h later the key is free again
    env.advance_secs(24 * 3600);
    let r = t.charge(&env, &plain("1900", VISA), Some(key)).await;
    assert!(r.headers().get("idempotent-replayed").is_none());
    t.open_ok(r).await;
}
