//! Helpers shared by the sandbox integration tests: an in-process sandbox on 127.0.0.1 port 0
//! with a [`ManualClock`], a device that speaks the spec over real HTTP (reqwest directly, with
//! `posemu_protocol` for signing, TR-31 and envelopes), and the error-envelope assertion.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use posemu_protocol::attest::{sign_v1, string_to_sign};
use posemu_protocol::clock::{rfc3339, Clock, ManualClock};
use posemu_protocol::crypto::{kcv, Key};
use posemu_protocol::envelope::{open, seal_single, Envelope};
use posemu_protocol::error::is_valid_trace_id;
use posemu_protocol::tr31::{self, Header};
use posemu_protocol::wire::{KeysResponse, WrappedKey};
use posemu_sandbox::{Sandbox, SandboxConfig};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};

pub const DEMO_UA: &str = "Viopay-POS/1.4.2 (Android 12; PAX-A920)";

/// A running sandbox, its clock and a client.
pub struct Env {
    pub sandbox: Sandbox,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    pub url: String,
}

/// Sandbox with the shipped profiles, the spec's example time and a fixed seed.
pub async fn start() -> Env {
    start_with(|_| {}).await
}

pub async fn start_with(tweak: impl FnOnce(&mut SandboxConfig)) -> Env {
    let clock = ManualClock::at_spec_example();
    let mut cfg = SandboxConfig {
        clock: Arc::new(clock.clone()),
        seed: Some(7),
        ..SandboxConfig::default()
    };
    tweak(&mut cfg);
    let sandbox = Sandbox::start(cfg).await.expect("sandbox starts");
    let url = sandbox.url();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    Env {
        sandbox,
        clock,
        http: client(),
        url,
    }
}

/// A reqwest client that never goes through a proxy (tests talk to 127.0.0.1 only).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// What a device knows about itself.
#[derive(Clone)]
pub struct Dev {
    pub id: String,
    pub key_id: String,
    pub secret: Key,
    pub zmk: Key,
    pub ua: String,
}

/// The default shipped profile, `POS-8F3A2C91`.
pub fn pax() -> Dev {
    profile_dev("pax-a920")
}

pub fn profile_dev(name: &str) -> Dev {
    let p = posemu_profile::builtin_named(name).expect("shipped profile");
    Dev {
        ua: p.user_agent(),
        id: p.device_id,
        key_id: p.key_id,
        secret: p.identity_secret,
        zmk: p.zmk,
    }
}

/// Unique alphanumeric nonces (16 characters).
pub fn nonce() -> String {
    static N: AtomicU64 = AtomicU64::new(1);
    format!("nonce{:011}", N.fetch_add(1, Ordering::Relaxed))
}

/// The four signature headers of a valid attestation at `ts` with `nonce`.
pub fn signature_headers(dev: &Dev, ts: &str, nonce: &str) -> Vec<(&'static str, String)> {
    let sig = sign_v1(
        &dev.secret,
        &string_to_sign(&dev.id, &dev.key_id, ts, nonce),
    );
    vec![
        ("X-Key-Id", dev.key_id.clone()),
        ("X-Timestamp", ts.to_string()),
        ("X-Nonce", nonce.to_string()),
        ("X-Signature", sig),
    ]
}

/// The six keys of a key set, unwrapped and checked.
pub struct Keys {
    pub tmk: Key,
    pub kek: Key,
    pub msk: Key,
    pub tpk: Key,
    pub tdk: Key,
    pub mac: Key,
}

fn unwrap_one(kbpk: &Key, w: &WrappedKey, header: Header, under: &str, usage: &str) -> Key {
    use base64::Engine;
    assert_eq!(w.wrapped_under, under, "{}", w.key_id);
    assert_eq!(w.usage, usage, "{}", w.key_id);
    let text = base64::engine::general_purpose::STANDARD
        .decode(&w.key_block)
        .expect("key_block is base64");
    let text = String::from_utf8(text).expect("key block is ASCII");
    assert_eq!(text.len(), 144, "a 32-byte key's block is 144 characters");
    assert!(text.starts_with("D0144"), "{text}");
    let (h, key) = tr31::unwrap(kbpk, &text).expect("key block unwraps and its MAC verifies");
    assert_eq!(h, header, "{}", w.key_id);
    let key: Key = key.try_into().expect("32-byte key");
    assert_eq!(kcv(&key), w.kcv, "KCV of {}", w.key_id);
    assert!(
        w.kcv.len() == 6
            && w.kcv
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()),
        "{}",
        w.kcv
    );
    key
}

/// Unwraps ZMK → TMK → KEK → MSK/TPK/TDK/MAC, checking headers, usages and every KCV.
pub fn unwrap_keys(zmk: &Key, r: &KeysResponse) -> Keys {
    let k = &r.keys;
    let tmk = unwrap_one(zmk, &k.tmk, Header::KEY_ENCRYPTION, "zmk", "key-encryption");
    let kek = unwrap_one(
        &tmk,
        &k.kek,
        Header::KEY_ENCRYPTION,
        "tmk",
        "key-encryption",
    );
    Keys {
        msk: unwrap_one(
            &kek,
            &k.msk,
            Header::DATA_ENCRYPTION,
            "kek",
            "data-encryption",
        ),
        tpk: unwrap_one(
            &kek,
            &k.tpk,
            Header::PIN_ENCRYPTION,
            "kek",
            "pin-encryption",
        ),
        tdk: unwrap_one(
            &kek,
            &k.tdk,
            Header::DATA_ENCRYPTION,
            "kek",
            "data-encryption",
        ),
        mac: unwrap_one(&kek, &k.mac, Header::MAC, "kek", "mac"),
        tmk,
        kek,
    }
}

/// Decrypts an envelope answer into JSON.
pub fn open_json(msk: &Key, body: &Value) -> Value {
    let env = Envelope::from_value(body.clone()).expect("an envelope");
    let plain = open(msk, &env).expect("envelope opens under the MSK");
    serde_json::from_slice(&plain).expect("plaintext is JSON")
}

/// A `TR31-DATA` envelope of `plain` under `msk`, as JSON.
pub fn seal_json(msk: &Key, plain: &[u8]) -> Value {
    let mut rng = rand::rng();
    serde_json::to_value(seal_single(msk, plain, &mut rng)).expect("serializes")
}

pub const ALL_OK: &[u8] = br#"{"emv_ready":true,"keys_installed":true,"network_ok":true}"#;

impl Env {
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url))
    }

    /// A request with the three device headers of spec 3.1.
    pub fn dev_req(&self, method: Method, path: &str, dev: &Dev) -> RequestBuilder {
        self.req(method, path)
            .header("X-Device-Id", &dev.id)
            .header("User-Agent", &dev.ua)
            .header("X-Client-Type", "pos")
    }

    pub fn now(&self) -> String {
        rfc3339(self.clock.now())
    }

    pub fn advance_secs(&self, secs: u64) {
        self.clock.advance(std::time::Duration::from_secs(secs));
    }

    pub async fn bootstrap(&self, dev: &Dev) -> Value {
        ok_json(
            self.dev_req(Method::POST, "/pos/bootstrap", dev)
                .send()
                .await,
        )
        .await
    }

    pub async fn pairing_code(&self, dev: &Dev) -> String {
        let v = ok_json(
            self.dev_req(Method::POST, "/pos/pairing-code", dev)
                .send()
                .await,
        )
        .await;
        v["pairing_code"]
            .as_str()
            .expect("pairing_code")
            .to_string()
    }

    pub async fn status(&self, dev: &Dev) -> Value {
        ok_json(self.dev_req(Method::GET, "/pos/status", dev).send().await).await
    }

    /// `/client/session` with the demo merchant, then `/session/initiate`: a claim-ready token.
    pub async fn merchant_token(&self) -> String {
        let token = self.merchant_session().await;
        let v = ok_json(
            self.req(Method::POST, "/session/initiate")
                .bearer_auth(&token)
                .json(&json!({"host": "merchant.viopay.io"}))
                .send()
                .await,
        )
        .await;
        assert_eq!(v["status"], "ok");
        token
    }

    /// A merchant JWT that has not initiated a session yet.
    pub async fn merchant_session(&self) -> String {
        let v = ok_json(
            self.req(Method::POST, "/client/session")
                .json(&json!({"client_id": "demo-merchant", "client_secret": "demo-secret"}))
                .send()
                .await,
        )
        .await;
        v["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub async fn claim_with(&self, token: &str, body: Value) -> Response {
        self.req(Method::POST, "/pos/claim")
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("claim answered")
    }

    pub fn attest_req(&self, dev: &Dev, ts: &str, nonce: &str) -> RequestBuilder {
        let mut r = self.dev_req(Method::POST, "/pos/attest", dev);
        for (k, v) in signature_headers(dev, ts, nonce) {
            r = r.header(k, v);
        }
        r
    }

    /// A successful attestation: the token.
    pub async fn attest(&self, dev: &Dev) -> String {
        let v = ok_json(self.attest_req(dev, &self.now(), &nonce()).send().await).await;
        assert_eq!(v["status"], "attested");
        v["attestation_token"].as_str().expect("token").to_string()
    }

    /// A request authorised by an attestation token (spec 3.2).
    pub fn att_req(&self, path: &str, dev: &Dev, token: &str) -> RequestBuilder {
        self.dev_req(Method::POST, path, dev)
            .header("Authorization", format!("Attestation {token}"))
    }

    pub async fn keys(&self, dev: &Dev, token: &str) -> KeysResponse {
        let v = ok_json(self.att_req("/pos/keys", dev, token).send().await).await;
        serde_json::from_value(v).expect("keys answer has the documented shape")
    }

    /// Bootstrap, code, claim through the merchant API: the device is `claimed`.
    pub async fn to_claimed(&self, dev: &Dev) {
        self.bootstrap(dev).await;
        let code = self.pairing_code(dev).await;
        let token = self.merchant_token().await;
        let r = self.claim_with(&token, json!({"pairing_code": code})).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    }

    /// Claimed, attested and keyed: the attestation token and the unwrapped keys.
    pub async fn to_keys(&self, dev: &Dev) -> (String, Keys) {
        self.to_claimed(dev).await;
        let token = self.attest(dev).await;
        let keys = self.keys(dev, &token).await;
        (token, unwrap_keys(&dev.zmk, &keys))
    }
}

/// Asserts a 200 with JSON, a valid `X-Trace-Id`, and returns the body.
pub async fn ok_json(r: reqwest::Result<Response>) -> Value {
    let r = r.expect("request answered");
    let status = r.status();
    let trace = trace_header(&r);
    let text = r.text().await.expect("body");
    assert_eq!(status, 200, "{text}");
    assert!(is_valid_trace_id(&trace), "X-Trace-Id {trace:?}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub fn trace_header(r: &Response) -> String {
    r.headers()
        .get("x-trace-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Asserts the error envelope of spec 2 exactly: status, `code` by the rule, `message`,
/// `details` (`None` = absent), a 32-hex `trace_id` equal to the `X-Trace-Id` header.
/// Returns the response headers and the error object.
pub async fn expect_error(
    r: reqwest::Result<Response>,
    status: u16,
    message: &str,
    details: Option<Value>,
) -> (reqwest::header::HeaderMap, Value) {
    let r = r.expect("request answered");
    let got = r.status().as_u16();
    let headers = r.headers().clone();
    let trace = trace_header(&r);
    let text = r.text().await.expect("body");
    assert_eq!(got, status, "status; body {text}");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    let e = v["error"].clone();
    let code = format!("{}0{:02}", status / 100, status % 100);
    assert_eq!(e["code"], json!(code), "{text}");
    assert_eq!(e["message"], json!(message), "{text}");
    assert_eq!(e.get("details").cloned(), details, "details; body {text}");
    let tid = e["trace_id"].as_str().unwrap_or("");
    assert!(is_valid_trace_id(tid), "trace_id {tid:?}");
    assert_eq!(tid, trace, "trace_id matches X-Trace-Id");
    let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["error"], "only `error` at the top: {text}");
    (headers, e)
}
