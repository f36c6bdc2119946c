//! The merchant side: every error row of spec 4.4 (claim) and 4.5 (session), in order, and 50
//! concurrent claims of one code.

use crate::sandbox_common::*;
use reqwest::Method;
use serde_json::{json, Value};

const VALIDATOR: &str = "Key: 'ClaimDeviceRequest.PairingCode' Error:Field validation for 'PairingCode' failed on the 'required' tag";

fn body_error() -> Option<Value> {
    Some(json!({"message": VALIDATOR}))
}

#[tokio::test]
async fn claim_body_is_checked_first() {
    let env = start().await;
    for body in [
        "",
        "not json",
        "[]",
        "{}",
        r#"{"pairing_code": ""}"#,
        r#"{"pairing_code": "   "}"#,
        r#"{"pairing_code": null}"#,
        r#"{"pairing_code": 123456}"#,
        r#"{"pairing_code": "K7M3NP", "device_id": 5}"#,
    ] {
        // No Authorization either: the body is reported.
        let r = env
            .req(Method::POST, "/pos/claim")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await;
        expect_error(r, 400, "Invalid request body", body_error()).await;
    }
}

#[tokio::test]
async fn claim_authorization_rows() {
    let env = start().await;
    let body = json!({"pairing_code": "K7M3NP"});
    let r = env.req(Method::POST, "/pos/claim").json(&body).send().await;
    expect_error(r, 401, "Authorization token is required", None).await;
    let r = env
        .req(Method::POST, "/pos/claim")
        .header("Authorization", "Basic ZGVtbzpkZW1v")
        .json(&body)
        .send()
        .await;
    expect_error(r, 401, "Authorization token is required", None).await;

    let good = env.merchant_token().await;
    let mut tampered = good.clone().into_bytes();
    let i = tampered.len() - 3;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    for token in [
        "not-a-jwt".to_string(),
        "a.b.c".to_string(),
        String::from_utf8(tampered).unwrap(),
        good.replacen("eyJ", "eyK", 1),
    ] {
        expect_error(
            Ok(env.claim_with(&token, body.clone()).await),
            401,
            "Authorization token is invalid or expired",
            None,
        )
        .await;
    }
    // Valid token, but no /session/initiate for it.
    let fresh = env.merchant_session().await;
    expect_error(
        Ok(env.claim_with(&fresh, body.clone()).await),
        403,
        "Session not initiated",
        None,
    )
    .await;
    // The initiated token expires after 300 s.
    env.advance_secs(299);
    expect_error(
        Ok(env.claim_with(&good, body.clone()).await),
        404,
        "Pairing code not found",
        None,
    )
    .await;
    env.advance_secs(1);
    expect_error(
        Ok(env.claim_with(&good, body).await),
        401,
        "Authorization token is invalid or expired",
        None,
    )
    .await;
}

#[tokio::test]
async fn claim_code_rows_in_order() {
    let env = start().await;
    let dev = pax();
    let other = profile_dev("sunmi-p2");
    let token = env.merchant_token().await;

    // No such code (unknown, or not even code-shaped).
    for code in ["ABCDEF", "K7", "K7M3NPQ", "ÄÖÜ"] {
        expect_error(
            Ok(env.claim_with(&token, json!({"pairing_code": code})).await),
            404,
            "Pairing code not found",
            None,
        )
        .await;
    }

    // Expired by time (with a mismatching device_id too: expiry is reported first).
    let old = env.pairing_code(&dev).await;
    env.advance_secs(300);
    let token = env.merchant_token().await;
    expect_error(
        Ok(env
            .claim_with(&token, json!({"pairing_code": old, "device_id": other.id}))
            .await),
        410,
        "Pairing code expired",
        None,
    )
    .await;

    // Replaced by a newer code.
    let replaced = env.pairing_code(&dev).await;
    let current = env.pairing_code(&dev).await;
    expect_error(
        Ok(env
            .claim_with(&token, json!({"pairing_code": replaced}))
            .await),
        410,
        "Pairing code expired",
        None,
    )
    .await;

    // device_id of another device.
    expect_error(
        Ok(env
            .claim_with(
                &token,
                json!({"pairing_code": current, "device_id": other.id}),
            )
            .await),
        400,
        "device_id does not match pairing code",
        None,
    )
    .await;
    // A malformed device_id is just another device.
    expect_error(
        Ok(env
            .claim_with(
                &token,
                json!({"pairing_code": current, "device_id": "pos-8f3a2c91"}),
            )
            .await),
        400,
        "device_id does not match pairing code",
        None,
    )
    .await;

    // Claimed; then already used (with a wrong device_id: used is reported first).
    ok_json(Ok(env
        .claim_with(&token, json!({"pairing_code": current, "device_id": null}))
        .await))
    .await;
    expect_error(
        Ok(env
            .claim_with(
                &token,
                json!({"pairing_code": current, "device_id": other.id}),
            )
            .await),
        409,
        "Pairing code already used",
        None,
    )
    .await;
}

#[tokio::test]
async fn a_code_expired_by_the_sandbox_helper_is_expired() {
    let env = start().await;
    let dev = pax();
    let code = env.pairing_code(&dev).await;
    ok_json(
        env.req(Method::POST, "/sandbox/devices/POS-8F3A2C91/expire-code")
            .send()
            .await,
    )
    .await;
    assert_eq!(env.status(&dev).await["pairing_code_status"], "expired");
    let token = env.merchant_token().await;
    expect_error(
        Ok(env.claim_with(&token, json!({"pairing_code": code})).await),
        410,
        "Pairing code expired",
        None,
    )
    .await;
}

#[tokio::test]
async fn a_device_of_another_merchant_cannot_be_claimed() {
    let env = start().await;
    let dev = Dev {
        id: "POS-0A0B0C0D".into(),
        ..pax()
    };
    let r = env
        .req(Method::POST, "/sandbox/devices")
        .json(&json!({
            "device_id": dev.id, "identity_key_id": dev.key_id,
            "identity_secret_hex": hex::encode(dev.secret), "zmk_hex": hex::encode(dev.zmk),
            "merchant_id": "7d3f2a10-0000-4000-8000-000000000002"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let code = env.pairing_code(&dev).await;
    let token = env.merchant_token().await;
    // A wrong device_id is reported before the merchant.
    expect_error(
        Ok(env
            .claim_with(
                &token,
                json!({"pairing_code": code, "device_id": "POS-8F3A2C91"}),
            )
            .await),
        400,
        "device_id does not match pairing code",
        None,
    )
    .await;
    expect_error(
        Ok(env.claim_with(&token, json!({"pairing_code": code})).await),
        403,
        "Device does not belong to merchant",
        None,
    )
    .await;
    assert_eq!(env.status(&dev).await["pairing_code_status"], "pending");
}

#[tokio::test]
async fn fifty_concurrent_claims_of_one_code_have_one_winner() {
    let env = start().await;
    let dev = pax();
    let code = env.pairing_code(&dev).await;
    let token = env.merchant_token().await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        // One client each: 50 connections, really concurrent.
        let http = client();
        let url = format!("{}/pos/claim", env.url);
        let (token, code) = (token.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({"pairing_code": code}))
                .send()
                .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        if r.status() == 200 {
            won += 1;
            let v: Value = r.json().await.unwrap();
            assert_eq!(v, json!({"status": "claimed", "device_id": "POS-8F3A2C91"}));
        } else {
            expect_error(Ok(r), 409, "Pairing code already used", None).await;
        }
    }
    assert_eq!(won, 1);
    assert_eq!(env.status(&dev).await["device_status"], "claimed");
}

#[tokio::test]
async fn merchant_session_rows() {
    let env = start().await;
    for path in ["/client/session", "/auth/token"] {
        for creds in [
            json!({"client_id": "demo-merchant", "client_secret": "wrong"}),
            json!({"client_id": "someone", "client_secret": "demo-secret"}),
            json!({"client_id": "", "client_secret": ""}),
        ] {
            let r = env.req(Method::POST, path).json(&creds).send().await;
            expect_error(r, 401, "Invalid client credentials", None).await;
        }
        for body in ["", "{}", r#"{"client_id": "demo-merchant"}"#] {
            let r = env
                .req(Method::POST, path)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await;
            expect_error(r, 400, "Invalid request body", None).await;
        }
    }
    let r = env
        .req(Method::POST, "/session/initiate")
        .json(&json!({"host": "merchant.viopay.io"}))
        .send()
        .await;
    expect_error(r, 401, "Authorization token is required", None).await;
    let r = env
        .req(Method::POST, "/session/initiate")
        .bearer_auth("x.y.z")
        .json(&json!({"host": "merchant.viopay.io"}))
        .send()
        .await;
    expect_error(r, 401, "Authorization token is invalid or expired", None).await;
    let token = env.merchant_session().await;
    for body in [json!({}), json!({"host": ""}), json!({"host": 5})] {
        let r = env
            .req(Method::POST, "/session/initiate")
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await;
        expect_error(
            r,
            400,
            "Invalid request body",
            Some(json!({"message": "host is required"})),
        )
        .await;
    }
    let r = env
        .req(Method::POST, "/session/initiate")
        .bearer_auth(&token)
        .body("not json")
        .send()
        .await;
    expect_error(r, 400, "Invalid request body", None).await;
}
