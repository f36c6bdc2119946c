//! Property: random requests (methods, the real routes and some that are not, random headers
//! including huge and binary values, random bodies) sent over real HTTP never crash the
//! sandbox, never get a 5xx (no fault is set), and every error is the envelope of spec 2 with
//! the `X-Trace-Id` of its answer.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Method;
use serde_json::Value;

use crate::sandbox_common::*;
use posemu_protocol::error::is_valid_trace_id;

const PATHS: &[&str] = &[
    "/pos/bootstrap",
    "/pos/pairing-code",
    "/pos/status",
    "/pos/claim",
    "/pos/attest",
    "/pos/keys",
    "/pos/config",
    "/pos/terminal-parameters",
    "/pos/activate",
    "/client/session",
    "/auth/token",
    "/session/initiate",
    "/health/live",
    "/portal",
    "/portal/portal.js",
    "/sandbox/devices",
    "/sandbox/devices/POS-8F3A2C91/claim",
    "/sandbox/devices/POS-8F3A2C91/expire-code",
    "/sandbox/devices/POS-8F3A2C91/reset",
    "/sandbox/devices/%FF%00/reset",
    "/sandbox/faults",
    "/sandbox/portal/terminals",
    "/nope",
    "/pos/status/extra",
];

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

const HEADERS: &[&str] = &[
    "X-Device-Id",
    "User-Agent",
    "X-Client-Type",
    "Authorization",
    "X-Key-Id",
    "X-Timestamp",
    "X-Nonce",
    "X-Signature",
    "Content-Type",
    "Origin",
    "Idempotency-Key",
    "X-Anything",
];

#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
}

/// Bytes a header value may hold on the wire (no CR, LF, NUL or DEL).
fn header_byte() -> impl Strategy<Value = u8> {
    prop_oneof![Just(b'\t'), 0x20u8..0x7F, 0x80u8..=0xFF]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(vec![
            b"POS-8F3A2C91".to_vec(),
            b"Viopay-POS/1.4.2 (Android 12; PAX-A920)".to_vec(),
            b"pos".to_vec(),
            b"application/json".to_vec(),
            b"Attestation att_x".to_vec(),
            b"Bearer a.b.c".to_vec(),
            b"v1=AAAA".to_vec(),
            b"2025-12-13T14:25:30Z".to_vec(),
            b"http://evil.example".to_vec(),
        ]),
        4 => prop::collection::vec(header_byte(), 0..80),
        1 => (header_byte(), 1000usize..60_000).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..512),
        prop::sample::select(vec![
            br#"{"pairing_code":"ABC123"}"#.to_vec(),
            br#"{"client_id":"demo-merchant","client_secret":"demo-secret"}"#.to_vec(),
            br#"{"device_id":"POS-0000AAAA","identity_key_id":"k","identity_secret_hex":"00","zmk_hex":"00"}"#.to_vec(),
            br#"{"rules":[{"route":"*","latency_ms":[5,1]}]}"#.to_vec(),
            br#"{"host":"x"}"#.to_vec(),
            b"null".to_vec(),
            br#"{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#.to_vec(),
        ]),
    ]
}

fn request() -> impl Strategy<Value = Req> {
    (
        prop::sample::select(METHODS),
        prop::sample::select(PATHS),
        prop::option::of("[a-z=&%0-9]{0,20}"),
        prop::collection::vec((prop::sample::select(HEADERS), header_value()), 0..6),
        body(),
    )
        .prop_map(|(method, path, query, headers, body)| {
            // At most one huge value: the head stays below the server's limit, so the answer
            // comes from the router (the 431 of a larger head is tested with raw TCP).
            let mut big = false;
            let headers = headers
                .into_iter()
                .filter(|(_, v)| {
                    let huge = v.len() > 100;
                    let keep = !(huge && big);
                    big |= huge;
                    keep
                })
                .collect();
            let path = match query {
                Some(q) => format!("{path}?{q}"),
                None => path.to_string(),
            };
            Req {
                method,
                path,
                headers,
                body,
            }
        })
}

async fn check(env: &Env, req: Req) -> Result<(), TestCaseError> {
    let method: Method = req.method.parse().unwrap();
    let mut r = env.req(method.clone(), &req.path).body(req.body.clone());
    for (name, value) in &req.headers {
        r = r.header(
            HeaderName::from_static(leak_lower(name)),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    let resp = r
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
    let status = resp.status().as_u16();
    let trace = trace_header(&resp);
    let text = resp.text().await.unwrap_or_default();
    prop_assert!(status < 500, "{status} {text}");
    prop_assert!(is_valid_trace_id(&trace), "X-Trace-Id {trace:?}");
    if status >= 400 && method != Method::HEAD {
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| TestCaseError::fail(format!("{status} not JSON ({e}): {text}")))?;
        let code = format!("{}0{:02}", status / 100, status % 100);
        prop_assert_eq!(&v["error"]["code"], code.as_str(), "{}", text);
        prop_assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        prop_assert_eq!(&v["error"]["trace_id"], trace.as_str());
    }
    Ok(())
}

/// Header names as `&'static str` in lower case (HeaderName::from_static wants that).
fn leak_lower(name: &'static str) -> &'static str {
    HEADERS_LOWER
        .iter()
        .find(|l| l.eq_ignore_ascii_case(name))
        .copied()
        .unwrap_or("x-anything")
}

const HEADERS_LOWER: &[&str] = &[
    "x-device-id",
    "user-agent",
    "x-client-type",
    "authorization",
    "x-key-id",
    "x-timestamp",
    "x-nonce",
    "x-signature",
    "content-type",
    "origin",
    "idempotency-key",
    "x-anything",
];

#[test]
fn random_requests_get_2xx_or_the_envelope_never_5xx() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let env = rt.block_on(start());
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&request(), |req| rt.block_on(check(&env, req)));
    if let Err(e) = result {
        panic!("{e}");
    }
    // Still serving.
    rt.block_on(async { ok_json(env.req(Method::GET, "/health/live").send().await).await });
}
