//! Helpers shared by the portal tests: a device driven by plain HTTP, and a merchant session.
//!
//! The device side here is deliberately minimal (the spec's calls, nothing of the engine's
//! retry logic); `start_device_showing_code` is the one place to swap in the device engine.

#![allow(dead_code)] // each test file uses its own subset

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use posemu_profile::{builtin_named, Profile};
use posemu_protocol::attest::{sign_v1, string_to_sign};
use posemu_protocol::clock::rfc3339;
use posemu_protocol::crypto::Key;
use posemu_protocol::envelope::seal_single;
use posemu_protocol::headers::{
    AUTHORIZATION, USER_AGENT, X_CLIENT_TYPE, X_DEVICE_ID, X_KEY_ID, X_NONCE, X_SIGNATURE,
    X_TIMESTAMP,
};
use posemu_protocol::tr31;
use posemu_protocol::wire::{paths, ActivationChecks, KeysResponse};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Value};

pub fn profile(name: &str) -> Profile {
    builtin_named(name).unwrap_or_else(|| panic!("shipped profile {name} is missing"))
}

/// The default shipped device, POS-8F3A2C91 (PAX-A920).
pub fn default_device() -> Profile {
    profile("pax-a920")
}

fn device_request(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    p: &Profile,
) -> reqwest::RequestBuilder {
    http.request(method, url)
        .header(X_DEVICE_ID, &p.device_id)
        .header(USER_AGENT, p.user_agent())
        .header(X_CLIENT_TYPE, "pos")
}

pub async fn ok_json(resp: reqwest::Response, what: &str) -> Value {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert!(status.is_success(), "{what}: HTTP {status}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"))
}

/// Steps 1 and 2 for `p`: bootstrap, then a pairing code, which is returned.
pub async fn show_code(url: &str, p: &Profile) -> String {
    let http = reqwest::Client::new();
    let post = reqwest::Method::POST;
    let r = device_request(&http, post.clone(), format!("{url}{}", paths::BOOTSTRAP), p)
        .send()
        .await
        .expect("bootstrap request");
    ok_json(r, "bootstrap").await;
    let r = device_request(&http, post, format!("{url}{}", paths::PAIRING_CODE), p)
        .send()
        .await
        .expect("pairing-code request");
    let v = ok_json(r, "pairing-code").await;
    v["pairing_code"]
        .as_str()
        .expect("pairing_code in answer")
        .to_string()
}

/// The default device (POS-8F3A2C91) powered on until it shows a pairing code.
pub async fn start_device_showing_code(url: &str) -> String {
    show_code(url, &default_device()).await
}

fn unwrap_key(kbpk: &Key, key_block_b64: &str, name: &str) -> Key {
    let block = B64
        .decode(key_block_b64)
        .unwrap_or_else(|e| panic!("{name} key block is not base64: {e}"));
    let block = String::from_utf8(block).unwrap_or_else(|_| panic!("{name} block not ASCII"));
    let (_, key) = tr31::unwrap(kbpk, &block).unwrap_or_else(|e| panic!("{name}: {e}"));
    key.try_into()
        .unwrap_or_else(|_| panic!("{name} is not 32 bytes"))
}

/// The keys a device keeps after activation to take payments (spec 7.1): the MSK for the
/// envelopes, and the MAC key with its key id for the POS signature.
pub struct PaymentKeys {
    pub msk: Key,
    pub mac: Key,
    pub mac_key_id: String,
}

/// Steps 5, 6 and 8 for a claimed device: attest, fetch and unwrap its keys, activate.
/// Returns the keys that payments need.
pub async fn finish_activation(url: &str, p: &Profile) -> PaymentKeys {
    let http = reqwest::Client::new();
    let timestamp = rfc3339(chrono::Utc::now());
    let nonce = Alphanumeric.sample_string(&mut rand::rng(), 20);
    let to_sign = string_to_sign(&p.device_id, &p.key_id, &timestamp, &nonce);
    let r = device_request(
        &http,
        reqwest::Method::POST,
        format!("{url}{}", paths::ATTEST),
        p,
    )
    .header(X_KEY_ID, &p.key_id)
    .header(X_TIMESTAMP, &timestamp)
    .header(X_NONCE, &nonce)
    .header(X_SIGNATURE, sign_v1(&p.identity_secret, &to_sign))
    .send()
    .await
    .expect("attest request");
    let token = ok_json(r, "attest").await["attestation_token"]
        .as_str()
        .expect("attestation_token")
        .to_string();
    let auth = format!("Attestation {token}");

    let r = http
        .post(format!("{url}{}", paths::KEYS))
        .header(X_DEVICE_ID, &p.device_id)
        .header(AUTHORIZATION, &auth)
        .send()
        .await
        .expect("keys request");
    let keys: KeysResponse = serde_json::from_value(ok_json(r, "keys").await).expect("key set");
    let tmk = unwrap_key(&p.zmk, &keys.keys.tmk.key_block, "tmk");
    let kek = unwrap_key(&tmk, &keys.keys.kek.key_block, "kek");
    let msk = unwrap_key(&kek, &keys.keys.msk.key_block, "msk");
    let mac = unwrap_key(&kek, &keys.keys.mac.key_block, "mac");

    let plain = serde_json::to_vec(&ActivationChecks::ALL_OK).expect("checks serialize");
    let envelope = seal_single(&msk, &plain, &mut rand::rng());
    let r = http
        .post(format!("{url}{}", paths::ACTIVATE))
        .header(X_DEVICE_ID, &p.device_id)
        .header(AUTHORIZATION, &auth)
        .json(&envelope)
        .send()
        .await
        .expect("activate request");
    ok_json(r, "activate").await;
    PaymentKeys {
        msk,
        mac,
        mac_key_id: keys.keys.mac.key_id.clone(),
    }
}

/// A merchant Bearer token with an initiated session (spec 4.5), as the portal gets one.
pub async fn merchant_token(url: &str, client_id: &str, secret: &str) -> String {
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{url}{}", paths::CLIENT_SESSION))
        .json(&json!({"client_id": client_id, "client_secret": secret}))
        .send()
        .await
        .expect("client session request");
    let token = ok_json(r, "client session").await["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    let r = http
        .post(format!("{url}{}", paths::SESSION_INITIATE))
        .bearer_auth(&token)
        .json(&json!({"host": "merchant.viopay.io"}))
        .send()
        .await
        .expect("session initiate request");
    ok_json(r, "session initiate").await;
    token
}

/// Provisions a device that belongs to another merchant (sandbox helper) and returns it.
pub async fn provision_foreign_device(url: &str, device_id: &str) -> Profile {
    let mut p = default_device();
    p.device_id = device_id.to_string();
    p.model = "PAX-A80".into();
    p.merchant_id = Some("7f1c2d3e-0000-4000-8000-00000000beef".into());
    let r = reqwest::Client::new()
        .post(format!("{url}/sandbox/devices"))
        .json(&json!({
            "device_id": p.device_id,
            "identity_key_id": p.key_id,
            "identity_secret_hex": hex::encode_upper(p.identity_secret),
            "zmk_hex": hex::encode_upper(p.zmk),
            "merchant_id": p.merchant_id,
        }))
        .send()
        .await
        .expect("provision request");
    ok_json(r, "provision").await;
    p
}
