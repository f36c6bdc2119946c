//! Every error row of spec 4.6 (attestation), in the documented order of checks.

use crate::sandbox_common::*;
use posemu_protocol::clock::{rfc3339, Clock};
use reqwest::Method;
use serde_json::json;

const SIG_HEADERS: [&str; 4] = ["X-Key-Id", "X-Timestamp", "X-Nonce", "X-Signature"];

/// An attest request with the signature headers given explicitly (`None` = left out).
fn attest_raw(env: &Env, dev: &Dev, values: [Option<String>; 4]) -> reqwest::RequestBuilder {
    let mut r = env.dev_req(Method::POST, "/pos/attest", dev);
    for (name, v) in SIG_HEADERS.into_iter().zip(values) {
        if let Some(v) = v {
            r = r.header(name, v);
        }
    }
    r
}

fn valid(dev: &Dev, ts: &str, nonce: &str) -> [Option<String>; 4] {
    let h = signature_headers(dev, ts, nonce);
    std::array::from_fn(|i| Some(h[i].1.clone()))
}

#[tokio::test]
async fn the_spec_signature_vector_is_accepted_at_its_time() {
    // Spec 4.6 vector: the shipped default device signs exactly the documented header.
    let env = start().await;
    let dev = pax();
    env.to_claimed(&dev).await;
    let h = signature_headers(&dev, "2025-12-13T14:25:30Z", "a1b2c3d4e5f6");
    assert_eq!(h[3].1, "v1=2eaNW/3HmGdxawjPRmD3Iq3v1sC6qHHh+7+wOdvWPHg=");
    let v = ok_json(
        env.attest_req(&dev, "2025-12-13T14:25:30Z", "a1b2c3d4e5f6")
            .send()
            .await,
    )
    .await;
    assert_eq!(v["status"], "attested");
}

#[tokio::test]
async fn each_missing_signature_header_is_named() {
    let env = start().await;
    let dev = pax();
    for i in 0..4 {
        let mut values = valid(&dev, &env.now(), &nonce());
        values[i] = None;
        expect_error(
            attest_raw(&env, &dev, values).send().await,
            400,
            &format!("{} header is required", SIG_HEADERS[i]),
            None,
        )
        .await;
    }
    // A missing header is reported before a malformed one.
    let mut values = valid(&dev, "yesterday", "short");
    values[3] = None;
    expect_error(
        attest_raw(&env, &dev, values).send().await,
        400,
        "X-Signature header is required",
        None,
    )
    .await;
}

#[tokio::test]
async fn malformed_signature_headers_are_invalid() {
    let env = start().await;
    let dev = pax();
    let cases: Vec<(usize, String, &str)> = vec![
        (1, "2025-12-13 14:25:30".into(), "X-Timestamp"),
        (1, "1765635930".into(), "X-Timestamp"),
        (1, "yesterday".into(), "X-Timestamp"),
        (2, "a1b2c3d4e5f".into(), "X-Nonce"),
        (2, "a1b2c3d4e5f6-".into(), "X-Nonce"),
        (2, "a1b2c3d4e5f6 x".into(), "X-Nonce"),
        (2, "a".repeat(65), "X-Nonce"),
        (
            3,
            "2eaNW/3HmGdxawjPRmD3Iq3v1sC6qHHh+7+wOdvWPHg=".into(),
            "X-Signature",
        ),
        (
            3,
            "v2=2eaNW/3HmGdxawjPRmD3Iq3v1sC6qHHh+7+wOdvWPHg=".into(),
            "X-Signature",
        ),
        (3, "v1=not base64!".into(), "X-Signature"),
        (3, "v1=YWJj".into(), "X-Signature"),
        (
            3,
            "v1=2eaNW_3HmGdxawjPRmD3Iq3v1sC6qHHh-7-wOdvWPHg".into(),
            "X-Signature",
        ),
    ];
    for (i, value, header) in cases {
        let mut values = valid(&dev, &env.now(), &nonce());
        values[i] = Some(value.clone());
        expect_error(
            attest_raw(&env, &dev, values).send().await,
            400,
            &format!("{header} header is invalid"),
            None,
        )
        .await;
    }
    // Nonce bounds: 12 and 64 alphanumerics are fine (the device is unclaimed: 409 means the
    // header checks passed).
    for n in ["a1b2c3d4e5f6".to_string(), "Z".repeat(64)] {
        expect_error(
            env.attest_req(&dev, &env.now(), &n).send().await,
            409,
            "Device is not claimed",
            Some(json!({"device_status": "inactive"})),
        )
        .await;
    }
}

#[tokio::test]
async fn unknown_key_id_then_window_then_signature_then_nonce_then_status() {
    let env = start().await;
    let dev = pax();
    let server_time = json!({"server_time": "2025-12-13T14:25:30Z"});

    // Unknown key id (checked before the window).
    let other_key = Dev {
        key_id: "device-id-key-2024-07".into(),
        ..dev.clone()
    };
    expect_error(
        env.attest_req(&other_key, "2020-01-01T00:00:00Z", &nonce())
            .send()
            .await,
        401,
        "Unknown or revoked identity key",
        None,
    )
    .await;

    // Outside the window, with a wrong secret too: the window is reported.
    let now = env.clock.now();
    let wrong = Dev {
        secret: [9; 32],
        ..dev.clone()
    };
    for ts in [
        now - chrono::Duration::seconds(301),
        now + chrono::Duration::seconds(61),
        now - chrono::Duration::days(1),
    ] {
        expect_error(
            env.attest_req(&wrong, &rfc3339(ts), &nonce()).send().await,
            401,
            "Timestamp outside allowed window",
            Some(server_time.clone()),
        )
        .await;
    }
    // The window's edges are inside (5 min behind, 1 min ahead); offsets are understood.
    for ts in [
        rfc3339(now - chrono::Duration::seconds(300)),
        rfc3339(now + chrono::Duration::seconds(60)),
        "2025-12-13T15:25:30+01:00".to_string(),
    ] {
        expect_error(
            env.attest_req(&dev, &ts, &nonce()).send().await,
            409,
            "Device is not claimed",
            Some(json!({"device_status": "inactive"})),
        )
        .await;
    }

    // A wrong signature: wrong secret, or signed over other values.
    let n = nonce();
    expect_error(
        env.attest_req(&wrong, &env.now(), &n).send().await,
        401,
        "Invalid signature",
        None,
    )
    .await;
    let mut values = valid(&dev, &env.now(), &n);
    values[2] = Some(nonce());
    expect_error(
        attest_raw(&env, &dev, values).send().await,
        401,
        "Invalid signature",
        None,
    )
    .await;

    // A nonce whose signature failed is not remembered; an unclaimed device's verified nonce is.
    expect_error(
        env.attest_req(&dev, &env.now(), &n).send().await,
        409,
        "Device is not claimed",
        Some(json!({"device_status": "inactive"})),
    )
    .await;
    env.to_claimed(&dev).await;
    expect_error(
        env.attest_req(&dev, &env.now(), &n).send().await,
        401,
        "Nonce already used",
        None,
    )
    .await;
    // A replayed nonce with a wrong signature is an invalid signature, not a replay.
    expect_error(
        env.attest_req(&wrong, &env.now(), &n).send().await,
        401,
        "Invalid signature",
        None,
    )
    .await;
}

#[tokio::test]
async fn a_nonce_is_remembered_for_ten_minutes_per_device() {
    let env = start().await;
    let dev = pax();
    let other = profile_dev("sunmi-p2");
    env.to_claimed(&dev).await;
    env.to_claimed(&other).await;
    let n = nonce();
    let ts = env.now();
    ok_json(env.attest_req(&dev, &ts, &n).send().await).await;
    // The exact same request again: a replay.
    expect_error(
        env.attest_req(&dev, &ts, &n).send().await,
        401,
        "Nonce already used",
        None,
    )
    .await;
    // Another device may use the same nonce.
    ok_json(env.attest_req(&other, &ts, &n).send().await).await;
    env.advance_secs(599);
    expect_error(
        env.attest_req(&dev, &env.now(), &n).send().await,
        401,
        "Nonce already used",
        None,
    )
    .await;
    env.advance_secs(1);
    ok_json(env.attest_req(&dev, &env.now(), &n).send().await).await;
}

#[tokio::test]
async fn a_skewed_device_clock_is_refused_with_the_server_time() {
    let env = start().await;
    let dev = pax();
    env.to_claimed(&dev).await;
    // The device's clock runs 10 minutes late; the server says what time it is.
    let late = rfc3339(env.clock.now() - chrono::Duration::minutes(10));
    let (_, e) = expect_error(
        env.attest_req(&dev, &late, &nonce()).send().await,
        401,
        "Timestamp outside allowed window",
        Some(json!({"server_time": "2025-12-13T14:25:30Z"})),
    )
    .await;
    // Corrected by the offset it learned, the device attests.
    let corrected = e["details"]["server_time"].as_str().unwrap();
    ok_json(env.attest_req(&dev, corrected, &nonce()).send().await).await;
}
