//! Payments over real HTTP: the outcome table of spec 7.7 row by row, the 504 late approval,
//! `--no-magic-amounts`, `--settle-every` on the injected clock, 50 concurrent charges with
//! one Idempotency-Key, and malformed bodies that never get a 5xx.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::payments_support::*;
use crate::sandbox_common::*;

/// (spec row, request, status, decline_code, response_code, approved_amount, cvm)
type OutcomeRow = (
    u8,
    Value,
    &'static str,
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
    &'static str,
);

fn charge(amount: &str, pan: &str, entry: &str, exp: (u32, u32)) -> Value {
    json!({"amount": {"value": amount, "currency": "EUR"}, "entry_mode": entry,
           "card": {"pan": pan, "exp_month": exp.0, "exp_year": exp.1}})
}

fn with(mut v: Value, k: &str, x: Value) -> Value {
    v[k] = x;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_of_the_outcome_table() {
    let env = start().await;
    let t = activate(&env, &pax()).await;
    let future = (12, 2030);
    let pin = |pin: &str, pan: &str| json!(t.pin_block(pin, pan));
    // (spec row, request, status, decline_code, response_code, approved_amount, cvm)
    let rows: Vec<OutcomeRow> = vec![
        (
            1,
            charge("1500", "4242424242424241", "swipe", future),
            "declined",
            Some("invalid_card_number"),
            "14",
            None,
            "none",
        ),
        (
            2,
            charge("1500", VISA, "swipe", (11, 2025)),
            "declined",
            Some("expired_card"),
            "54",
            None,
            "none",
        ),
        (
            2,
            charge("1500", VISA, "swipe", (12, 2025)),
            "approved",
            None,
            "00",
            Some("1500"),
            "none",
        ),
        (
            3,
            with(
                charge("1500", VISA, "chip", future),
                "pin_block",
                pin("9999", VISA),
            ),
            "declined",
            Some("incorrect_pin"),
            "55",
            None,
            "none",
        ),
        (
            4,
            charge("1500", "4000000000000655", "swipe", future),
            "declined",
            Some("pin_required"),
            "65",
            None,
            "none",
        ),
        (
            4,
            with(
                charge("1500", "4000000000000655", "swipe", future),
                "pin_block",
                pin("1234", "4000000000000655"),
            ),
            "approved",
            None,
            "00",
            Some("1500"),
            "online_pin",
        ),
        (
            4,
            charge("1565", VISA, "manual", future),
            "declined",
            Some("pin_required"),
            "65",
            None,
            "none",
        ),
        (
            4,
            charge("5001", VISA, "chip", future),
            "declined",
            Some("pin_required"),
            "65",
            None,
            "none",
        ),
        (
            4,
            charge("5000", VISA, "chip", future),
            "approved",
            None,
            "00",
            Some("5000"),
            "none",
        ),
        (
            4,
            with(
                charge("4900", VISA, "contactless", future),
                "tip",
                json!({"value": "101", "currency": "EUR"}),
            ),
            "declined",
            Some("pin_required"),
            "65",
            None,
            "none",
        ),
        (
            4,
            with(
                charge("5001", VISA, "chip", future),
                "pin_block",
                pin("1234", VISA),
            ),
            "approved",
            None,
            "00",
            Some("5001"),
            "online_pin",
        ),
        (
            4,
            charge("9000", VISA, "swipe", future),
            "approved",
            None,
            "00",
            Some("9000"),
            "none",
        ),
        (
            5,
            charge("1500", DECLINE, "swipe", future),
            "declined",
            Some("do_not_honor"),
            "05",
            None,
            "none",
        ),
        (
            6,
            charge("1500", "4000000000009995", "swipe", future),
            "declined",
            Some("insufficient_funds"),
            "51",
            None,
            "none",
        ),
        (
            7,
            charge("1500", "4000000000000069", "swipe", future),
            "declined",
            Some("expired_card"),
            "54",
            None,
            "none",
        ),
        (
            8,
            charge("5", VISA, "swipe", future),
            "declined",
            Some("do_not_honor"),
            "05",
            None,
            "none",
        ),
        (
            9,
            with(
                with(
                    charge("1010", VISA, "swipe", future),
                    "allow_partial_approval",
                    json!(true),
                ),
                "tip",
                json!({"value": "1", "currency": "EUR"}),
            ),
            "approved",
            None,
            "10",
            Some("505"),
            "none",
        ),
        (
            10,
            charge("1010", VISA, "swipe", future),
            "declined",
            Some("insufficient_funds"),
            "51",
            None,
            "none",
        ),
        (
            10,
            charge("1051", VISA, "swipe", future),
            "declined",
            Some("insufficient_funds"),
            "51",
            None,
            "none",
        ),
        (
            11,
            charge("1054", VISA, "swipe", future),
            "declined",
            Some("expired_card"),
            "54",
            None,
            "none",
        ),
        (
            12,
            with(
                charge("1055", VISA, "swipe", future),
                "pin_block",
                pin("1234", VISA),
            ),
            "declined",
            Some("incorrect_pin"),
            "55",
            None,
            "online_pin",
        ),
        (
            14,
            charge("1091", VISA, "swipe", future),
            "declined",
            Some("issuer_unavailable"),
            "91",
            None,
            "none",
        ),
        (
            15,
            charge("1500", "378282246310005", "contactless", future),
            "approved",
            None,
            "00",
            Some("1500"),
            "none",
        ),
        (
            15,
            charge("1500", "6011111111111117", "swipe", future),
            "approved",
            None,
            "00",
            Some("1500"),
            "none",
        ),
    ];
    for (n, req, status, decline, code, approved, cvm) in rows {
        let c = t.charge_ok(&env, &req).await;
        let what = format!("row {n}: {c}");
        assert_eq!(c["status"], status, "{what}");
        assert_eq!(c["decline_code"], json!(decline), "{what}");
        assert_eq!(c["gateway"]["response_code"], code, "{what}");
        assert_eq!(c["approved_amount"]["value"].as_str(), approved, "{what}");
        assert_eq!(c["cvm"], cvm, "{what}");
        assert_eq!(c["auth_code"].is_string(), status == "approved", "{what}");
        assert_eq!(c["partial_approval"], json!(code == "10"), "{what}");
        let settlement = if status == "approved" {
            "pending"
        } else {
            "none"
        };
        assert_eq!(c["settlement"]["status"], settlement, "{what}");
    }
    let list = ok_json(
        env.req(
            Method::GET,
            &format!("/sandbox/terminals/{}/charges", t.tid),
        )
        .send()
        .await,
    )
    .await;
    assert_eq!(
        list["charges"][0]["gateway"]["stan"], "000024",
        "declines take a STAN too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amount_ending_in_68_is_a_late_approval() {
    let env = start().await;
    let t = activate(&env, &pax()).await;
    let p = plain("1068", VISA);
    let key = "late-approval-1";
    let id = late(t.charge(&env, &p, Some(key)).await).await;
    // stored approved; a retry with the key gets the 200 that the 504 withheld
    let stored = sandbox_charge(&env, &id).await;
    assert_eq!(stored["status"], "approved");
    assert_eq!(stored["gateway"]["response_code"], "00");
    let r = t.charge(&env, &p, Some(key)).await;
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_eq!(t.open_ok(r).await, stored);
    // without a key every attempt is a new charge and a new 504
    let id2 = late(t.charge(&env, &p, None).await).await;
    assert_ne!(id2, id);
    assert_eq!(sandbox_charge(&env, &id2).await["status"], "approved");
    // the device may cancel it
    let x = t.open_ok(t.cancel(&env, &id).await).await;
    assert_eq!(x["status"], "cancelled");
}

/// The 504 of row 13, exactly: `5004`, the message, `details: {"charge_id"}`, a trace id.
async fn late(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 504);
    let trace = trace_header(&r);
    let v: Value = r.json().await.unwrap();
    let id = v["error"]["details"]["charge_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(id.starts_with("ch_") && id.len() == 27, "{v}");
    assert_eq!(
        v,
        json!({"error": {"code": "5004", "message": "Issuer did not respond in time",
                          "details": {"charge_id": id}, "trace_id": trace}})
    );
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_magic_amounts_keeps_the_test_cards() {
    let env = start_with(|c| c.magic_amounts = false).await;
    let t = activate(&env, &pax()).await;
    for amount in ["5", "1010", "1051", "1054", "1055", "1065", "1068", "1091"] {
        let c = t.charge_ok(&env, &plain(amount, VISA)).await;
        assert_eq!(c["status"], "approved", "{amount}: {c}");
        assert_eq!(c["gateway"]["response_code"], "00");
    }
    let c = t.charge_ok(&env, &plain("1500", "4000000000009995")).await;
    assert_eq!(c["decline_code"], "insufficient_funds");
    let c = t.charge_ok(&env, &plain("1500", "4000000000000655")).await;
    assert_eq!(c["decline_code"], "pin_required");
    let c = t.charge_ok(&env, &plain("1500", "4242424242424241")).await;
    assert_eq!(c["decline_code"], "invalid_card_number");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_every_runs_on_the_sandbox_clock() {
    let env = start_with(|c| c.settle_every = Some(Duration::from_secs(60))).await;
    // started 14:25:30: ticks at 14:26:30, 14:27:30, …
    let t = activate(&env, &pax()).await;
    let c = t.charge_ok(&env, &plain("1500", VISA)).await;
    let id = c["charge_id"].as_str().unwrap();
    env.advance_secs(59);
    assert_eq!(
        sandbox_charge(&env, id).await["settlement"]["status"],
        "pending"
    );
    env.advance_secs(1);
    let s = sandbox_charge(&env, id).await;
    assert_eq!(s["settlement"]["status"], "settled");
    assert_eq!(s["settlement"]["settled_at"], "2025-12-13T14:26:30Z");
    // a charge made after a missed tick is settled at the first tick after it
    env.advance_secs(30);
    let c2 = t.charge_ok(&env, &plain("1600", VISA)).await;
    let id2 = c2["charge_id"].as_str().unwrap();
    env.advance_secs(3600);
    let s2 = sandbox_charge(&env, id2).await;
    assert_eq!(s2["settlement"]["settled_at"], "2025-12-13T14:27:30Z");
    // refunds are allowed once settled by the timer
    t.open_ok(t.refund(&env, id2, "1600").await).await;
    // and without the flag nothing settles on its own
    let quiet = start().await;
    let q = activate(&quiet, &pax()).await;
    let c = q.charge_ok(&quiet, &plain("1500", VISA)).await;
    quiet.advance_secs(10 * 24 * 3600);
    let s = sandbox_charge(&quiet, c["charge_id"].as_str().unwrap()).await;
    assert_eq!(s["settlement"]["status"], "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_identical_charges_make_one_charge() {
    let env = Arc::new(start().await);
    let t = Arc::new(activate(&env, &pax()).await);
    let key = "9b2c7e1a-3f4d-4e5a-8b6c-7d8e9f0a1b2c";
    // one plaintext, each request with its own IV, nonce and signature
    let p = plain("4200", VISA);
    let reqs: Vec<Signed> = (0..50).map(|_| t.charge_req(&env, &p, Some(key))).collect();
    let tasks: Vec<_> = reqs
        .into_iter()
        .map(|s| {
            let env = env.clone();
            tokio::spawn(async move {
                let r = s.send(&env).await;
                let status = r.status().as_u16();
                let replayed = r.headers().get("idempotent-replayed").is_some();
                (status, replayed, r.text().await.unwrap())
            })
        })
        .collect();
    let mut created = 0;
    let mut charge_ids = std::collections::HashSet::new();
    for task in tasks {
        let (status, replayed, text) = task.await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        match status {
            200 => {
                created += usize::from(!replayed);
                charge_ids.insert(open_json(&t.keys.msk, &v)["charge_id"].clone());
            }
            409 => {
                assert_eq!(
                    v["error"]["message"], "A request with this Idempotency-Key is in progress",
                    "{text}"
                );
                assert_eq!(v["error"]["details"], json!({"idempotency_key": key}));
            }
            other => panic!("{other}: {text}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(charge_ids.len(), 1);
    let list = ok_json(
        env.req(
            Method::GET,
            &format!("/sandbox/terminals/{}/charges", t.tid),
        )
        .send()
        .await,
    )
    .await;
    assert_eq!(list["charges"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_never_get_a_5xx() {
    let env = start().await;
    let t = activate(&env, &pax()).await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let mut bodies: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\xff\xfe\x00".to_vec(),
        deep.clone().into_bytes(),
        b"{\"format\":\"TR31-DATA\",\"ciphertext\":\"\",\"initialization_vector\":\"\",\"mode\":\"CBC\"}".to_vec(),
        t.seal(&json!({"amount": {"value": "99999999999999999999999", "currency": "EUR"}})),
        t.seal(&json!({"amount": {"value": "9999999999", "currency": "EUR"}, "tip": {"value": "9999999999", "currency": "EUR"},
            "entry_mode": "swipe", "card": {"pan": "4242424242424242424", "exp_month": 12, "exp_year": 2099}})),
        t.seal(&json!({"amount": {"value": "1500", "currency": "EUR"}, "entry_mode": "chip",
            "card": {"pan": VISA, "exp_month": -1, "exp_year": 18446744073709551615u64}})),
        t.seal(&json!({"amount": {"value": "1500", "currency": "EUR"}, "entry_mode": "chip",
            "card": {"pan": VISA, "exp_month": 1, "exp_year": 2030}, "pin_block": "\u{0}".repeat(32)})),
        serde_json::to_vec(&seal_json(&t.keys.msk, deep.as_bytes())).unwrap(),
    ];
    let mut seed = 0x1234_5678_9abc_def0u64;
    for len in [1usize, 15, 16, 17, 64, 300, 4096] {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        bodies.push(junk.clone());
        bodies.push(serde_json::to_vec(&seal_json(&t.keys.msk, &junk)).unwrap());
    }
    let c = t.charge_ok(&env, &plain("1500", VISA)).await;
    let id = c["charge_id"].as_str().unwrap();
    ok_json(settle(&env, None).await).await;
    for body in bodies {
        for path in [
            "/pos/charge".to_string(),
            format!("/pos/charge/{id}/refund"),
            format!("/pos/charge/{id}/cancel"),
        ] {
            let r = t.signed(&env, &path, body.clone()).send(&env).await;
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            assert!(status < 500, "{path} {status}: {text}");
        }
    }
    // the sum of maximal amounts saturates and still answers
    let max = t.charge_ok(&env, &json!({"amount": {"value": "9999999999", "currency": "EUR"}, "tip": {"value": "9999999999", "currency": "EUR"},
        "entry_mode": "swipe", "card": {"pan": VISA, "exp_month": 12, "exp_year": 2030}})).await;
    assert_eq!(max["total"]["value"], "19999999998");
    // odd charge ids in paths are just unknown charges
    for id in ["%00", "..", "ch_%F0%9F%92%A9", &"x".repeat(300)] {
        let r = t
            .signed(&env, &format!("/pos/charge/{id}/cancel"), Vec::new())
            .send(&env)
            .await;
        assert!(
            matches!(r.status().as_u16(), 404 | 401),
            "{id}: {}",
            r.status()
        );
    }
}

#[test]
fn the_payment_flags_reach_the_config() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: posemu::cli::sandbox::Args,
    }
    let parse = |args: &[&str]| {
        let cli =
            Cli::try_parse_from(std::iter::once("sandbox").chain(args.iter().copied())).unwrap();
        posemu::cli::sandbox::config(&cli.args).unwrap()
    };
    let cfg = parse(&["--settle-every", "30", "--no-magic-amounts"]);
    assert_eq!(cfg.settle_every, Some(Duration::from_secs(30)));
    assert!(!cfg.magic_amounts);
    let cfg = parse(&[]);
    assert_eq!(cfg.settle_every, None);
    assert!(cfg.magic_amounts);
    assert_eq!(
        parse(&["--settle-every", "0"]).settle_every,
        None,
        "0 means never"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_apply_to_payment_routes_by_template() {
    let env = start().await;
    let t = activate(&env, &pax()).await;
    let c = t.charge_ok(&env, &plain("1500", VISA)).await;
    let id = c["charge_id"].as_str().unwrap();
    let rules = json!({"seed": 1, "rules": [
        {"route": "/pos/charge/{charge_id}/cancel", "error_status": 503, "error_probability": 1.0, "retry_after_secs": 2}]});
    ok_json(
        env.req(Method::PUT, "/sandbox/faults")
            .json(&rules)
            .send()
            .await,
    )
    .await;
    let (h, _) = expect_error(
        Ok(t.cancel(&env, id).await),
        503,
        "Service unavailable",
        Some(json!({"injected": true})),
    )
    .await;
    assert_eq!(h["retry-after"], "2");
    // the alias path and the charge route are other routes
    t.charge_ok(&env, &plain("1600", VISA)).await;
    let x = t
        .open_ok(
            t.signed(&env, &format!("/pos/charge/{id}/reverse"), Vec::new())
                .send(&env)
                .await,
        )
        .await;
    assert_eq!(x["status"], "cancelled");
    let bad = json!({"rules": [{"route": "/pos/charge/ch_1/cancel", "drop_probability": 1.0}]});
    let r = env
        .req(Method::PUT, "/sandbox/faults")
        .json(&bad)
        .send()
        .await;
    assert_eq!(
        r.unwrap().status(),
        400,
        "a concrete charge path is not a route"
    );
    let all = json!({"rules": [{"route": "*", "error_status": 500, "error_probability": 1.0}]});
    ok_json(
        env.req(Method::PUT, "/sandbox/faults")
            .json(&all)
            .send()
            .await,
    )
    .await;
    expect_error(
        Ok(t.charge(&env, &plain("1700", VISA), None).await),
        500,
        "Internal server error",
        Some(json!({"injected": true})),
    )
    .await;
    // the helpers are never faulted
    sandbox_charge(&env, id).await;
}
