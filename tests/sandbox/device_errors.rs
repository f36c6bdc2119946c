//! Error rows of spec 3.1 (device headers, on every step that uses them), 4.1's 426, 4.2, 4.3
//! and 4.12, each asserted exactly: status, code, message, details, trace id and `X-Trace-Id`.

use crate::sandbox_common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// The device endpoints authenticated by the 3.1 headers (steps 1, 2, 3, 5).
const STEPS: &[(&str, &str)] = &[
    ("POST", "/pos/bootstrap"),
    ("POST", "/pos/pairing-code"),
    ("GET", "/pos/status"),
    ("POST", "/pos/attest"),
];

struct Row {
    headers: [Option<&'static str>; 3],
    message: &'static str,
    details: Option<Value>,
}

fn rows() -> Vec<Row> {
    let id = Some("POS-8F3A2C91");
    let ua = Some(DEMO_UA);
    let pos = Some("pos");
    vec![
        Row {
            headers: [None, ua, pos],
            message: "X-Device-Id header is required",
            details: None,
        },
        Row {
            headers: [Some("POS-8f3a2c91"), ua, pos],
            message: "X-Device-Id header is invalid",
            details: Some(json!({"header": "X-Device-Id", "expected": "POS-{8_HEX_CHARS}"})),
        },
        Row {
            headers: [id, None, pos],
            message: "User-Agent header is required",
            details: None,
        },
        Row {
            headers: [id, Some("curl/8.5.0"), pos],
            message: "User-Agent header is invalid",
            details: Some(
                json!({"header": "User-Agent", "expected": "Viopay-POS/{version} ({OS}; {model})"}),
            ),
        },
        Row {
            headers: [id, ua, None],
            message: "X-Client-Type header is required",
            details: None,
        },
        Row {
            headers: [id, ua, Some("web")],
            message: "X-Client-Type header is invalid",
            details: Some(json!({"header": "X-Client-Type", "expected": "pos"})),
        },
    ]
}

fn request(env: &Env, method: &str, path: &str, h: [Option<&str>; 3]) -> reqwest::RequestBuilder {
    // reqwest adds no User-Agent of its own unless asked, so a missing one is really missing.
    let mut r = env.req(method.parse().unwrap(), path);
    for (name, value) in ["X-Device-Id", "User-Agent", "X-Client-Type"]
        .into_iter()
        .zip(h)
    {
        if let Some(v) = value {
            r = r.header(name, v);
        }
    }
    r
}

#[tokio::test]
async fn every_header_row_on_every_step() {
    let env = start().await;
    for (method, path) in STEPS {
        for row in rows() {
            expect_error(
                request(&env, method, path, row.headers).send().await,
                400,
                row.message,
                row.details.clone(),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn headers_are_checked_in_the_spec_order() {
    let env = start().await;
    // Everything wrong at once: the first row wins, and so on down the table.
    let cases: [([Option<&str>; 3], &str); 5] = [
        (
            [None, Some("curl"), Some("web")],
            "X-Device-Id header is required",
        ),
        ([Some("POS-1"), None, None], "X-Device-Id header is invalid"),
        (
            [Some("POS-8F3A2C91"), None, Some("web")],
            "User-Agent header is required",
        ),
        (
            [Some("POS-8F3A2C91"), Some("Viopay-POS/"), None],
            "User-Agent header is invalid",
        ),
        (
            [Some("POS-8F3A2C91"), Some(DEMO_UA), Some("POS")],
            "X-Client-Type header is invalid",
        ),
    ];
    for (h, message) in cases {
        let (_, e) = expect_error_any(request(&env, "GET", "/pos/status", h).send().await).await;
        assert_eq!(e["message"], message);
    }
    // Header problems come before the unknown-device 404.
    let (_, e) = expect_error_any(
        request(
            &env,
            "GET",
            "/pos/status",
            [Some("POS-00000000"), None, None],
        )
        .send()
        .await,
    )
    .await;
    assert_eq!(e["message"], "User-Agent header is required");
}

async fn expect_error_any(r: reqwest::Result<reqwest::Response>) -> (u16, Value) {
    let r = r.unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    (status, v["error"].clone())
}

#[tokio::test]
async fn the_user_agent_check_is_prefix_and_version_only() {
    let env = start().await;
    for ua in [
        "Viopay-POS/1.4.2",
        "Viopay-POS/2.0.0 (anything at all)",
        "Viopay-POS/9",
    ] {
        let dev = Dev {
            ua: ua.into(),
            ..pax()
        };
        env.bootstrap(&dev).await;
    }
}

#[tokio::test]
async fn unknown_device_is_404_on_every_step() {
    let env = start().await;
    let ghost = Dev {
        id: "POS-00000000".into(),
        ..pax()
    };
    for (method, path) in STEPS {
        expect_error(
            env.dev_req(method.parse().unwrap(), path, &ghost)
                .send()
                .await,
            404,
            "Device not found",
            Some(json!({"device_id": "POS-00000000"})),
        )
        .await;
    }
}

#[tokio::test]
async fn pairing_code_of_a_claimed_or_activated_device_is_409() {
    let env = start().await;
    let dev = pax();
    env.to_claimed(&dev).await;
    expect_error(
        env.dev_req(Method::POST, "/pos/pairing-code", &dev)
            .send()
            .await,
        409,
        "Device already claimed",
        Some(json!({"device_id": "POS-8F3A2C91", "device_status": "claimed"})),
    )
    .await;
    let token = env.attest(&dev).await;
    let keys = unwrap_keys(&dev.zmk, &env.keys(&dev, &token).await);
    ok_json(
        env.att_req("/pos/activate", &dev, &token)
            .json(&seal_json(&keys.msk, ALL_OK))
            .send()
            .await,
    )
    .await;
    expect_error(
        env.dev_req(Method::POST, "/pos/pairing-code", &dev)
            .send()
            .await,
        409,
        "Device already claimed",
        Some(json!({"device_id": "POS-8F3A2C91", "device_status": "activated"})),
    )
    .await;
    // Bootstrap answers whatever the status.
    env.bootstrap(&dev).await;
}

#[tokio::test]
async fn codes_expire_by_time_and_are_replaced_by_a_new_request() {
    let env = start_with(|c| c.code_ttl = std::time::Duration::from_secs(120)).await;
    let dev = pax();
    let v = ok_json(
        env.dev_req(Method::POST, "/pos/pairing-code", &dev)
            .send()
            .await,
    )
    .await;
    assert_eq!(
        v["expires_in_sec"], 120,
        "the configured lifetime is reported"
    );
    env.advance_secs(119);
    assert_eq!(env.status(&dev).await["pairing_code_status"], "pending");
    env.advance_secs(1);
    assert_eq!(env.status(&dev).await["pairing_code_status"], "expired");

    let first = env.pairing_code(&dev).await;
    assert_eq!(env.status(&dev).await["pairing_code_status"], "pending");
    let second = env.pairing_code(&dev).await;
    assert_ne!(first, second);
    assert_eq!(env.status(&dev).await["pairing_code_status"], "pending");
}

#[tokio::test]
async fn pending_codes_are_unique_across_devices() {
    let env = start_with(|c| c.fleet = Some(posemu_sandbox::FleetSeed::new("u"))).await;
    let mut seen = std::collections::HashSet::new();
    for i in 0..300 {
        let dev = Dev {
            id: format!("POS-F0{i:06X}"),
            ..pax()
        };
        assert!(seen.insert(env.pairing_code(&dev).await));
    }
}

#[tokio::test]
async fn old_app_versions_get_426_only_when_enforced() {
    let old = Dev {
        ua: "Viopay-POS/1.3.4 (Android 11; PAX-A920)".into(),
        ..pax()
    };
    let env = start().await;
    env.pairing_code(&old).await;

    let env = start_with(|c| {
        c.enforce_min_version = true;
        c.min_version = "1.5.0".into();
    })
    .await;
    // Bootstrap always answers: it is how the device learns the minimum.
    let b = env.bootstrap(&old).await;
    assert_eq!(b["min_supported_version"], "1.5.0");
    for (method, path) in &STEPS[1..] {
        expect_error(
            env.dev_req(method.parse().unwrap(), path, &old)
                .send()
                .await,
            426,
            "POS app version 1.3.4 is below the minimum supported version 1.5.0",
            Some(json!({"min_supported_version": "1.5.0"})),
        )
        .await;
    }
    // Semantic order: 1.10.0 is above 1.5.0.
    let new = Dev {
        ua: "Viopay-POS/1.10.0 (Android 14; PAX-A920)".into(),
        ..pax()
    };
    env.pairing_code(&new).await;
    // Steps 6-8 are refused too for a device that got its token with a newer app.
    env.to_claimed(&new).await;
    let token = env.attest(&new).await;
    for path in [
        "/pos/keys",
        "/pos/config",
        "/pos/terminal-parameters",
        "/pos/activate",
    ] {
        expect_error(
            env.att_req(path, &old, &token).send().await,
            426,
            "POS app version 1.3.4 is below the minimum supported version 1.5.0",
            Some(json!({"min_supported_version": "1.5.0"})),
        )
        .await;
    }
    // Unknown devices are still 404 first.
    let ghost = Dev {
        id: "POS-00000000".into(),
        ..old.clone()
    };
    expect_error(
        env.dev_req(Method::GET, "/pos/status", &ghost).send().await,
        404,
        "Device not found",
        Some(json!({"device_id": "POS-00000000"})),
    )
    .await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let env = start().await;
    for path in ["/pos/nope", "/", "/sandbox/nothing", "/pos/status/extra"] {
        expect_error(
            env.req(Method::GET, path).send().await,
            404,
            "Route not found",
            None,
        )
        .await;
    }
    for (method, path) in [
        (Method::GET, "/pos/bootstrap"),
        (Method::POST, "/pos/status"),
        (Method::DELETE, "/pos/claim"),
        (Method::PUT, "/health/live"),
        (Method::GET, "/pos/activate"),
    ] {
        expect_error(
            env.dev_req(method, path, &pax()).send().await,
            405,
            "Method not allowed",
            None,
        )
        .await;
    }
}

#[tokio::test]
async fn trace_ids_are_unique_per_response() {
    let env = start().await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let r = env.req(Method::GET, "/health/live").send().await.unwrap();
        assert!(seen.insert(trace_header(&r)));
    }
}
