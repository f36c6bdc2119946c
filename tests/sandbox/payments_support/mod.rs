//! A POS terminal that pays over real HTTP, knowing only the spec: it activates through the
//! existing helpers, unwraps its keys with protocol functions, and signs every payment request
//! as spec 7.2 says.
#![allow(dead_code)]

use posemu_protocol::payments::pinblock;
use posemu_protocol::payments::{sign, string_to_sign};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};

use crate::sandbox_common::*;

/// An activated terminal: its device, terminal id, MAC key id and unwrapped keys.
pub struct Term {
    pub dev: Dev,
    pub tid: String,
    pub mac_key_id: String,
    pub keys: Keys,
}

/// The spec's example charge (7.13) with `amount` and `card.pan` changed.
pub fn plain(amount: &str, pan: &str) -> Value {
    json!({"amount": {"value": amount, "currency": "EUR"}, "entry_mode": "swipe",
           "card": {"pan": pan, "exp_month": 12, "exp_year": 2030}})
}

pub const VISA: &str = "4242424242424242";
/// The test card that is always declined (spec 7.7).
pub const DECLINE: &str = "4000000000000002";

/// Bootstrap → claim → attest → keys → config → activate, as a device does.
pub async fn activate(env: &Env, dev: &Dev) -> Term {
    let (token, keys, mac_key_id, tid) = keyed(env, dev).await;
    let v = ok_json(
        env.att_req("/pos/activate", dev, &token)
            .json(&seal_json(&keys.msk, ALL_OK))
            .send()
            .await,
    )
    .await;
    assert_eq!(open_json(&keys.msk, &v)["status"], "activated");
    Term {
        dev: dev.clone(),
        tid,
        mac_key_id,
        keys,
    }
}

/// Claimed and keyed, with its terminal id read from the config, but not activated.
pub async fn keyed(env: &Env, dev: &Dev) -> (String, Keys, String, String) {
    env.to_claimed(dev).await;
    let token = env.attest(dev).await;
    let answer = env.keys(dev, &token).await;
    let keys = unwrap_keys(&dev.zmk, &answer);
    let cfg = ok_json(env.att_req("/pos/config", dev, &token).send().await).await;
    let tid = open_json(&keys.msk, &cfg)["terminal_id"]
        .as_str()
        .expect("terminal_id")
        .to_string();
    (token, keys, answer.keys.mac.key_id, tid)
}

/// The pieces of one signed request, so that tests can break any of them.
#[derive(Clone)]
pub struct Signed {
    pub path: String,
    pub body: Vec<u8>,
    /// Header name → value; `None` leaves the header out.
    pub headers: Vec<(&'static str, Option<String>)>,
}

impl Signed {
    pub fn set(mut self, name: &'static str, value: Option<&str>) -> Self {
        match self.headers.iter_mut().find(|(n, _)| *n == name) {
            Some(h) => h.1 = value.map(str::to_string),
            None => self.headers.push((name, value.map(str::to_string))),
        }
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn request(&self, env: &Env) -> RequestBuilder {
        let mut r = env.req(Method::POST, &self.path).body(self.body.clone());
        for (name, value) in &self.headers {
            if let Some(v) = value {
                r = r.header(*name, v);
            }
        }
        r
    }

    pub async fn send(&self, env: &Env) -> Response {
        self.request(env).send().await.expect("answered")
    }
}

impl Term {
    /// A request to `path` with `body`, signed now with a fresh nonce.
    pub fn signed(&self, env: &Env, path: &str, body: Vec<u8>) -> Signed {
        self.signed_at(path, body, &env.now(), &nonce())
    }

    pub fn signed_at(&self, path: &str, body: Vec<u8>, ts: &str, nonce: &str) -> Signed {
        let text = string_to_sign(&self.tid, &self.mac_key_id, ts, nonce, "POST", path, &body);
        let sig = sign(&self.keys.mac, &text);
        Signed {
            path: path.to_string(),
            body,
            headers: vec![
                ("X-Terminal-Id", Some(self.tid.clone())),
                ("User-Agent", Some(self.dev.ua.clone())),
                ("X-Client-Type", Some("pos".into())),
                ("X-Key-Id", Some(self.mac_key_id.clone())),
                ("X-Timestamp", Some(ts.to_string())),
                ("X-Nonce", Some(nonce.to_string())),
                ("X-Signature", Some(sig)),
                ("Content-Type", Some("application/json".into())),
            ],
        }
    }

    /// The envelope bytes of a plaintext under this terminal's MSK.
    pub fn seal(&self, plain: &Value) -> Vec<u8> {
        serde_json::to_vec(&seal_json(&self.keys.msk, plain.to_string().as_bytes())).unwrap()
    }

    pub fn charge_req(&self, env: &Env, plain: &Value, idem: Option<&str>) -> Signed {
        let s = self.signed(env, "/pos/charge", self.seal(plain));
        match idem {
            Some(k) => s.set("Idempotency-Key", Some(k)),
            None => s,
        }
    }

    pub async fn charge(&self, env: &Env, plain: &Value, idem: Option<&str>) -> Response {
        self.charge_req(env, plain, idem).send(env).await
    }

    /// A charge that must answer 200: the decrypted charge object.
    pub async fn charge_ok(&self, env: &Env, plain: &Value) -> Value {
        self.open_ok(self.charge(env, plain, None).await).await
    }

    pub fn refund_req(&self, env: &Env, charge_id: &str, plain: &Value) -> Signed {
        self.signed(
            env,
            &format!("/pos/charge/{charge_id}/refund"),
            self.seal(plain),
        )
    }

    pub async fn refund(&self, env: &Env, charge_id: &str, value: &str) -> Response {
        self.refund_req(env, charge_id, &json!({"amount": {"value": value}}))
            .send(env)
            .await
    }

    pub async fn cancel(&self, env: &Env, charge_id: &str) -> Response {
        self.signed(env, &format!("/pos/charge/{charge_id}/cancel"), Vec::new())
            .send(env)
            .await
    }

    /// Asserts a 200 envelope under the MSK with `key_kcv`, and opens it.
    pub async fn open_ok(&self, r: Response) -> Value {
        let v = ok_json(Ok(r)).await;
        assert_eq!(
            v["key_kcv"],
            posemu_protocol::crypto::kcv(&self.keys.msk),
            "{v}"
        );
        open_json(&self.keys.msk, &v)
    }

    pub fn pin_block(&self, pin: &str, pan: &str) -> String {
        pinblock::encipher(&self.keys.tpk, pin, pan, &mut rand::rng()).unwrap()
    }
}

/// `GET /sandbox/charges/{id}`.
pub async fn sandbox_charge(env: &Env, id: &str) -> Value {
    ok_json(
        env.req(Method::GET, &format!("/sandbox/charges/{id}"))
            .send()
            .await,
    )
    .await
}

/// `POST /sandbox/settle` with a JSON body (or none).
pub async fn settle(env: &Env, body: Option<Value>) -> reqwest::Result<Response> {
    let r = env.req(Method::POST, "/sandbox/settle");
    match body {
        Some(b) => r.json(&b),
        None => r,
    }
    .send()
    .await
}
