//! The sandbox-only endpoints under `/sandbox/` (spec 5): list, provision, claim, expire, reset.

use crate::sandbox_common::*;
use posemu_sandbox::FleetSeed;
use reqwest::Method;
use serde_json::{json, Value};

const DEMO_MERCHANT: &str = "550e8400-e29b-41d4-a716-446655440000";

async fn list(env: &Env, query: &str) -> Value {
    ok_json(
        env.req(Method::GET, &format!("/sandbox/devices{query}"))
            .send()
            .await,
    )
    .await
}

fn find<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {list}"))
}

#[tokio::test]
async fn the_list_shows_every_device_with_its_state() {
    let env = start_with(|c| c.fleet = Some(FleetSeed::new("l"))).await;
    let v = list(&env, "").await;
    assert_eq!(
        v["total"], 3,
        "the shipped profiles; untouched fleet devices are not listed"
    );
    let ids: Vec<&str> = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    let d = find(&v, "POS-8F3A2C91");
    assert_eq!(d["device_status"], "inactive");
    assert_eq!(d["pairing_code"], Value::Null);
    assert_eq!(d["pairing_code_status"], "none");
    assert_eq!(d["merchant_id"], DEMO_MERCHANT);
    assert!(d["terminal_id"].as_str().unwrap().starts_with("TID-"));
    assert_eq!(d["activated_at"], Value::Null);
    assert_eq!(d["last_seen"], Value::Null);

    let dev = pax();
    env.bootstrap(&dev).await;
    let code = env.pairing_code(&dev).await;
    let fleet = Dev {
        id: "POS-F0000009".into(),
        ..pax()
    };
    env.bootstrap(&fleet).await;
    let v = list(&env, "").await;
    assert_eq!(v["total"], 4);
    let d = find(&v, "POS-8F3A2C91");
    assert_eq!(d["pairing_code"], json!(code));
    assert_eq!(d["pairing_code_status"], "pending");
    assert_eq!(d["last_seen"], "2025-12-13T14:25:30Z");
    assert_eq!(find(&v, "POS-F0000009")["device_status"], "inactive");

    let v = list(&env, "?limit=1").await;
    assert_eq!(v["total"], 4);
    assert_eq!(v["devices"].as_array().unwrap().len(), 1);
    expect_error(
        env.req(Method::GET, "/sandbox/devices?limit=many")
            .send()
            .await,
        400,
        "Invalid request",
        None,
    )
    .await;
}

fn provision_body(id: &str) -> Value {
    json!({
        "device_id": id,
        "identity_key_id": "device-id-key-2026-02",
        "identity_secret_hex": "ab".repeat(32),
        "zmk_hex": "CD".repeat(32),
    })
}

#[tokio::test]
async fn provisioned_devices_activate() {
    let env = start_with(|c| c.fleet = Some(FleetSeed::new("p"))).await;
    let r = env
        .req(Method::POST, "/sandbox/devices")
        .json(&provision_body("POS-0000ABCD"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["device_id"], "POS-0000ABCD");
    assert_eq!(v["device_status"], "inactive");
    assert_eq!(v["merchant_id"], DEMO_MERCHANT);
    let dev = Dev {
        id: "POS-0000ABCD".into(),
        key_id: "device-id-key-2026-02".into(),
        secret: [0xAB; 32],
        zmk: [0xCD; 32],
        ua: DEMO_UA.into(),
    };
    let (token, keys) = env.to_keys(&dev).await;
    ok_json(
        env.att_req("/pos/activate", &dev, &token)
            .json(&seal_json(&keys.msk, ALL_OK))
            .send()
            .await,
    )
    .await;
    let d = list(&env, "").await;
    let d = find(&d, "POS-0000ABCD");
    assert_eq!(d["device_status"], "activated");
    assert_eq!(d["activated_at"], "2025-12-13T14:25:30Z");
    assert_eq!(d["pairing_code_status"], "used");

    // Ids that exist already: a profile, a fleet id, this one again.
    for id in ["POS-8F3A2C91", "POS-F0000001", "POS-0000ABCD"] {
        expect_error(
            env.req(Method::POST, "/sandbox/devices")
                .json(&provision_body(id))
                .send()
                .await,
            409,
            "Device already exists",
            Some(json!({"device_id": id})),
        )
        .await;
    }
}

#[tokio::test]
async fn provisioning_validates_every_field() {
    let env = start().await;
    let with = |field: &str, value: Value| {
        let mut b = provision_body("POS-00000001");
        b[field] = value;
        b
    };
    let cases = [
        (
            with("device_id", json!("POS-1")),
            json!({"field": "device_id", "message": "expected POS- and 8 uppercase hex digits"}),
        ),
        (
            with("identity_key_id", json!(" ")),
            json!({"field": "identity_key_id", "message": "must not be empty"}),
        ),
        (
            with("identity_secret_hex", json!("abcd")),
            json!({"field": "identity_secret_hex", "message": "is 4 hex characters, expected 64 (32 bytes)"}),
        ),
        (
            with("zmk_hex", json!("zz".repeat(32))),
            json!({"field": "zmk_hex", "message": "has 'z' at position 1, expected 64 hex characters (32 bytes)"}),
        ),
    ];
    for (body, details) in cases {
        expect_error(
            env.req(Method::POST, "/sandbox/devices")
                .json(&body)
                .send()
                .await,
            400,
            "Invalid request body",
            Some(details),
        )
        .await;
    }
    for body in [json!({}), with("colour", json!("red")), json!([1])] {
        let r = env
            .req(Method::POST, "/sandbox/devices")
            .json(&body)
            .send()
            .await;
        let (_, e) = expect_error_message(r, 400, "Invalid request body").await;
        assert!(e["details"]["message"].is_string());
    }
}

async fn expect_error_message(
    r: reqwest::Result<reqwest::Response>,
    status: u16,
    message: &str,
) -> (u16, Value) {
    let r = r.unwrap();
    assert_eq!(r.status(), status);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], message);
    (status, v["error"].clone())
}

#[tokio::test]
async fn the_claim_helper_claims_the_pending_code() {
    let env = start().await;
    let dev = pax();
    let path = "/sandbox/devices/POS-8F3A2C91/claim";
    expect_error(
        env.req(Method::POST, path).send().await,
        409,
        "No pending pairing code",
        Some(json!({"device_id": "POS-8F3A2C91", "pairing_code_status": "none"})),
    )
    .await;
    let code = env.pairing_code(&dev).await;
    let v = ok_json(env.req(Method::POST, path).send().await).await;
    assert_eq!(
        v,
        json!({"status": "claimed", "device_id": "POS-8F3A2C91", "pairing_code": code})
    );
    assert_eq!(
        env.status(&dev).await,
        json!({"device_status": "claimed", "is_claimed": true, "pairing_code_status": "used"})
    );
    expect_error(
        env.req(Method::POST, path).send().await,
        409,
        "No pending pairing code",
        Some(json!({"device_id": "POS-8F3A2C91", "pairing_code_status": "used"})),
    )
    .await;
    // The merchant API now sees the code as used.
    let token = env.merchant_token().await;
    expect_error(
        Ok(env.claim_with(&token, json!({"pairing_code": code})).await),
        409,
        "Pairing code already used",
        None,
    )
    .await;
    for helper in ["claim", "expire-code", "reset"] {
        expect_error(
            env.req(
                Method::POST,
                &format!("/sandbox/devices/POS-00000000/{helper}"),
            )
            .send()
            .await,
            404,
            "Device not found",
            Some(json!({"device_id": "POS-00000000"})),
        )
        .await;
    }
}

#[tokio::test]
async fn the_claim_helper_claims_for_any_merchant() {
    let env = start().await;
    let mut body = provision_body("POS-00C0FFEE");
    body["merchant_id"] = json!("another-merchant");
    let r = env
        .req(Method::POST, "/sandbox/devices")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["merchant_id"], "another-merchant");
    let dev = Dev {
        id: "POS-00C0FFEE".into(),
        ..pax()
    };
    env.pairing_code(&dev).await;
    ok_json(
        env.req(Method::POST, "/sandbox/devices/POS-00C0FFEE/claim")
            .send()
            .await,
    )
    .await;
    assert_eq!(env.status(&dev).await["device_status"], "claimed");
}

#[tokio::test]
async fn expire_code_then_a_new_code() {
    let env = start().await;
    let dev = pax();
    let path = "/sandbox/devices/POS-8F3A2C91/expire-code";
    let code = env.pairing_code(&dev).await;
    let v = ok_json(env.req(Method::POST, path).send().await).await;
    assert_eq!(
        v,
        json!({"status": "expired", "device_id": "POS-8F3A2C91", "pairing_code": code})
    );
    assert_eq!(env.status(&dev).await["pairing_code_status"], "expired");
    expect_error(
        env.req(Method::POST, path).send().await,
        409,
        "No pending pairing code",
        Some(json!({"device_id": "POS-8F3A2C91", "pairing_code_status": "expired"})),
    )
    .await;
    let fresh = env.pairing_code(&dev).await;
    assert_ne!(fresh, code);
    ok_json(
        env.req(Method::POST, "/sandbox/devices/POS-8F3A2C91/claim")
            .send()
            .await,
    )
    .await;
}

#[tokio::test]
async fn reset_returns_an_activated_device_to_the_start() {
    let env = start().await;
    let dev = pax();
    let (token, keys) = env.to_keys(&dev).await;
    ok_json(
        env.att_req("/pos/activate", &dev, &token)
            .json(&seal_json(&keys.msk, ALL_OK))
            .send()
            .await,
    )
    .await;
    let v = ok_json(
        env.req(Method::POST, "/sandbox/devices/POS-8F3A2C91/reset")
            .send()
            .await,
    )
    .await;
    assert_eq!(
        v,
        json!({"status": "inactive", "device_id": "POS-8F3A2C91"})
    );
    assert_eq!(
        env.status(&dev).await,
        json!({"device_status": "inactive", "is_claimed": false, "pairing_code_status": "none"})
    );
    let d = list(&env, "").await;
    assert_eq!(find(&d, "POS-8F3A2C91")["activated_at"], Value::Null);
    // The whole flow again, with a new key set.
    env.advance_secs(10);
    let (token, again) = env.to_keys(&dev).await;
    assert_ne!(again.msk, keys.msk);
    let v = ok_json(
        env.att_req("/pos/activate", &dev, &token)
            .json(&seal_json(&again.msk, ALL_OK))
            .send()
            .await,
    )
    .await;
    assert_eq!(
        open_json(&again.msk, &v)["activated_at"],
        "2025-12-13T14:25:40Z"
    );
}
