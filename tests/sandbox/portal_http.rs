//! The merchant portal over plain HTTP: the page and its assets with the right content types
//! and headers, the `?code=` prefill, and the sandbox-only terminal list behind it.

use std::sync::Arc;
use std::time::Duration;

use crate::portal_support::*;
use posemu_protocol::clock::ManualClock;
use posemu_protocol::wire::paths;
use posemu_sandbox::{FleetSeed, Sandbox, SandboxConfig};
use serde_json::{json, Value};

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox starts")
}

async fn get(url: String) -> reqwest::Response {
    reqwest::get(&url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header on {}", r.url()))
}

/// The `value` attribute of the pairing-code input in the served page.
fn code_value(page: &str) -> &str {
    let at = page
        .find("id=\"pairing-code\"")
        .expect("pairing-code input");
    let rest = &page[at..];
    let v = rest.find("value=\"").expect("value attribute") + 7;
    let end = rest[v..].find('"').expect("closing quote");
    &rest[v..v + end]
}

#[tokio::test]
async fn page_and_assets_are_served_with_their_content_types() {
    let sb = sandbox().await;
    let r = get(sb.portal_url(None)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    let csp = header(&r, "content-security-policy").to_string();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(part), "CSP {csp:?} lacks {part:?}");
    }
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert!(header(&r, "x-trace-id").len() == 32);
    let page = r.text().await.unwrap();
    assert!(page.starts_with("<!doctype html>"));
    assert_eq!(code_value(&page), "");
    assert!(!page.contains("{{"), "unfilled template slot");
    for label in [
        "for=\"client-id\"",
        "for=\"client-secret\"",
        "for=\"pairing-code\"",
    ] {
        assert!(page.contains(label), "no label {label}");
    }
    assert!(page.contains("aria-live=\"polite\""));
    assert!(page.contains("name=\"viewport\""));

    let assets = [
        (
            "/portal/portal.css",
            "text/css; charset=utf-8",
            "assets/portal.css",
        ),
        (
            "/portal/portal.js",
            "text/javascript; charset=utf-8",
            "assets/portal.js",
        ),
        (
            "/portal/portal-payments.js",
            "text/javascript; charset=utf-8",
            "assets/portal-payments.js",
        ),
        ("/portal/favicon.svg", "image/svg+xml", "assets/favicon.svg"),
    ];
    for (path, content_type, file) in assets {
        let r = get(format!("{}{path}", sb.url())).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(header(&r, "content-type"), content_type, "{path}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{path}");
        assert!(page.contains(path), "page does not link {path}");
        let served = r.text().await.unwrap();
        let on_disk = std::fs::read_to_string(file).unwrap();
        assert_eq!(served, on_disk, "{path} is not the file {file}");
    }

    // Everything else under /portal/ is the API's ordinary 404.
    let r = get(format!("{}/portal/nope.js", sb.url())).await;
    assert_eq!(r.status(), 404);
    assert_eq!(header(&r, "content-type"), "application/json");
}

#[tokio::test]
async fn code_in_the_link_is_prefilled_normalised_and_never_injected() {
    let sb = sandbox().await;
    let page = get(sb.portal_url(Some("K7M3NP")))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(code_value(&page), "K7M3NP");
    let page = get(format!("{}/portal?code=k7m-3np&lang=de", sb.url()))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(code_value(&page), "K7M3NP");
    let page = get(format!(
        "{}/portal?code=%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
        sb.url()
    ))
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(code_value(&page), "SCRIPT");
    assert!(!page.contains("<script>alert"));
    // A malformed query is not an error page: the portal just opens without a code.
    let r = get(format!("{}/portal?code=%zz&code", sb.url())).await;
    assert_eq!(r.status(), 200);
}

async fn terminals(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(format!("{url}/sandbox/portal/terminals"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn ids(list: &Value) -> Vec<&str> {
    list["terminals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["device_id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn terminal_list_needs_a_token_and_shows_only_the_merchants_touched_devices() {
    let sb = sandbox().await;
    let url = sb.url();
    let (status, body) = terminals(&url, None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["message"], "Authorization token is required");
    let (status, body) = terminals(&url, Some("not-a-jwt")).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error"]["message"],
        "Authorization token is invalid or expired"
    );

    let token = merchant_token(&url, "demo-merchant", "demo-secret").await;
    let (status, body) = terminals(&url, Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["total"], 0,
        "untouched shipped profiles are not listed"
    );
    assert_eq!(body["terminals"], json!([]));

    let code = start_device_showing_code(&url).await;
    let foreign = provision_foreign_device(&url, "POS-0BADC0DE").await;
    show_code(&url, &foreign).await;
    let (_, body) = terminals(&url, Some(&token)).await;
    assert_eq!(
        ids(&body),
        ["POS-8F3A2C91"],
        "another merchant's device is hidden"
    );
    let t = &body["terminals"][0];
    assert_eq!(t["device_status"], "inactive");
    assert_eq!(t["pairing_code_status"], "pending");
    assert_eq!(t["model"], "PAX-A920");
    assert_eq!(t["terminal_id"], Value::Null);
    assert!(t["last_seen_secs_ago"].as_i64().unwrap() <= 2);
    assert!(t["last_seen"].as_str().unwrap().ends_with('Z'));

    let r = reqwest::Client::new()
        .post(format!("{url}{}", paths::CLAIM))
        .bearer_auth(&token)
        .json(&json!({"pairing_code": code.to_lowercase()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, body) = terminals(&url, Some(&token)).await;
    let t = &body["terminals"][0];
    assert_eq!(t["device_status"], "claimed");
    assert!(t["terminal_id"].as_str().unwrap().starts_with("TID-"));

    finish_activation(&url, &default_device()).await;
    let (_, body) = terminals(&url, Some(&token)).await;
    let t = &body["terminals"][0];
    assert_eq!(t["device_status"], "activated");
    assert!(t["activated_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn a_big_fleet_is_capped_to_the_most_recently_seen() {
    let clock = ManualClock::at_spec_example();
    let sb = Sandbox::start(SandboxConfig {
        fleet: Some(FleetSeed::new("posemu-demo")),
        clock: Arc::new(clock.clone()),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let url = sb.url();
    let http = reqwest::Client::new();
    for i in 1..=60u32 {
        let id = format!("POS-F0{i:06X}");
        let r = http
            .post(format!("{url}{}", paths::BOOTSTRAP))
            .header("X-Device-Id", &id)
            .header("User-Agent", "Viopay-POS/1.4.2 (Android 12; PAX-A920)")
            .header("X-Client-Type", "pos")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{id}");
        clock.advance(Duration::from_secs(1));
    }
    let token = merchant_token(&url, "demo-merchant", "demo-secret").await;
    let (_, body) = terminals(&url, Some(&token)).await;
    assert_eq!(body["total"], 60);
    assert_eq!(body["limit"], 50);
    let list = ids(&body);
    assert_eq!(list.len(), 50);
    // Newest first; the ten seen longest ago are left out. Fleet devices have no known model.
    assert_eq!(list[0], "POS-F000003C");
    assert_eq!(list[49], "POS-F000000B");
    assert_eq!(body["terminals"][0]["last_seen_secs_ago"], 1);
    assert_eq!(body["terminals"][0]["model"], Value::Null);
}

/// The page's payments script calls exactly the helpers of spec 7.12, as the protocol crate
/// names them, and the CSP still allows those calls (same origin) and nothing inline.
#[tokio::test]
async fn payments_script_calls_the_sandbox_helpers_under_the_pages_csp() {
    use posemu_protocol::payments::paths as pay;
    let sb = sandbox().await;
    let page = get(sb.portal_url(None)).await;
    let csp = header(&page, "content-security-policy").to_string();
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    let r = get(format!("{}/portal/portal-payments.js", sb.url())).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "no-cache");
    let script = r.text().await.unwrap();
    // The charges path is built in the script around an encoded terminal id.
    let charges = pay::sandbox_terminal_charges("{tid}");
    let (before, after) = charges.split_once("{tid}").unwrap();
    for part in [pay::SANDBOX_SETTLE, before, after] {
        assert!(
            script.contains(&format!("'{part}")) || script.contains(&format!("{part}'")),
            "script does not call {part}"
        );
    }
    assert!(script.contains("encodeURIComponent(tid)"));
    // Nothing the CSP forbids, and no HTML parsing of server text.
    for banned in [
        "eval(",
        "new Function",
        "innerHTML",
        "insertAdjacentHTML",
        "setAttribute('style'",
        "http://",
        "https://",
    ] {
        assert!(!script.contains(banned), "script contains {banned}");
    }
}
