//! The sandbox against hostile input: maps that clients could grow, merchant indexes, replay
//! after a reset, merchant sessions (real HTTP on 127.0.0.1).

use crate::sandbox_common::*;
use posemu_sandbox::{FaultConfig, FaultRule};
use reqwest::Method;
use serde_json::{json, Value};

/// Runs `n` requests built by `make`, `width` at a time; returns their statuses.
async fn many(n: usize, width: usize, make: impl Fn(usize) -> reqwest::RequestBuilder) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..n.min(i + width)).map(|j| make(j).send()).collect();
        for r in futures_util::future::join_all(batch).await {
            out.push(r.expect("answered").status().as_u16());
        }
        i += width;
    }
    out
}

#[tokio::test]
async fn invalid_device_ids_are_never_remembered_by_the_poll_interval_fault() {
    let env = start_with(|c| {
        c.faults = FaultConfig {
            seed: None,
            rules: vec![FaultRule {
                route: "/pos/status".into(),
                min_poll_interval_ms: Some(3000),
                ..Default::default()
            }],
        }
    })
    .await;
    let filler = "A".repeat(100 * 1024);
    let statuses = many(1000, 16, |i| {
        env.req(Method::GET, "/pos/status")
            .header("X-Device-Id", format!("POS-{i:08X}{filler}"))
            .header("User-Agent", DEMO_UA)
            .header("X-Client-Type", "pos")
    })
    .await;
    assert!(statuses.iter().all(|&s| s == 400), "{statuses:?}");
    assert_eq!(env.sandbox.map_sizes().poll_memory, 0);
    // A real device is remembered (and throttled) as before.
    env.status(&pax()).await;
    assert_eq!(env.sandbox.map_sizes().poll_memory, 1);
    let r = env.dev_req(Method::GET, "/pos/status", &pax()).send().await;
    expect_error(
        r,
        429,
        "Polling too frequently",
        Some(json!({"min_poll_interval_ms": 3000})),
    )
    .await;
}

fn provision_body(id: &str, merchant: &str) -> Value {
    json!({
        "device_id": id,
        "identity_key_id": "k-1",
        "identity_secret_hex": "ab".repeat(32),
        "zmk_hex": "cd".repeat(32),
        "merchant_id": merchant,
    })
}

#[tokio::test]
async fn duplicate_provisioning_creates_no_merchant_and_indexes_never_alias() {
    let env = start().await;
    let merchants = env.sandbox.map_sizes().merchants;
    let r = env
        .req(Method::POST, "/sandbox/devices")
        .json(&provision_body("POS-0000D001", "first"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // 65,536 duplicates, each naming a new merchant: all 409, no merchant made.
    let statuses = many(65_536, 64, |i| {
        env.req(Method::POST, "/sandbox/devices")
            .json(&provision_body("POS-0000D001", &format!("dup-{i}")))
    })
    .await;
    assert!(statuses.iter().all(|&s| s == 409));
    assert_eq!(env.sandbox.map_sizes().merchants, merchants + 1);
    // A new device with a new merchant is that merchant's, not the demo merchant's.
    let r = env
        .req(Method::POST, "/sandbox/devices")
        .json(&provision_body("POS-0000D002", "second"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["merchant_id"], "second");
}

#[tokio::test]
async fn provisioning_bounds_merchant_and_key_ids() {
    let env = start().await;
    for (field, value) in [
        ("merchant_id", "m".repeat(129)),
        ("merchant_id", "a\u{1b}[2Jb".into()),
        ("identity_key_id", "k".repeat(129)),
    ] {
        let mut body = provision_body("POS-0000D003", "m");
        body[field] = json!(value);
        let (_, e) = expect_error(
            env.req(Method::POST, "/sandbox/devices")
                .json(&body)
                .send()
                .await,
            400,
            "Invalid request body",
            Some(json!({"field": field,
                "message": "must be 1 to 128 characters without control characters"})),
        )
        .await;
        assert_eq!(e["details"]["field"], field);
    }
}

#[tokio::test]
async fn a_captured_attestation_does_not_replay_after_a_reset() {
    let env = start().await;
    let dev = pax();
    env.to_claimed(&dev).await;
    let (ts, n) = (env.now(), nonce());
    ok_json(env.attest_req(&dev, &ts, &n).send().await).await;
    ok_json(
        env.req(Method::POST, &format!("/sandbox/devices/{}/reset", dev.id))
            .send()
            .await,
    )
    .await;
    env.to_claimed(&dev).await;
    // Same clock, same captured headers: well inside the 5-minute window.
    expect_error(
        env.attest_req(&dev, &ts, &n).send().await,
        401,
        "Nonce already used",
        None,
    )
    .await;
    // The device itself attests again with a fresh nonce.
    env.attest(&dev).await;
}

#[tokio::test]
async fn initiated_merchant_sessions_expire_with_their_token() {
    let env = start_with(|c| c.merchant_token_ttl = Some(std::time::Duration::from_secs(60))).await;
    let token = env.merchant_token().await;
    assert_eq!(env.sandbox.map_sizes().initiated_sessions, 1);
    let dev = pax();
    env.bootstrap(&dev).await;
    let code = env.pairing_code(&dev).await;
    env.advance_secs(61);
    // Expired: the JWT check answers first; the session memory goes in the next sweep.
    let r = env.claim_with(&token, json!({"pairing_code": code})).await;
    assert_eq!(r.status(), 401);
    // A wrong secret of the right length is refused like any other.
    expect_error(
        env.req(Method::POST, "/client/session")
            .json(&json!({"client_id": "demo-merchant", "client_secret": "demo-secreT"}))
            .send()
            .await,
        401,
        "Invalid client credentials",
        None,
    )
    .await;
}

#[tokio::test]
async fn sandbox_endpoints_refuse_other_origins_and_foreign_hosts() {
    let env = start().await;
    let own = env.url.clone();
    let reset = "/sandbox/devices/POS-8F3A2C91/reset";
    // A page of another site posting a simple form.
    let (_, e) = expect_error(
        env.req(Method::POST, reset)
            .header("Origin", "http://evil.example")
            .header("Content-Type", "text/plain")
            .body("x")
            .send()
            .await,
        403,
        "Cross-origin request refused",
        Some(json!({
            "origin": "http://evil.example",
            "expected_origin": own,
            "reason": "/sandbox/ endpoints answer only the sandbox's own pages (or tools that send no Origin): a page of another site must not provision, claim or reset devices",
        })),
    )
    .await;
    assert!(e["details"]["reason"]
        .as_str()
        .unwrap()
        .contains("another site"));
    // DNS rebinding: the browser sends the attacker's name as Host (and as Origin).
    let port = env.sandbox.addr().port();
    let evil = format!("rebind.example:{port}");
    let (_, e) = expect_error(
        env.req(Method::GET, "/sandbox/devices")
            .header("Host", &evil)
            .header("Origin", format!("http://{evil}"))
            .send()
            .await,
        403,
        "Host not allowed",
        Some(json!({
            "host": evil,
            "reason": "the sandbox listens on a loopback address and answers /sandbox/ requests only for loopback addresses and localhost (DNS rebinding); allow another name with --allowed-host",
        })),
    )
    .await;
    assert_eq!(e["details"]["host"], evil.as_str());
    // Its own origin, no origin, localhost: as before.
    for (host, origin) in [
        (None, Some(own.clone())),
        (None, None),
        (
            Some(format!("localhost:{port}")),
            Some(format!("http://localhost:{port}")),
        ),
    ] {
        let mut r = env.req(Method::POST, reset);
        if let Some(h) = &host {
            r = r.header("Host", h);
        }
        if let Some(o) = &origin {
            r = r.header("Origin", o);
        }
        ok_json(r.send().await).await;
    }
    // The device API is not a browser's business: untouched.
    env.bootstrap(&pax()).await;
}

#[tokio::test]
async fn allowed_hosts_extend_the_loopback_names() {
    let env = start_with(|c| c.allowed_hosts = vec!["posemu.test".into()]).await;
    let port = env.sandbox.addr().port();
    ok_json(
        env.req(Method::GET, "/sandbox/devices")
            .header("Host", format!("posemu.test:{port}"))
            .header("Origin", format!("http://posemu.test:{port}"))
            .send()
            .await,
    )
    .await;
    let r = env
        .req(Method::GET, "/sandbox/devices")
        .header("Host", format!("other.test:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
