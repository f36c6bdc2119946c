//! The whole activation flow against an in-process sandbox over real HTTP (spec sections 1, 4, 5).

use crate::sandbox_common::*;
use base64::Engine;
use posemu_protocol::clock::Clock;
use posemu_protocol::crypto::{cbc_decrypt_pkcs7, hmac_sha256, kcv};
use posemu_sandbox::FleetSeed;
use reqwest::Method;
use serde_json::{json, Value};

const ALPHABET: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

fn is_upper_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

fn assert_single_envelope(v: &Value, msk_kcv: &str) {
    assert_eq!(v["format"], "TR31-DATA", "{v}");
    assert_eq!(v["mode"], "CBC");
    assert_eq!(v["key_kcv"], msk_kcv);
    let iv = v["initialization_vector"].as_str().unwrap();
    assert!(iv.len() == 32 && is_upper_hex(iv), "{iv}");
    assert!(is_upper_hex(v["ciphertext"].as_str().unwrap()));
}

#[tokio::test]
async fn a_device_walks_from_bootstrap_to_activated() {
    let env = start().await;
    let dev = pax();

    // 1 Bootstrap
    let b = env.bootstrap(&dev).await;
    assert_eq!(
        b,
        json!({"status": "ok", "server_time": "2025-12-13T14:25:30Z", "min_supported_version": "1.3.5"})
    );
    let s = env.status(&dev).await;
    assert_eq!(
        s,
        json!({"device_status": "inactive", "is_claimed": false, "pairing_code_status": "none"})
    );

    // 2 Pairing code, 3 status pending
    let v = ok_json(
        env.dev_req(Method::POST, "/pos/pairing-code", &dev)
            .send()
            .await,
    )
    .await;
    assert_eq!(v["expires_in_sec"], 300);
    let code = v["pairing_code"].as_str().unwrap().to_string();
    assert!(
        code.len() == 6 && code.chars().all(|c| ALPHABET.contains(c)),
        "{code}"
    );
    let s = env.status(&dev).await;
    assert_eq!(
        s,
        json!({"device_status": "inactive", "is_claimed": false, "pairing_code_status": "pending"})
    );

    // 4 Claim: merchant JWT, session, then the code as a person might type it
    let v = ok_json(
        env.req(Method::POST, "/client/session")
            .json(&json!({"client_id": "demo-merchant", "client_secret": "demo-secret"}))
            .send()
            .await,
    )
    .await;
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 300);
    let jwt = v["access_token"].as_str().unwrap().to_string();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(head["alg"], "HS256");
    let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["sub"], "demo-merchant");
    assert_eq!(
        claims["merchant_id"],
        "550e8400-e29b-41d4-a716-446655440000"
    );
    let now = env.clock.now().timestamp();
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["exp"], now + 300);
    assert!(claims["iss"].is_string());
    let v = ok_json(
        env.req(Method::POST, "/session/initiate")
            .bearer_auth(&jwt)
            .json(&json!({"host": "merchant.viopay.io"}))
            .send()
            .await,
    )
    .await;
    assert_eq!(
        v,
        json!({"status": "ok", "merchant_id": "550e8400-e29b-41d4-a716-446655440000", "merchant_name": "Demo Merchant"})
    );
    let typed = format!(
        " {}-{} ",
        code[..3].to_lowercase(),
        code[3..].to_lowercase()
    );
    let r = env
        .claim_with(&jwt, json!({"pairing_code": typed, "device_id": dev.id}))
        .await;
    assert_eq!(
        ok_json(Ok(r)).await,
        json!({"status": "claimed", "device_id": "POS-8F3A2C91"})
    );
    let s = env.status(&dev).await;
    assert_eq!(
        s,
        json!({"device_status": "claimed", "is_claimed": true, "pairing_code_status": "used"})
    );

    // 5 Attest
    let v = ok_json(env.attest_req(&dev, &env.now(), &nonce()).send().await).await;
    assert_eq!(v["status"], "attested");
    assert_eq!(v["expires_in_sec"], 300);
    let token = v["attestation_token"].as_str().unwrap().to_string();
    assert!(
        token.len() == 28
            && token.starts_with("att_")
            && token[4..].bytes().all(|b| b.is_ascii_alphanumeric()),
        "{token}"
    );

    // 6 Keys: every block unwraps top-down and every KCV checks (in unwrap_keys)
    let raw = ok_json(env.att_req("/pos/keys", &dev, &token).send().await).await;
    assert_eq!(
        raw["transport"],
        json!({"format": "TR31", "version": "D", "encryption": "AES-256", "wrapped_under": "kek"})
    );
    assert!(raw["key_set"]["key_set_id"]
        .as_str()
        .unwrap()
        .starts_with("ks-"));
    assert_eq!(raw["key_set"]["issued_at"], "2025-12-13T14:25:30Z");
    assert_eq!(raw["key_set"]["expires_at"], "2026-12-13T14:25:30Z");
    for (name, prefix) in [
        ("tmk", "tmk-"),
        ("kek", "kek-"),
        ("msk", "msk-"),
        ("tpk", "tpk-"),
        ("tdk", "tdk-"),
        ("mac", "hmac-key-"),
    ] {
        let id = raw["keys"][name]["key_id"].as_str().unwrap();
        assert!(id.starts_with(prefix), "{name}: {id}");
    }
    let keys_answer: posemu_protocol::wire::KeysResponse =
        serde_json::from_value(raw.clone()).unwrap();
    let keys = unwrap_keys(&dev.zmk, &keys_answer);
    let all = [keys.tmk, keys.kek, keys.msk, keys.tpk, keys.tdk, keys.mac];
    for (i, a) in all.iter().enumerate() {
        assert!(all[i + 1..].iter().all(|b| b != a), "keys are distinct");
    }
    // The same key set again until it expires.
    let again = ok_json(env.att_req("/pos/keys", &dev, &token).send().await).await;
    assert_eq!(again, raw);

    // 7a Config
    let msk_kcv = kcv(&keys.msk);
    let v = ok_json(env.att_req("/pos/config", &dev, &token).send().await).await;
    assert_single_envelope(&v, &msk_kcv);
    assert!(v.get("content_encoding").is_none());
    let config = open_json(&keys.msk, &v);
    let tid = config["terminal_id"].as_str().unwrap().to_string();
    assert!(
        tid.len() == 10 && tid.starts_with("TID-") && tid[4..].bytes().all(|b| b.is_ascii_digit()),
        "{tid}"
    );
    assert_eq!(config["device_id"], "POS-8F3A2C91");
    assert_eq!(config["merchant"]["name"], "Demo Merchant");
    assert_eq!(
        config["merchant"]["merchant_id"],
        "550e8400-e29b-41d4-a716-446655440000"
    );
    for key in ["tip_info", "tax_info", "surcharge_info"] {
        assert!(config["merchant"][key].is_object(), "{key}");
    }
    for key in ["location", "emv", "security", "branding", "intervals"] {
        assert!(config[key].is_object(), "{key}");
    }

    // 7b Terminal parameters: chunked, each part at most 8192 gzip bytes, ~200 KB of JSON
    let v = ok_json(
        env.att_req("/pos/terminal-parameters", &dev, &token)
            .send()
            .await,
    )
    .await;
    assert_eq!(v["format"], "TR31-DATA-CHUNKED");
    assert_eq!(v["content_encoding"], "gzip");
    assert_eq!(v["mode"], "CBC");
    assert_eq!(v["key_kcv"], msk_kcv.as_str());
    let chunks = v["chunks"].as_array().unwrap();
    assert!(chunks.len() >= 2, "{} chunks", chunks.len());
    let mut gz = 0;
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c["mode"], "CBC");
        let ct = hex::decode(c["ciphertext"].as_str().unwrap()).unwrap();
        let iv = hex::decode(c["initialization_vector"].as_str().unwrap()).unwrap();
        let part = cbc_decrypt_pkcs7(&keys.msk, &iv, &ct).unwrap();
        if i + 1 < chunks.len() {
            assert_eq!(part.len(), 8192, "chunk {i}");
        } else {
            assert!(part.len() <= 8192);
        }
        gz += part.len();
    }
    assert!((10_000..30_000).contains(&gz), "{gz} gzip bytes");
    let params = open_json(&keys.msk, &v);
    let raw_len = params.to_string().len();
    assert!((150_000..300_000).contains(&raw_len), "{raw_len} bytes");
    assert_eq!(params["device_id"], "POS-8F3A2C91");
    let v2 = ok_json(
        env.att_req("/pos/terminal-parameters", &dev, &token)
            .send()
            .await,
    )
    .await;
    assert_ne!(
        v2["chunks"][0]["initialization_vector"],
        v["chunks"][0]["initialization_vector"]
    );
    assert_eq!(
        open_json(&keys.msk, &v2),
        params,
        "deterministic per device"
    );

    // 8 Activate
    env.advance_secs(5);
    let body = seal_json(&keys.msk, ALL_OK);
    let v = ok_json(
        env.att_req("/pos/activate", &dev, &token)
            .json(&body)
            .send()
            .await,
    )
    .await;
    assert_single_envelope(&v, &msk_kcv);
    let result = open_json(&keys.msk, &v);
    assert_eq!(
        result,
        json!({"status": "activated", "device_id": "POS-8F3A2C91", "terminal_id": tid,
               "activated_at": "2025-12-13T14:25:35Z"})
    );
    let s = env.status(&dev).await;
    assert_eq!(
        s,
        json!({"device_status": "activated", "is_claimed": true, "pairing_code_status": "used"})
    );

    // Activating again answers the original activation time.
    env.advance_secs(60);
    let v = ok_json(
        env.att_req("/pos/activate", &dev, &token)
            .json(&seal_json(&keys.msk, ALL_OK))
            .send()
            .await,
    )
    .await;
    assert_eq!(
        open_json(&keys.msk, &v)["activated_at"],
        "2025-12-13T14:25:35Z"
    );

    // An activated device may attest again and gets the same key set.
    let token2 = env.attest(&dev).await;
    assert_ne!(token2, token);
    let k2 = ok_json(env.att_req("/pos/keys", &dev, &token2).send().await).await;
    assert_eq!(k2, raw);
}

#[tokio::test]
async fn a_key_set_is_replaced_once_it_expires() {
    let env = start().await;
    let dev = pax();
    let (_, keys) = env.to_keys(&dev).await;
    env.advance_secs(366 * 24 * 3600);
    let token = env.attest(&dev).await;
    let fresh = unwrap_keys(&dev.zmk, &env.keys(&dev, &token).await);
    assert_ne!(fresh.msk, keys.msk);
}

#[tokio::test]
async fn legacy_auth_token_alias_health_and_portal_link() {
    let env = start().await;
    let v = ok_json(
        env.req(Method::POST, "/auth/token")
            .json(&json!({"client_id": "demo-merchant", "client_secret": "demo-secret"}))
            .send()
            .await,
    )
    .await;
    assert_eq!(v["token_type"], "Bearer");
    let v = ok_json(env.req(Method::GET, "/health/live").send().await).await;
    assert_eq!(v, json!({"status": "ok"}));
    assert_eq!(
        env.sandbox.portal_url(Some("K7M3NP")),
        format!("{}/portal?code=K7M3NP", env.url)
    );
}

#[tokio::test]
async fn every_shipped_profile_activates() {
    let env = start().await;
    for name in ["pax-a920", "verifone-v400c", "sunmi-p2"] {
        let dev = profile_dev(name);
        let (token, keys) = env.to_keys(&dev).await;
        let v = ok_json(
            env.att_req("/pos/activate", &dev, &token)
                .json(&seal_json(&keys.msk, ALL_OK))
                .send()
                .await,
        )
        .await;
        assert_eq!(
            open_json(&keys.msk, &v)["device_id"],
            json!(dev.id),
            "{name}"
        );
    }
}

/// A client that knows only the spec and the seed (section 5): it derives the device's secrets.
fn derived(seed: &str, id: &str) -> Dev {
    Dev {
        id: id.into(),
        key_id: "device-id-key-2025-01".into(),
        secret: hmac_sha256(seed.as_bytes(), format!("identity|{id}").as_bytes()),
        zmk: hmac_sha256(seed.as_bytes(), format!("zmk|{id}").as_bytes()),
        ua: "Viopay-POS/1.5.0 (Android 13; SUNMI-P2)".into(),
    }
}

#[tokio::test]
async fn fleet_devices_derive_from_the_seed() {
    let d = derived("posemu-demo", "POS-F0000001");
    assert_eq!(
        hex::encode_upper(d.secret),
        "F427B06FC1531115C0A8E566549C974C544ECC80777EE6C22C29782089C64C5B"
    );
    assert_eq!(
        hex::encode_upper(d.zmk),
        "9ED6325064ECA0F2F6B4DE9546F919933FF21720CC98C5C83FA177BD3B2DD48E"
    );

    let env = start_with(|c| c.fleet = Some(FleetSeed::new("posemu-demo"))).await;
    assert_eq!(
        env.sandbox.touched_devices(),
        0,
        "untouched devices cost nothing"
    );
    for id in ["POS-F0000001", "POS-F0ABCDEF", "POS-F0FFFFFF"] {
        let dev = derived("posemu-demo", id);
        let (token, keys) = env.to_keys(&dev).await;
        let v = ok_json(
            env.att_req("/pos/activate", &dev, &token)
                .json(&seal_json(&keys.msk, ALL_OK))
                .send()
                .await,
        )
        .await;
        assert_eq!(open_json(&keys.msk, &v)["status"], "activated");
    }
    assert_eq!(env.sandbox.touched_devices(), 3);

    // Outside the prefix: not provisioned.
    let other = derived("posemu-demo", "POS-F1000001");
    expect_error(
        env.dev_req(Method::POST, "/pos/bootstrap", &other)
            .send()
            .await,
        404,
        "Device not found",
        Some(json!({"device_id": "POS-F1000001"})),
    )
    .await;
    // A wrong seed signs wrongly.
    let wrong = derived("another-seed", "POS-F0000002");
    env.to_claimed(&wrong).await;
    expect_error(
        env.attest_req(&wrong, &env.now(), &nonce()).send().await,
        401,
        "Invalid signature",
        None,
    )
    .await;
}

#[tokio::test]
async fn a_fleet_prefix_other_than_f0() {
    let env = start_with(|c| {
        c.fleet = Some(FleetSeed {
            seed: "s".into(),
            prefix: "A7".into(),
        })
    })
    .await;
    env.to_keys(&derived("s", "POS-A7000042")).await;
    expect_error(
        env.dev_req(Method::GET, "/pos/status", &derived("s", "POS-F0000042"))
            .send()
            .await,
        404,
        "Device not found",
        Some(json!({"device_id": "POS-F0000042"})),
    )
    .await;
}

/// `Sandbox::restore`: a device the sandbox has not seen yet becomes activated (it then attests
/// and gets keys as an activated device does) or claimed; a device it has seen, one it does not
/// know, or the status `inactive` are left alone.
#[tokio::test]
async fn a_device_restored_as_activated_or_claimed_attests_and_gets_keys() {
    use posemu_protocol::wire::DeviceStatus;
    let env = start().await;
    let dev = pax();
    let at = env.clock.now().timestamp_millis() - 3_600_000;
    assert!(env.sandbox.restore(&dev.id, DeviceStatus::Activated, at));
    assert!(
        !env.sandbox.restore(&dev.id, DeviceStatus::Activated, at),
        "only once"
    );
    assert!(!env
        .sandbox
        .restore("POS-0000DEAD", DeviceStatus::Activated, at));
    let status = env.status(&dev).await;
    assert_eq!(status["device_status"], "activated", "{status}");
    let token = env.attest(&dev).await;
    let keys = env.keys(&dev, &token).await;
    unwrap_keys(&dev.zmk, &keys);

    let claimed = profile_dev("sunmi-p2");
    assert!(!env.sandbox.restore(&claimed.id, DeviceStatus::Inactive, at));
    assert!(env.sandbox.restore(&claimed.id, DeviceStatus::Claimed, at));
    assert_eq!(env.status(&claimed).await["device_status"], "claimed");
    env.attest(&claimed).await;

    // a device already paired here is not touched
    let other = profile_dev("verifone-v400c");
    env.to_claimed(&other).await;
    assert!(!env.sandbox.restore(&other.id, DeviceStatus::Activated, at));
    assert_eq!(env.status(&other).await["device_status"], "claimed");
}
