//! Payments over real HTTP (spec 7): the whole loop of a terminal, and the request log.

use reqwest::Method;
use serde_json::{json, Value};

use crate::payments_support::*;
use crate::sandbox_common::*;
use posemu_protocol::payments::{body_sha256, string_to_sign};

fn is_base62_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|t| t.len() == 24 && t.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_charges_settles_refunds_and_cancels() {
    let env = start().await;
    let t = activate(&env, &pax()).await;
    assert!(t.tid.starts_with("TID-") && t.mac_key_id.starts_with("hmac-key-"));
    env.advance_secs(30);

    // The spec's example charge (7.13), with a fresh IV, nonce and signature.
    let example: Value = json!({"amount":{"value":"1500","currency":"EUR"},"tip":{"value":"150","currency":"EUR"},
        "entry_mode":"chip","card":{"pan":"4242424242424242","exp_month":12,"exp_year":2030},"reference":"ORDER-1001"});
    let r = t
        .charge(&env, &example, Some("0f8fad5b-d9cb-469f-a165-70867728950e"))
        .await;
    assert!(r.headers().get("idempotent-replayed").is_none());
    let c = t.open_ok(r).await;
    let id = c["charge_id"].as_str().unwrap().to_string();
    assert!(is_base62_id(&id, "ch_"), "{id}");
    let auth = c["auth_code"].as_str().unwrap();
    assert!(
        auth.len() == 6
            && auth
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    );
    let rrn = c["gateway"]["rrn"].as_str().unwrap();
    assert!(
        rrn.len() == 12 && rrn.bytes().all(|b| b.is_ascii_digit()),
        "{rrn}"
    );
    let eur = |v: &str| json!({"value": v, "currency": "EUR"});
    assert_eq!(
        c,
        json!({"charge_id": id, "terminal_id": t.tid, "merchant_id": "550e8400-e29b-41d4-a716-446655440000",
            "status": "approved", "amount": eur("1500"), "tip": eur("150"), "total": eur("1650"),
            "approved_amount": eur("1650"), "partial_approval": false, "refunded_amount": eur("0"),
            "entry_mode": "chip", "card": {"brand": "visa", "masked_pan": "424242******4242", "last4": "4242"},
            "cvm": "none", "auth_code": auth, "decline_code": null, "reference": "ORDER-1001",
            "gateway": {"acquirer": "posemu-sandbox", "response_code": "00", "rrn": rrn, "stan": "000001", "pos_entry_mode": "05"},
            "settlement": {"status": "pending", "batch_id": null, "settled_at": null},
            "refunds": [], "created_at": "2025-12-13T14:26:00Z", "cancelled_at": null})
    );
    assert_eq!(sandbox_charge(&env, &id).await, c);

    // A second charge takes the next STAN and another RRN; it is cancelled, twice.
    let c2 = t.charge_ok(&env, &plain("2000", "5555555555554444")).await;
    assert_eq!(c2["gateway"]["stan"], "000002");
    assert_eq!(c2["gateway"]["pos_entry_mode"], "90");
    assert_eq!(c2["card"]["brand"], "mastercard");
    assert_ne!(c2["gateway"]["rrn"], c["gateway"]["rrn"]);
    let id2 = c2["charge_id"].as_str().unwrap().to_string();
    env.advance_secs(10);
    let x = t.open_ok(t.cancel(&env, &id2).await).await;
    assert_eq!(x["status"], "cancelled");
    assert_eq!(x["settlement"]["status"], "none");
    assert_eq!(x["cancelled_at"], "2025-12-13T14:26:10Z");
    env.advance_secs(10);
    let again = t
        .open_ok(
            t.signed(&env, &format!("/pos/charge/{id2}/reverse"), Vec::new())
                .send(&env)
                .await,
        )
        .await;
    assert_eq!(again, x, "a cancelled charge answers the same object again");

    // Refund before settlement: 409; settle; refunds in two parts.
    expect_error(
        Ok(t.refund(&env, &id, "500").await),
        409,
        "Charge is not settled; cancel it instead",
        Some(json!({"charge_id": id, "settlement_status": "pending"})),
    )
    .await;
    let s = ok_json(settle(&env, None).await).await;
    let batch = s["batches"][0]["batch_id"].as_str().unwrap().to_string();
    assert!(is_base62_id(&batch, "bat_"));
    assert_eq!(
        s,
        json!({"settled_at": "2025-12-13T14:26:20Z", "batches": [{"batch_id": batch,
            "terminal_id": t.tid, "charge_ids": [id], "total": eur("1650")}]})
    );
    expect_error(
        Ok(t.cancel(&env, &id).await),
        409,
        "Charge is already settled; refund it instead",
        Some(json!({"charge_id": id, "settled_at": "2025-12-13T14:26:20Z"})),
    )
    .await;
    env.advance_secs(60);
    let r1 = t
        .open_ok(
            t.refund_req(
                &env,
                &id,
                &json!({"amount": {"value": "500"}, "reason": "duplicate"}),
            )
            .send(&env)
            .await,
        )
        .await;
    let rid = r1["refund_id"].as_str().unwrap().to_string();
    assert!(is_base62_id(&rid, "re_"));
    assert_eq!(r1["status"], "succeeded");
    assert_eq!(r1["amount"], eur("500"));
    assert_eq!(r1["reason"], "duplicate");
    assert_eq!(r1["created_at"], "2025-12-13T14:27:20Z");
    assert_eq!(r1["charge"]["status"], "partially_refunded");
    assert_eq!(r1["charge"]["refunded_amount"], eur("500"));
    assert_eq!(
        r1["charge"]["refunds"],
        json!([{"refund_id": rid, "charge_id": id, "status": "succeeded", "amount": eur("500"),
                "reason": "duplicate", "created_at": "2025-12-13T14:27:20Z"}])
    );
    expect_error(
        Ok(t.refund(&env, &id, "1151").await),
        422,
        "Refund amount exceeds remaining amount",
        Some(json!({"charge_id": id, "requested": "1151", "remaining": "1150"})),
    )
    .await;
    let r2 = t.open_ok(t.refund(&env, &id, "1150").await).await;
    assert_eq!(r2["reason"], "requested_by_customer");
    assert_eq!(r2["charge"]["status"], "refunded");
    assert_eq!(r2["charge"]["refunded_amount"], eur("1650"));
    assert_eq!(r2["charge"]["refunds"].as_array().unwrap().len(), 2);
    assert_eq!(r2["charge"]["settlement"]["status"], "settled");
    expect_error(
        Ok(t.refund(&env, &id, "1").await),
        409,
        "Charge is already fully refunded",
        Some(json!({"charge_id": id, "status": "refunded"})),
    )
    .await;

    // The helper lists newest first.
    let list = ok_json(
        env.req(
            Method::GET,
            &format!("/sandbox/terminals/{}/charges", t.tid),
        )
        .send()
        .await,
    )
    .await;
    assert_eq!(list["terminal_id"], t.tid);
    let ids: Vec<&str> = list["charges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["charge_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id2.as_str(), id.as_str()]);
    assert_eq!(list["charges"][1], r2["charge"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_log_shows_the_string_the_sandbox_verified() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let env = start_with(|c| c.request_log = Some(tx)).await;
    let t = activate(&env, &pax()).await;
    while rx.try_recv().is_ok() {}
    let s = t.charge_req(&env, &plain("1500", VISA), None).set(
        "X-Signature",
        Some("v1=rbnorETwJqXIrO8qOQZdD0am8TVEuas8ykET2r2lMG4="),
    );
    let r = s.send(&env).await;
    let text = r.text().await.unwrap();
    let line = rx.recv().await.expect("a log line");
    let expected = string_to_sign(
        &t.tid,
        &t.mac_key_id,
        s.header("X-Timestamp").unwrap(),
        s.header("X-Nonce").unwrap(),
        "POST",
        "/pos/charge",
        &s.body,
    );
    assert_eq!(line.signed.as_deref(), Some(expected.as_str()));
    assert_eq!(line.device_id.as_deref(), Some(t.tid.as_str()));
    assert_eq!(line.status, 401);
    let shown = line.to_string();
    assert!(shown.contains(&format!("signed={expected:?}")), "{shown}");
    assert!(
        !text.contains(&body_sha256(&s.body)),
        "never in the response: {text}"
    );
    assert!(!shown.contains(VISA), "no PAN in the log: {shown}");
    // other requests have no string
    env.bootstrap(&t.dev).await;
    assert_eq!(rx.recv().await.unwrap().signed, None);
}
