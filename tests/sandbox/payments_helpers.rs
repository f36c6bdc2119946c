//! Payments over real HTTP: the sandbox helpers of spec 7.12 (list, read, settle) and their
//! error rows.

use reqwest::Method;
use serde_json::{json, Value};

use crate::payments_support::*;
use crate::sandbox_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_helpers_7_12() {
    let env = start().await;
    let t = activate(&env, &pax()).await;
    let other = activate(&env, &profile_dev("sunmi-p2")).await;
    let get = |path: String| env.req(Method::GET, &path).send();
    expect_error(
        get("/sandbox/terminals/TID-X/charges".into()).await,
        404,
        "Terminal not found",
        Some(json!({"terminal_id": "TID-X"})),
    )
    .await;
    expect_error(
        get("/sandbox/charges/ch_nope".into()).await,
        404,
        "Charge not found",
        Some(json!({"charge_id": "ch_nope"})),
    )
    .await;
    // nothing pending
    assert_eq!(
        ok_json(settle(&env, None).await).await,
        json!({"settled_at": env.now(), "batches": []})
    );
    assert_eq!(
        ok_json(settle(&env, Some(json!({}))).await).await["batches"],
        json!([])
    );

    let a1 = t.charge_ok(&env, &plain("1000", VISA)).await;
    let a2 = t.charge_ok(&env, &plain("2000", VISA)).await;
    let b1 = other.charge_ok(&env, &plain("3000", VISA)).await;
    let d = t.charge_ok(&env, &plain("1500", DECLINE)).await;
    let id = |c: &Value| c["charge_id"].as_str().unwrap().to_string();
    let bad = |b: Value| settle(&env, Some(b));
    for body in [
        json!({"terminal_id": t.tid, "charge_id": id(&a1)}),
        json!([1]),
        json!("x"),
        json!({"terminal_id": 5}),
    ] {
        expect_error(bad(body).await, 400, "Invalid request body", None).await;
    }
    let r = env
        .req(Method::POST, "/sandbox/settle")
        .body("{not json")
        .send()
        .await;
    expect_error(r, 400, "Invalid request body", None).await;
    expect_error(
        bad(json!({"terminal_id": "TID-X"})).await,
        404,
        "Terminal not found",
        Some(json!({"terminal_id": "TID-X"})),
    )
    .await;
    expect_error(
        bad(json!({"charge_id": "ch_nope"})).await,
        404,
        "Charge not found",
        Some(json!({"charge_id": "ch_nope"})),
    )
    .await;
    expect_error(
        bad(json!({"charge_id": id(&d)})).await,
        409,
        "Charge cannot be settled",
        Some(json!({"charge_id": id(&d), "status": "declined", "settlement_status": "none"})),
    )
    .await;

    // one charge
    let s = ok_json(settle(&env, Some(json!({"charge_id": id(&a1)}))).await).await;
    assert_eq!(s["batches"][0]["charge_ids"], json!([id(&a1)]));
    expect_error(
        bad(json!({"charge_id": id(&a1)})).await,
        409,
        "Charge cannot be settled",
        Some(json!({"charge_id": id(&a1), "status": "approved", "settlement_status": "settled"})),
    )
    .await;
    // one terminal
    env.advance_secs(5);
    let s = ok_json(settle(&env, Some(json!({"terminal_id": other.tid}))).await).await;
    assert_eq!(s["batches"].as_array().unwrap().len(), 1);
    assert_eq!(s["batches"][0]["terminal_id"], other.tid);
    assert_eq!(
        s["batches"][0]["total"],
        json!({"value": "3000", "currency": "EUR"})
    );
    let b1_now = ok_json(get(format!("/sandbox/charges/{}", id(&b1))).await).await;
    assert_eq!(b1_now["settlement"]["settled_at"], env.now());
    assert_eq!(
        b1_now["settlement"]["batch_id"],
        s["batches"][0]["batch_id"]
    );
    // all: what is left
    let s = ok_json(settle(&env, None).await).await;
    assert_eq!(s["batches"].as_array().unwrap().len(), 1);
    assert_eq!(s["batches"][0]["charge_ids"], json!([id(&a2)]));
    // partial approvals settle their approved amount
    let p = t.charge_ok(&env, &json!({"amount": {"value": "1010", "currency": "EUR"}, "tip": {"value": "91", "currency": "EUR"},
        "entry_mode": "swipe", "allow_partial_approval": true, "card": {"pan": VISA, "exp_month": 12, "exp_year": 2030}})).await;
    assert_eq!(p["approved_amount"]["value"], "550");
    let s = ok_json(settle(&env, None).await).await;
    assert_eq!(s["batches"][0]["total"]["value"], "550");
    let list = ok_json(get(format!("/sandbox/terminals/{}/charges", t.tid)).await).await;
    assert_eq!(list["charges"].as_array().unwrap().len(), 4);
    assert_eq!(list["charges"][0]["charge_id"], p["charge_id"]);
    assert_eq!(
        list.as_object().unwrap().len(),
        2,
        "spec 7.12's shape: {list}"
    );
    // ?limit=N: the newest N, and the total
    let newest = ok_json(get(format!("/sandbox/terminals/{}/charges?limit=2", t.tid)).await).await;
    assert_eq!(newest["total"], 4);
    assert_eq!(newest["pending"], 0, "everything was settled above");
    assert_eq!(newest["charges"].as_array().unwrap().len(), 2);
    assert_eq!(newest["charges"][0]["charge_id"], p["charge_id"]);
    for bad in ["0", "10001", "x", ""] {
        expect_error(
            get(format!("/sandbox/terminals/{}/charges?limit={bad}", t.tid)).await,
            400,
            "Invalid query parameter",
            Some(json!({"parameter": "limit", "expected": "1-10000"})),
        )
        .await;
    }
}
