//! Attestation auth (spec 3.2) on steps 6-8, and the error rows of 4.8, 4.9 and 4.11.

use crate::sandbox_common::*;
use posemu_protocol::crypto::kcv;
use posemu_protocol::envelope::{open, seal_gzip_parts, seal_single, Envelope};
use reqwest::Method;
use serde_json::{json, Value};

const ATTESTED: [&str; 4] = [
    "/pos/keys",
    "/pos/config",
    "/pos/terminal-parameters",
    "/pos/activate",
];

#[tokio::test]
async fn attestation_auth_rows_on_every_attested_step() {
    let env = start().await;
    let dev = pax();
    let other = profile_dev("verifone-v400c");
    let (token, _) = env.to_keys(&dev).await;
    let (other_token, _) = env.to_keys(&other).await;
    for path in ATTESTED {
        let no_auth = env.dev_req(Method::POST, path, &dev);
        expect_error(
            no_auth.send().await,
            401,
            "Attestation token is required",
            None,
        )
        .await;
        for auth in [
            format!("Bearer {token}"),
            "Attestation".to_string(),
            "Attestation ".to_string(),
            token.clone(),
        ] {
            let r = env
                .dev_req(Method::POST, path, &dev)
                .header("Authorization", auth);
            expect_error(r.send().await, 401, "Attestation token is required", None).await;
        }
        expect_error(
            env.att_req(path, &dev, "att_AAAAAAAAAAAAAAAAAAAAAAAA")
                .send()
                .await,
            401,
            "Attestation token is invalid or expired",
            None,
        )
        .await;
        // Token of another device.
        expect_error(
            env.att_req(path, &dev, &other_token).send().await,
            403,
            "Attestation token does not match device",
            None,
        )
        .await;
        // X-Device-Id problems come first.
        let r = env
            .req(Method::POST, path)
            .header("Authorization", format!("Attestation {token}"));
        expect_error(r.send().await, 400, "X-Device-Id header is required", None).await;
        let r = env
            .req(Method::POST, path)
            .header("X-Device-Id", "POS-8F3A2C9Z");
        expect_error(
            r.send().await,
            400,
            "X-Device-Id header is invalid",
            Some(json!({"header": "X-Device-Id", "expected": "POS-{8_HEX_CHARS}"})),
        )
        .await;
    }
    // User-Agent and X-Client-Type are not required here.
    let r = env
        .req(Method::POST, "/pos/keys")
        .header("X-Device-Id", &dev.id)
        .header("Authorization", format!("Attestation {token}"));
    ok_json(r.send().await).await;
}

#[tokio::test]
async fn attestation_tokens_expire_after_300_seconds() {
    let env = start().await;
    let dev = pax();
    let (token, _) = env.to_keys(&dev).await;
    env.advance_secs(299);
    ok_json(env.att_req("/pos/config", &dev, &token).send().await).await;
    env.advance_secs(1);
    for path in ATTESTED {
        expect_error(
            env.att_req(path, &dev, &token).send().await,
            401,
            "Attestation token is invalid or expired",
            None,
        )
        .await;
    }
    // Attesting again gives a working token.
    let token = env.attest(&dev).await;
    ok_json(env.att_req("/pos/config", &dev, &token).send().await).await;
}

#[tokio::test]
async fn steps_7_and_8_need_keys_first() {
    let env = start().await;
    let dev = pax();
    env.to_claimed(&dev).await;
    let token = env.attest(&dev).await;
    for path in &ATTESTED[1..] {
        expect_error(
            env.att_req(path, &dev, &token)
                .json(&json!({}))
                .send()
                .await,
            409,
            "Keys not issued",
            None,
        )
        .await;
    }
}

/// An activate request carrying `body` as its JSON text.
async fn activate_raw(env: &Env, dev: &Dev, token: &str, body: String) -> reqwest::Response {
    env.att_req("/pos/activate", dev, token)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn broken_envelopes_on_activate() {
    let env = start().await;
    let dev = pax();
    let (token, keys) = env.to_keys(&dev).await;
    let good = seal_json(&keys.msk, ALL_OK);
    let with = |field: &str, value: Value| {
        let mut v = good.clone();
        v[field] = value;
        v.to_string()
    };
    // A tampered last block or another key still ends in valid padding about once in 256 tries
    // (and the body is then merely not JSON), so those two are made until the MSK cannot open them.
    let cannot_open = |body: &str| {
        Envelope::from_json(body.as_bytes())
            .and_then(|e| open(&keys.msk, &e))
            .is_err()
    };
    let ct = good["ciphertext"].as_str().unwrap().to_string();
    let flipped = (b"0123456789abcdef".iter())
        .map(|&c| format!("{}{}", &ct[..ct.len() - 1], c as char))
        .find(|t| *t != ct && cannot_open(&with("ciphertext", json!(t))))
        .expect("one of 15 last characters breaks the padding");
    let other_key = std::iter::repeat_with(|| {
        let mut v = seal_json(&[0x42; 32], ALL_OK);
        v.as_object_mut().unwrap().remove("key_kcv");
        v.to_string()
    })
    .find(|body| cannot_open(body))
    .unwrap();
    let undecryptable = [
        "".to_string(),
        "not json".to_string(),
        "[]".to_string(),
        json!({"ciphertext": ct}).to_string(),
        with("format", json!("TR31-NOPE")),
        with("ciphertext", json!("XYZ")),
        with("ciphertext", json!(&ct[..ct.len() - 2])),
        with("ciphertext", json!(flipped)),
        with("initialization_vector", json!("0011")),
        with("initialization_vector", json!("not hex")),
        with("mode", json!("ECB")),
        with("content_encoding", json!("gzip")),
        other_key,
    ];
    for body in undecryptable {
        expect_error(
            Ok(activate_raw(&env, &dev, &token, body.clone()).await),
            400,
            "Envelope could not be decrypted",
            None,
        )
        .await;
    }
    // The KCV of another key.
    expect_error(
        Ok(activate_raw(&env, &dev, &token, with("key_kcv", json!("ABCDEF"))).await),
        400,
        "key_kcv does not match MSK",
        None,
    )
    .await;
    let (_, e) = expect_error(
        Ok(activate_raw(
            &env,
            &dev,
            &token,
            seal_json(&[0x42; 32], ALL_OK).to_string(),
        )
        .await),
        400,
        "key_kcv does not match MSK",
        None,
    )
    .await;
    assert_eq!(e["code"], "4000");
    assert_eq!(env.status(&dev).await["device_status"], "claimed");
}

#[tokio::test]
async fn activation_plaintext_and_checks() {
    let env = start().await;
    let dev = pax();
    let (token, keys) = env.to_keys(&dev).await;
    let send = |plain: &str| {
        let body = seal_json(&keys.msk, plain.as_bytes());
        env.att_req("/pos/activate", &dev, &token)
            .json(&body)
            .send()
    };
    for plain in [
        "",
        "not json",
        "[]",
        "null",
        r#"{"emv_ready":true,"keys_installed":true}"#,
        r#"{"emv_ready":"yes","keys_installed":true,"network_ok":true}"#,
        r#"{"emv_ready":1,"keys_installed":true,"network_ok":true}"#,
        r#"{"emv_ready":null,"keys_installed":true,"network_ok":true}"#,
    ] {
        expect_error(send(plain).await, 400, "Invalid request body", None).await;
    }
    expect_error(
        send(r#"{"emv_ready":false,"keys_installed":true,"network_ok":false}"#).await,
        422,
        "Activation checks failed",
        Some(json!({"failed": ["emv_ready", "network_ok"]})),
    )
    .await;
    expect_error(
        send(r#"{"emv_ready":true,"keys_installed":false,"network_ok":true}"#).await,
        422,
        "Activation checks failed",
        Some(json!({"failed": ["keys_installed"]})),
    )
    .await;
    assert_eq!(env.status(&dev).await["device_status"], "claimed");
    // Extra fields are ignored, as a Go server's decoder does.
    ok_json(
        send(r#"{"emv_ready":true,"keys_installed":true,"network_ok":true,"battery":80}"#).await,
    )
    .await;
    assert_eq!(env.status(&dev).await["device_status"], "activated");
}

#[tokio::test]
async fn activate_accepts_every_envelope_shape() {
    let env = start().await;
    let mut rng = rand::rng();
    for (i, name) in ["pax-a920", "verifone-v400c", "sunmi-p2"]
        .into_iter()
        .enumerate()
    {
        let dev = profile_dev(name);
        let (token, keys) = env.to_keys(&dev).await;
        let body = match i {
            // no key_kcv, lowercase hex
            0 => {
                let mut e = serde_json::to_value(seal_single(&keys.msk, ALL_OK, &mut rng)).unwrap();
                e.as_object_mut().unwrap().remove("key_kcv");
                e["ciphertext"] = json!(e["ciphertext"].as_str().unwrap().to_lowercase());
                e
            }
            // single gzip
            1 => serde_json::to_value(seal_gzip_parts(&keys.msk, ALL_OK, 8192, &mut rng)).unwrap(),
            // chunked gzip
            _ => serde_json::to_value(seal_gzip_parts(&keys.msk, ALL_OK, 16, &mut rng)).unwrap(),
        };
        if i == 2 {
            assert_eq!(body["format"], "TR31-DATA-CHUNKED");
            assert_eq!(body["key_kcv"], kcv(&keys.msk));
        }
        let v = ok_json(
            env.att_req("/pos/activate", &dev, &token)
                .json(&body)
                .send()
                .await,
        )
        .await;
        assert_eq!(open_json(&keys.msk, &v)["status"], "activated", "{name}");
    }
}

#[tokio::test]
async fn a_device_reset_mid_flow_is_not_claimed_on_steps_6_to_8() {
    let env = start().await;
    let dev = pax();
    let (token, keys) = env.to_keys(&dev).await;
    ok_json(
        env.req(Method::POST, "/sandbox/devices/POS-8F3A2C91/reset")
            .send()
            .await,
    )
    .await;
    for path in ATTESTED {
        expect_error(
            env.att_req(path, &dev, &token)
                .json(&seal_json(&keys.msk, ALL_OK))
                .send()
                .await,
            409,
            "Device is not claimed",
            Some(json!({"device_status": "inactive"})),
        )
        .await;
    }
    // Claimed again, the old token works again (it proves identity) and new keys are issued.
    env.to_claimed(&dev).await;
    let fresh = unwrap_keys(&dev.zmk, &env.keys(&dev, &token).await);
    assert_ne!(fresh.msk, keys.msk);
}
