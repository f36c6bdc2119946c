//! Payments over real HTTP: the error rows of spec 7.3, 7.4, 7.6, 7.8 and 7.9, one test row
//! per spec row (the Idempotency-Key rules are in `payments_idempotency`).

use posemu_protocol::crypto::Key;
use posemu_protocol::envelope::seal_single_with_iv;
use reqwest::Method;
use serde_json::{json, Value};

use crate::payments_support::*;
use crate::sandbox_common::*;

/// (body, Idempotency-Key, status, message, details)
type BodyRow<'a> = (Vec<u8>, Option<&'a str>, u16, &'a str, Option<Value>);

fn invalid_field(field: &str, reason: &str) -> Option<Value> {
    Some(json!({"field": field, "reason": reason}))
}

/// A wrong MSK without `key_kcv`: the padding almost always fails (and does, for this IV).
fn without_kcv(body: &[u8]) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(body).unwrap();
    v.as_object_mut().unwrap().remove("key_kcv");
    serde_json::to_vec(&v).unwrap()
}

fn envelope_text(key: &Key, plain: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&seal_single_with_iv(key, plain, &[7u8; 16])).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_7_3_and_7_6() {
    let env = start().await;
    let t = activate(&env, &pax()).await;
    let ok_plain = plain("1500", VISA).to_string();
    let good = envelope_text(&t.keys.msk, ok_plain.as_bytes());
    let with_kcv = |kcv: &str| {
        let mut v: Value = serde_json::from_slice(&good).unwrap();
        v["key_kcv"] = json!(kcv);
        serde_json::to_vec(&v).unwrap()
    };
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v: Value = serde_json::from_slice(&good).unwrap();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let sealed = |plain: &str| envelope_text(&t.keys.msk, plain.as_bytes());
    let shape = Some(json!({"reason": "expected a TR31-DATA envelope"}));
    let not_object = Some(json!({"reason": "plaintext is not a JSON object"}));
    let wrong_tpk_block =
        posemu_protocol::payments::pinblock::encipher(&[9u8; 32], "1234", VISA, &mut rand::rng())
            .unwrap();
    // (body, Idempotency-Key, status, message, details)
    let rows: Vec<BodyRow> = vec![
        // 7.4 syntax comes first, before the envelope
        (
            b"junk".to_vec(),
            Some(""),
            400,
            "Idempotency-Key header is invalid",
            Some(
                json!({"header": "Idempotency-Key", "expected": "1-255 visible ASCII characters"}),
            ),
        ),
        (
            good.clone(),
            Some("a b"),
            400,
            "Idempotency-Key header is invalid",
            Some(
                json!({"header": "Idempotency-Key", "expected": "1-255 visible ASCII characters"}),
            ),
        ),
        (
            good.clone(),
            Some(&*"k".repeat(256).leak()),
            400,
            "Idempotency-Key header is invalid",
            Some(
                json!({"header": "Idempotency-Key", "expected": "1-255 visible ASCII characters"}),
            ),
        ),
        // row 1: not a TR31-DATA envelope
        (
            b"junk".to_vec(),
            None,
            400,
            "Invalid request body",
            shape.clone(),
        ),
        (Vec::new(), None, 400, "Invalid request body", shape.clone()),
        (
            b"[]".to_vec(),
            None,
            400,
            "Invalid request body",
            shape.clone(),
        ),
        (
            edit(&|v| v["format"] = json!("TR31-DATA-CHUNKED")),
            None,
            400,
            "Invalid request body",
            shape.clone(),
        ),
        (
            edit(&|v| v["mode"] = json!("ECB")),
            None,
            400,
            "Invalid request body",
            shape.clone(),
        ),
        (
            edit(&|v| v["ciphertext"] = json!(5)),
            None,
            400,
            "Invalid request body",
            shape.clone(),
        ),
        (
            edit(&|v| {
                v.as_object_mut().unwrap().remove("initialization_vector");
            }),
            None,
            400,
            "Invalid request body",
            shape.clone(),
        ),
        (
            edit(&|v| v["content_encoding"] = json!("gzip")),
            None,
            400,
            "Invalid request body",
            shape.clone(),
        ),
        // row 2: key_kcv
        (
            with_kcv("000000"),
            None,
            400,
            "key_kcv does not match MSK",
            None,
        ),
        (
            envelope_text(&[9u8; 32], ok_plain.as_bytes()),
            None,
            400,
            "key_kcv does not match MSK",
            None,
        ),
        // row 3: cannot be decrypted
        (
            edit(&|v| v["ciphertext"] = json!("ZZ")),
            None,
            400,
            "Envelope could not be decrypted",
            None,
        ),
        (
            edit(&|v| v["initialization_vector"] = json!("0001")),
            None,
            400,
            "Envelope could not be decrypted",
            None,
        ),
        (
            edit(&|v| v["ciphertext"] = json!("")),
            None,
            400,
            "Envelope could not be decrypted",
            None,
        ),
        (
            edit(&|v| {
                let c = v["ciphertext"].as_str().unwrap().to_string();
                v["ciphertext"] = json!(&c[..c.len() - 2]);
            }),
            None,
            400,
            "Envelope could not be decrypted",
            None,
        ),
        (
            without_kcv(&envelope_text(&[9u8; 32], ok_plain.as_bytes())),
            None,
            400,
            "Envelope could not be decrypted",
            None,
        ),
        // row 4: plaintext is not a JSON object
        (
            sealed("[1]"),
            None,
            400,
            "Invalid request body",
            not_object.clone(),
        ),
        (
            envelope_text(&t.keys.msk, b"{\"a\":\"\xff\"}"),
            None,
            400,
            "Invalid request body",
            not_object.clone(),
        ),
        // row 5: fields, in the order of 7.6
        (
            sealed("{}"),
            None,
            400,
            "Invalid request body",
            invalid_field("amount", "required"),
        ),
        (
            sealed(r#"{"amount":{"value":"1.50","currency":"EUR"}}"#),
            None,
            400,
            "Invalid request body",
            invalid_field("amount.value", "invalid"),
        ),
        (
            sealed(r#"{"amount":{"value":"150"}}"#),
            None,
            400,
            "Invalid request body",
            invalid_field("amount.currency", "required"),
        ),
        (
            sealed(
                r#"{"amount":{"value":"150","currency":"EUR"},"tip":{"value":"5","currency":"USD"}}"#,
            ),
            None,
            400,
            "Invalid request body",
            invalid_field("tip.currency", "invalid"),
        ),
        (
            sealed(r#"{"amount":{"value":"150","currency":"EUR"}}"#),
            None,
            400,
            "Invalid request body",
            invalid_field("entry_mode", "required"),
        ),
        (
            sealed(
                r#"{"amount":{"value":"150","currency":"EUR"},"entry_mode":"chip","card":{"pan":"4242 4242 4242 4242"}}"#,
            ),
            None,
            400,
            "Invalid request body",
            invalid_field("card.pan", "invalid"),
        ),
        (
            sealed(
                r#"{"amount":{"value":"150","currency":"EUR"},"entry_mode":"chip","card":{"pan":"4242424242424242","exp_month":0,"exp_year":2030}}"#,
            ),
            None,
            400,
            "Invalid request body",
            invalid_field("card.exp_month", "invalid"),
        ),
        (
            sealed(&format!(
                r#"{{"amount":{{"value":"150","currency":"EUR"}},"entry_mode":"chip","card":{{"pan":"{VISA}","exp_month":1,"exp_year":2030}},"pin_block":"{wrong_tpk_block}"}}"#
            )),
            None,
            400,
            "Invalid request body",
            invalid_field("pin_block", "invalid"),
        ),
        (
            sealed(&format!(
                r#"{{"amount":{{"value":"150","currency":"EUR"}},"entry_mode":"chip","card":{{"pan":"{VISA}","exp_month":1,"exp_year":2030}},"reference":"ORDER\u00e9"}}"#
            )),
            None,
            400,
            "Invalid request body",
            invalid_field("reference", "invalid"),
        ),
        (
            sealed(&format!(
                r#"{{"amount":{{"value":"150","currency":"EUR"}},"entry_mode":"chip","card":{{"pan":"{VISA}","exp_month":1,"exp_year":2030}},"allow_partial_approval":1}}"#
            )),
            None,
            400,
            "Invalid request body",
            invalid_field("allow_partial_approval", "invalid"),
        ),
        // 7.6: the terminal's currency
        (
            sealed(
                r#"{"amount":{"value":"150","currency":"USD"},"entry_mode":"chip","card":{"pan":"4242424242424242","exp_month":1,"exp_year":2030}}"#,
            ),
            None,
            422,
            "Currency not supported by terminal",
            Some(json!({"currency": "USD", "supported": "EUR"})),
        ),
    ];
    for (i, (body, key, status, message, details)) in rows.into_iter().enumerate() {
        let s = t.signed(&env, "/pos/charge", body);
        let s = match key {
            Some(k) => s.set("Idempotency-Key", Some(k)),
            None => s,
        };
        let r = s.send(&env).await;
        assert!(r.status().as_u16() < 500, "row {i}");
        expect_error(Ok(r), status, message, details).await;
    }
    // nothing was charged
    let list = ok_json(
        env.req(
            Method::GET,
            &format!("/sandbox/terminals/{}/charges", t.tid),
        )
        .send()
        .await,
    )
    .await;
    assert_eq!(list["charges"], json!([]));
    // unknown fields are ignored; a null key_kcv or content_encoding is absent
    let extra = edit(&|v| {
        v["key_kcv"] = Value::Null;
        v["content_encoding"] = Value::Null;
        v["extra"] = json!(1);
    });
    t.open_ok(t.signed(&env, "/pos/charge", extra).send(&env).await)
        .await;
    let unknown = plain("1500", VISA)
        .as_object()
        .unwrap()
        .clone()
        .into_iter()
        .chain([("loyalty".to_string(), json!({"id": 1}))])
        .collect::<serde_json::Map<_, _>>();
    t.charge_ok(&env, &Value::Object(unknown)).await;

    // refund: 7.3 first, then the charge's 404
    let r = t
        .signed(
            &env,
            "/pos/charge/ch_unknown/refund",
            t.seal(&json!({"amount": {}})),
        )
        .send(&env)
        .await;
    expect_error(
        Ok(r),
        400,
        "Invalid request body",
        invalid_field("amount.value", "required"),
    )
    .await;
    let r = t
        .signed(
            &env,
            "/pos/charge/ch_unknown/refund",
            t.seal(&json!({"amount": {"value": "5"}, "reason": "bored"})),
        )
        .send(&env)
        .await;
    expect_error(
        Ok(r),
        400,
        "Invalid request body",
        invalid_field("reason", "invalid"),
    )
    .await;
    let r = t
        .signed(&env, "/pos/charge/ch_unknown/refund", b"{}".to_vec())
        .send(&env)
        .await;
    expect_error(Ok(r), 400, "Invalid request body", shape).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_and_cancel_rows_7_8_and_7_9() {
    let env = start().await;
    let t = activate(&env, &pax()).await;
    let other = activate(&env, &profile_dev("verifone-v400c")).await;
    let id_of = |c: &Value| c["charge_id"].as_str().unwrap().to_string();
    let declined = id_of(&t.charge_ok(&env, &plain("1500", DECLINE)).await);
    let cancelled = id_of(&t.charge_ok(&env, &plain("1500", VISA)).await);
    t.open_ok(t.cancel(&env, &cancelled).await).await;
    let pending = id_of(&t.charge_ok(&env, &plain("1500", VISA)).await);
    let settled = id_of(&t.charge_ok(&env, &plain("1500", VISA)).await);
    let refunded = id_of(&t.charge_ok(&env, &plain("1500", VISA)).await);
    ok_json(settle(&env, Some(json!({"charge_id": settled}))).await).await;
    ok_json(settle(&env, Some(json!({"charge_id": refunded}))).await).await;
    t.open_ok(t.refund(&env, &refunded, "1500").await).await;
    let theirs = id_of(&other.charge_ok(&env, &plain("1500", VISA)).await);

    let refund_rows: Vec<(&str, Value, u16, &str, Value)> = vec![
        (
            "ch_nosuchcharge",
            json!({"amount": {"value": "1"}}),
            404,
            "Charge not found",
            json!({"charge_id": "ch_nosuchcharge"}),
        ),
        (
            &theirs,
            json!({"amount": {"value": "1"}}),
            404,
            "Charge not found",
            json!({"charge_id": theirs}),
        ),
        (
            &declined,
            json!({"amount": {"value": "1"}}),
            409,
            "Charge was declined",
            json!({"charge_id": declined, "status": "declined"}),
        ),
        (
            &cancelled,
            json!({"amount": {"value": "1"}}),
            409,
            "Charge was cancelled",
            json!({"charge_id": cancelled, "status": "cancelled"}),
        ),
        (
            &pending,
            json!({"amount": {"value": "1"}}),
            409,
            "Charge is not settled; cancel it instead",
            json!({"charge_id": pending, "settlement_status": "pending"}),
        ),
        (
            &refunded,
            json!({"amount": {"value": "1"}}),
            409,
            "Charge is already fully refunded",
            json!({"charge_id": refunded, "status": "refunded"}),
        ),
        (
            &settled,
            json!({"amount": {"value": "1", "currency": "USD"}}),
            422,
            "Currency does not match charge",
            json!({"currency": "USD", "charge_currency": "EUR"}),
        ),
        (
            &settled,
            json!({"amount": {"value": "1501"}}),
            422,
            "Refund amount exceeds remaining amount",
            json!({"charge_id": settled, "requested": "1501", "remaining": "1500"}),
        ),
    ];
    for (id, body, status, message, details) in refund_rows {
        let r = t.refund_req(&env, id, &body).send(&env).await;
        expect_error(Ok(r), status, message, Some(details)).await;
    }
    let cancel_rows: Vec<(&str, u16, &str, Value)> = vec![
        (
            "ch_nosuchcharge",
            404,
            "Charge not found",
            json!({"charge_id": "ch_nosuchcharge"}),
        ),
        (
            &theirs,
            404,
            "Charge not found",
            json!({"charge_id": theirs}),
        ),
        (
            &declined,
            409,
            "Charge was declined",
            json!({"charge_id": declined, "status": "declined"}),
        ),
        (
            &settled,
            409,
            "Charge is already settled; refund it instead",
            json!({"charge_id": settled, "settled_at": env.now()}),
        ),
        (
            &refunded,
            409,
            "Charge is already settled; refund it instead",
            json!({"charge_id": refunded, "settled_at": env.now()}),
        ),
    ];
    for (id, status, message, details) in cancel_rows {
        for verb in ["cancel", "reverse"] {
            let r = t
                .signed(&env, &format!("/pos/charge/{id}/{verb}"), Vec::new())
                .send(&env)
                .await;
            expect_error(Ok(r), status, message, Some(details.clone())).await;
        }
    }
    // wrong method: 405
    let r = env
        .req(Method::GET, &format!("/pos/charge/{pending}/cancel"))
        .send()
        .await;
    expect_error(r, 405, "Method not allowed", None).await;
    let r = env.req(Method::GET, "/pos/charge").send().await;
    expect_error(r, 405, "Method not allowed", None).await;
}
