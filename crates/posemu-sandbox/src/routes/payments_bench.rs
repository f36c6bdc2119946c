//! Micro benchmark of the stages of `POST /pos/charge`, in process, with the route's own
//! functions (run by `benches/sandbox_charges.sh`):
//!
//! ```text
//! cargo test --release -p posemu-sandbox --lib charge_stages -- --ignored --nocapture
//! ```
//!
//! `POSEMU_BENCH_ITERS` (default 100,000) charges per stage, spread over 40 activated fleet
//! terminals (2,500 charges each per stage, well under the 10,000 kept per terminal, so no
//! stage measures eviction). Prints one `stage NAME MICROSECONDS` line per stage.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};

use rand::Rng;

use super::*;
use crate::extract::Attested;
use crate::routes::attested::{keys, terminal_id};
use crate::{FleetSeed, Sandbox, SandboxConfig};
use posemu_protocol::payments::wire::Charge;
use posemu_protocol::payments::{new_idempotency_key, sign};
use posemu_protocol::provision::fleet_device_id;

const TERMINALS: u32 = 40;
const UA: &str = "Viopay-POS/1.4.2 (Android 12; PAX-A920)";

struct Term {
    tid: String,
    key_id: String,
    mac: Key,
    msk: Key,
    tpk: Key,
}

/// One signed charge request, as the route receives it.
struct Req {
    term: usize,
    headers: HeaderMap,
    body: Bytes,
}

async fn terminals(s: &Arc<Shared>) -> Vec<Term> {
    let mut out = Vec::new();
    for i in 0..TERMINALS {
        let id = fleet_device_id("F0", i);
        let key = s.world.resolve(&id).expect("a fleet device");
        let r = keys(
            State(s.clone()),
            Attested {
                key,
                id: id.clone(),
            },
        )
        .await;
        let (msk, mac, tpk) = s.world.with_device(key, |st| {
            st.status = Some(DeviceStatus::Activated);
            let k = st.keys.as_ref().expect("keys issued");
            (k.msk, k.mac, k.tpk)
        });
        out.push(Term {
            tid: terminal_id(&id),
            key_id: r.0.keys.mac.key_id.clone(),
            mac,
            msk,
            tpk,
        });
    }
    out
}

/// `n` fresh charges (fresh nonce, IV and Idempotency-Key each), round-robin over the terminals;
/// one in four chip with a PIN block, as the load generator sends them.
fn requests(s: &Shared, terms: &[Term], n: usize) -> Vec<Req> {
    let mut rng = rand::rng();
    (0..n)
        .map(|i| {
            let term = i % terms.len();
            let t = &terms[term];
            let chip = i % 4 == 3;
            let pin = chip.then(|| {
                posemu_protocol::payments::pinblock::encipher(
                    &t.tpk,
                    "1234",
                    "4242424242424242",
                    &mut rng,
                )
                .expect("a PIN block")
            });
            let plain = json!({
                "amount": {"value": (1200 + i % 50).to_string(), "currency": "EUR"},
                "entry_mode": if chip { "chip" } else { "contactless" },
                "card": {"pan": "4242424242424242", "exp_month": 12, "exp_year": 2030},
                "pin_block": pin,
                "reference": format!("bench-{i}"),
            });
            let env = seal_single(&t.msk, plain.to_string().as_bytes(), &mut rng);
            let body = serde_json::to_vec(&env).expect("an envelope");
            let ts = rfc3339(s.config.clock.now());
            let nonce: String = (0..24)
                .map(|_| rng.sample(rand::distr::Alphanumeric) as char)
                .collect();
            let text = string_to_sign(&t.tid, &t.key_id, &ts, &nonce, METHOD, "/pos/charge", &body);
            let mut headers = HeaderMap::new();
            let mut put = |name: &str, value: &str| {
                headers.insert(
                    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).expect("name"),
                    HeaderValue::from_str(value).expect("value"),
                );
            };
            put(X_TERMINAL_ID, &t.tid);
            put(USER_AGENT, UA);
            put(X_CLIENT_TYPE, "pos");
            put(X_KEY_ID, &t.key_id);
            put(X_TIMESTAMP, &ts);
            put(X_NONCE, &nonce);
            put(X_SIGNATURE, &sign(&t.mac, &text));
            put(IDEMPOTENCY_KEY, &new_idempotency_key(&mut rng));
            put("content-type", "application/json");
            put("content-length", &body.len().to_string());
            Req {
                term,
                headers,
                body: Bytes::from(body),
            }
        })
        .collect()
}

fn h<'a>(r: &'a Req, name: &str) -> &'a str {
    header(&r.headers, name).expect("header")
}

/// Microseconds per item of `f` over `items`.
fn per_item<T>(items: &[T], mut f: impl FnMut(&T)) -> f64 {
    let t0 = Instant::now();
    for it in items {
        f(it);
    }
    t0.elapsed().as_secs_f64() * 1e6 / items.len().max(1) as f64
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "a benchmark: cargo test --release -p posemu-sandbox --lib charge_stages -- --ignored --nocapture"]
async fn charge_stages() {
    let n: usize = std::env::var("POSEMU_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let sb = Sandbox::start(SandboxConfig {
        fleet: Some(FleetSeed::new("bench-seed")),
        seed: Some(7),
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let s = sb.shared.clone();
    let terms = terminals(&s).await;
    let path = "/pos/charge";

    // the first set goes through the stages one by one
    let reqs = requests(&s, &terms, n);
    let sign_verify = per_item(&reqs, |r| {
        let sig = parse_signature(h(r, X_SIGNATURE)).expect("signature");
        let t = &terms[r.term];
        let text = string_to_sign(
            h(r, X_TERMINAL_ID),
            h(r, X_KEY_ID),
            h(r, X_TIMESTAMP),
            h(r, X_NONCE),
            METHOD,
            path,
            &r.body,
        );
        assert!(verify(&t.mac, &text, &sig));
    });

    // all of 7.2: headers, terminal and key look-up, window, HMAC, nonce memory, terminal config
    let t0 = Instant::now();
    let mut authed = Vec::with_capacity(n);
    for r in &reqs {
        let mut signed = None;
        let body = Body::from(r.body.clone());
        match authenticate(&s, &r.headers, path, body, &mut signed).await {
            Ok(a) => authed.push(a),
            Err(e) => panic!("authenticate: {} {}", e.status, e.message),
        }
    }
    let authenticate_us = t0.elapsed().as_secs_f64() * 1e6 / n as f64;

    let mut valid = Vec::with_capacity(n);
    let decrypt = per_item(&authed, |a| {
        let plain = open_envelope(&a.msk, &a.body).unwrap_or_else(|_| panic!("opens"));
        valid.push(validate::charge_request(&plain, &a.tpk).unwrap_or_else(|_| panic!("valid")));
    });

    let now = s.config.clock.now();
    let mut answers = Vec::with_capacity(n);
    let items: Vec<(usize, &validate::ValidCharge)> = valid.iter().enumerate().collect();
    let charge_us = per_item(&items, |(i, v)| {
        let key = idempotency_key(&reqs[*i].headers).expect("key");
        let a = s
            .payments
            .charge(&authed[*i].terminal, v, key, path, now)
            .unwrap_or_else(|e| panic!("charge: {}", e.message));
        answers.push(a);
    });
    // `Payments::charge` serializes the answer (the ledger keeps it for Idempotency-Key
    // replays): time that part alone, to count it under encrypt
    let sample: Charge = serde_json::from_slice(&answers[0].plaintext).expect("a charge");
    let samples = vec![sample; n.min(20_000)];
    let answer_json = per_item(&samples, |c| {
        std::hint::black_box(serde_json::to_vec(c).expect("serializes"));
    });
    let items: Vec<(usize, &Answer)> = answers.iter().enumerate().collect();
    let seal = per_item(&items, |(i, a)| {
        assert!(a.late_charge_id.is_none());
        let resp = sealed(&s, &authed[*i].msk, &a.plaintext, a.replayed);
        std::hint::black_box(resp);
    });

    // the whole handler, on a second set of fresh requests
    let reqs = requests(&s, &terms, n);
    let uri: Uri = path.parse().expect("uri");
    let t0 = Instant::now();
    for r in &reqs {
        let resp = charge(
            State(s.clone()),
            uri.clone(),
            r.headers.clone(),
            Body::from(r.body.clone()),
        )
        .await;
        assert_eq!(resp.status(), 200);
    }
    let handler = t0.elapsed().as_secs_f64() * 1e6 / n as f64;

    let outcome = (charge_us - answer_json).max(0.0);
    let encrypt = answer_json + seal;
    println!("iterations {n} terminals {TERMINALS}");
    println!("stage sign_verify {sign_verify:.2}");
    println!(
        "stage auth_other {:.2}",
        (authenticate_us - sign_verify).max(0.0)
    );
    println!("stage decrypt {decrypt:.2}");
    println!("stage outcome {outcome:.2}");
    println!("stage encrypt {encrypt:.2}");
    println!("stage handler {handler:.2}");
    println!("detail authenticate {authenticate_us:.2} payments_charge {charge_us:.2} answer_json {answer_json:.2} seal {seal:.2}");
    sb.shutdown().await;
}
