//! Malformed requests never get a 5xx nor a plain-text error (spec 2): every route, with odd
//! bodies, odd headers and an oversized body, answers either 2xx or the error envelope.

use crate::sandbox_common::*;
use posemu_protocol::error::is_valid_trace_id;
use reqwest::Method;
use serde_json::Value;

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/pos/bootstrap"),
    ("POST", "/pos/pairing-code"),
    ("GET", "/pos/status"),
    ("POST", "/pos/claim"),
    ("POST", "/pos/attest"),
    ("POST", "/pos/keys"),
    ("POST", "/pos/config"),
    ("POST", "/pos/terminal-parameters"),
    ("POST", "/pos/activate"),
    ("POST", "/client/session"),
    ("POST", "/auth/token"),
    ("POST", "/session/initiate"),
    ("GET", "/health/live"),
    ("GET", "/sandbox/devices"),
    ("POST", "/sandbox/devices"),
    ("POST", "/sandbox/devices/POS-8F3A2C91/claim"),
    ("POST", "/sandbox/devices/not-an-id/expire-code"),
    ("POST", "/sandbox/devices/POS-8F3A2C91/reset"),
    ("PUT", "/sandbox/faults"),
];

/// Asserts a non-5xx answer; an error must be the envelope with matching trace ids.
async fn answered_well(what: &str, r: reqwest::Response) {
    let status = r.status().as_u16();
    let trace = trace_header(&r);
    let text = r.text().await.unwrap();
    assert!(status < 500, "{what}: {status} {text}");
    assert!(is_valid_trace_id(&trace), "{what}: X-Trace-Id {trace:?}");
    if status >= 400 {
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{what}: {status} not JSON ({e}): {text}"));
        let code = format!("{}0{:02}", status / 100, status % 100);
        assert_eq!(v["error"]["code"], code.as_str(), "{what}: {text}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert_eq!(v["error"]["trace_id"], trace.as_str(), "{what}");
    }
}

#[tokio::test]
async fn odd_bodies_and_headers_on_every_route() {
    let env = start().await;
    let dev = pax();
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"null".to_vec(),
        b"[1,2,3]".to_vec(),
        b"\"string\"".to_vec(),
        br#"{"pairing_code": {"nested": true}, "format": 7}"#.to_vec(),
        vec![0xFF, 0xFE, 0x00, 0x80],
        "{\"a\": \"\u{1F600}\"}".as_bytes().to_vec(),
    ];
    for (method, path) in ROUTES {
        let m: Method = method.parse().unwrap();
        for body in &bodies {
            for content_type in ["application/json", "text/plain"] {
                let r = env
                    .dev_req(m.clone(), path, &dev)
                    .header("Content-Type", content_type)
                    .header("Authorization", "Attestation att_nope")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                answered_well(&format!("{method} {path} {body:?}"), r).await;
            }
        }
        // Headers that are not UTF-8, or absurd.
        let r = env
            .req(m.clone(), path)
            .header(
                "X-Device-Id",
                reqwest::header::HeaderValue::from_bytes(b"POS-\xFF\xFE").unwrap(),
            )
            .header("User-Agent", "Viopay-POS/".repeat(500))
            .header("X-Client-Type", "pos")
            .header(
                "Authorization",
                reqwest::header::HeaderValue::from_bytes(b"Attestation \xC3\x28").unwrap(),
            )
            .header("X-Timestamp", "9999-99-99T99:99:99Z")
            .header("X-Signature", "v1=")
            .send()
            .await
            .unwrap();
        answered_well(&format!("{method} {path} odd headers"), r).await;
        // A query string is ignored or refused, never a crash.
        let r = env
            .dev_req(m.clone(), &format!("{path}?limit=-1&x=%ZZ"), &dev)
            .send()
            .await
            .unwrap();
        answered_well(&format!("{method} {path} odd query"), r).await;
    }
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_the_envelope() {
    let env = start().await;
    let big = vec![b'a'; 3 * 1024 * 1024];
    for path in [
        "/pos/claim",
        "/pos/activate",
        "/sandbox/devices",
        "/client/session",
    ] {
        let r = env
            .dev_req(Method::POST, path, &pax())
            .header("Content-Type", "application/json")
            .header("Authorization", "Bearer x")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        answered_well(path, r).await;
        assert!(
            status == 413 || status == 401 || status == 400,
            "{path}: {status}"
        );
    }
    // The limit itself: body too large for a route that reads it, before auth.
    let (_, e) = expect_error(
        env.req(Method::POST, "/client/session")
            .header("Content-Type", "application/json")
            .body(big)
            .send()
            .await,
        413,
        "Request body too large",
        None,
    )
    .await;
    assert_eq!(e["code"], "4013");
}
