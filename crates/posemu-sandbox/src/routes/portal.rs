//! The merchant portal (issue 6): a self-contained back-office page at `/portal` that signs in
//! with merchant client credentials, claims pairing codes with `POST /pos/claim`, and lists the
//! merchant's terminals live from the sandbox-only `GET /sandbox/portal/terminals`, and under
//! each activated terminal its payments from the payment helpers of spec 7.12
//! (`GET /sandbox/terminals/{tid}/charges`, `POST /sandbox/settle`, called by the page itself).
//!
//! The page, its style sheet, script and icon are compiled into the binary (no build step,
//! nothing from the internet). The page is served with a strict Content-Security-Policy, which
//! is why the script and style sheet are separate files rather than inline.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::super::error::{ApiError, ApiResult};
use super::super::extract::header as header_str;
use super::super::jwt;
use super::super::Shared;
use super::attested::terminal_id;
use posemu_protocol::clock::rfc3339;
use posemu_protocol::headers::{bearer_token, AUTHORIZATION};
use posemu_protocol::rules::CODE_LEN;
use posemu_protocol::wire::{DeviceStatus, PairingCodeStatus};

pub const CSS_PATH: &str = "/portal/portal.css";
pub const JS_PATH: &str = "/portal/portal.js";
/// Each activated terminal's payments and "Settle now" (spec 7.12 helpers), before `JS_PATH`.
pub const PAYMENTS_JS_PATH: &str = "/portal/portal-payments.js";
pub const ICON_PATH: &str = "/portal/favicon.svg";
pub const TERMINALS_PATH: &str = "/sandbox/portal/terminals";

/// How many terminals the portal lists at most: the most recently seen ones. A fleet of a
/// million derived devices all belongs to the default merchant; the page must stay small.
pub const MAX_LISTED_TERMINALS: usize = 50;

const PAGE: &str = include_str!("../../../../assets/portal.html");
const CSS: &str = include_str!("../../../../assets/portal.css");
const JS: &str = include_str!("../../../../assets/portal.js");
const PAYMENTS_JS: &str = include_str!("../../../../assets/portal-payments.js");
const ICON: &str = include_str!("../../../../assets/favicon.svg");

/// Where the pre-filled code goes in the page template.
const CODE_SLOT: &str = "{{PAIRING_CODE}}";

/// Scripts and styles only from the sandbox itself; JSON calls only back to it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(
    content_type: &'static str,
    body: String,
    extra: &[(HeaderName, &'static str)],
) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Small and compiled in: always revalidate so an upgraded sandbox never serves stale JS.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    for (name, value) in extra {
        h.insert(name.clone(), HeaderValue::from_static(value));
    }
    resp
}

/// The code of `?code=` as it may appear in the page: normalised like a claim (spaces and
/// dashes dropped, upper-cased), then only letters and digits, at most 6. Anything else in
/// the query is dropped, so nothing from the URL can reach the HTML unescaped.
pub fn prefill_code(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .filter(char::is_ascii_alphanumeric)
        .take(CODE_LEN)
        .collect()
}

pub async fn page(Query(q): Query<HashMap<String, String>>) -> Response {
    let code = q.get("code").map(|c| prefill_code(c)).unwrap_or_default();
    asset(
        "text/html; charset=utf-8",
        PAGE.replace(CODE_SLOT, &code),
        &[
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
    )
}

pub async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS.into(), &[])
}

pub async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS.into(), &[])
}

pub async fn payments_js() -> Response {
    asset("text/javascript; charset=utf-8", PAYMENTS_JS.into(), &[])
}

pub async fn icon() -> Response {
    asset("image/svg+xml", ICON.into(), &[])
}

/// `GET /sandbox/portal/terminals` with the merchant's Bearer token: the terminals of that
/// merchant that the sandbox has seen (touched at least once), newest first, at most
/// [`MAX_LISTED_TERMINALS`]. Sandbox-only: the real Viopay API has no such listing in the spec.
pub async fn terminals(State(s): State<Arc<Shared>>, h: HeaderMap) -> ApiResult<Json<Value>> {
    let token = bearer_token(header_str(&h, AUTHORIZATION))
        .ok_or_else(|| ApiError::new(401, "Authorization token is required"))?;
    let now = s.config.clock.now();
    let claims = jwt::verify(&s.jwt_secret, token, now.timestamp())
        .ok_or_else(|| ApiError::new(401, "Authorization token is invalid or expired"))?;
    let merchant = s.world.merchants.read().find(&claims.merchant_id);
    let Some(merchant) = merchant else {
        return Ok(Json(json!({
            "merchant_id": claims.merchant_id, "total": 0, "terminals": [],
            "server_time": rfc3339(now), "limit": MAX_LISTED_TERMINALS,
        })));
    };
    let (keys, total) = s.world.recent_devices_of(merchant, MAX_LISTED_TERMINALS);
    let now_ms = now.timestamp_millis();
    let terminals: Vec<Value> = keys
        .into_iter()
        .map(|key| {
            let id = s.world.device_id(key);
            let model = s
                .config
                .profiles
                .iter()
                .find(|p| p.device_id == id)
                .map(|p| p.model.clone());
            let (status, code, seen_ms, activated_at) = s.world.peek(key, |st| {
                let st = st.map(|st| {
                    let code = st
                        .code
                        .map(|c| c.status(now_ms))
                        .unwrap_or(PairingCodeStatus::None);
                    (st.status(), code, st.last_seen_ms, st.activated_at)
                });
                st.unwrap_or((DeviceStatus::Inactive, PairingCodeStatus::None, 0, None))
            });
            let seen = (seen_ms > 0)
                .then(|| chrono::DateTime::from_timestamp_millis(seen_ms))
                .flatten();
            json!({
                "device_id": id,
                "device_status": status.as_str(),
                "pairing_code_status": code.as_str(),
                // The terminal id is the merchant's name for a terminal once it is theirs.
                "terminal_id": (status != DeviceStatus::Inactive).then(|| terminal_id(&id)),
                "model": model,
                "last_seen": seen.map(rfc3339),
                "last_seen_secs_ago": seen.map(|t| (now - t).num_seconds().max(0)),
                "activated_at": activated_at
                    .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                    .map(rfc3339),
            })
        })
        .collect();
    Ok(Json(json!({
        "merchant_id": claims.merchant_id,
        "total": total,
        "limit": MAX_LISTED_TERMINALS,
        "server_time": rfc3339(now),
        "terminals": terminals,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefill_keeps_only_a_normalised_code() {
        assert_eq!(prefill_code("k7m3np"), "K7M3NP");
        assert_eq!(prefill_code(" k7m-3np "), "K7M3NP");
        assert_eq!(prefill_code("K7M3NPXYZ"), "K7M3NP");
        assert_eq!(prefill_code("\"><script>"), "SCRIPT");
        assert_eq!(prefill_code("ÄÖ<>&'"), "");
    }

    #[test]
    fn page_has_one_code_slot_and_links_its_assets() {
        assert_eq!(PAGE.matches(CODE_SLOT).count(), 1);
        for path in [CSS_PATH, PAYMENTS_JS_PATH, JS_PATH, ICON_PATH] {
            assert!(PAGE.contains(path), "page does not link {path}");
        }
        // CSP forbids inline code: keep the page free of it.
        assert!(
            !PAGE.contains("<script>") && !PAGE.contains("<style") && !PAGE.contains(" style=")
        );
        assert!(!PAGE.contains(" onclick=") && !PAGE.contains(" onsubmit="));
        // Payments come from a server: the scripts never parse strings as HTML.
        for script in [JS, PAYMENTS_JS] {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
            ] {
                assert!(!script.contains(sink), "script uses {sink}");
            }
        }
        // The payments script runs first: portal.js creates it in its start().
        let at = |p: &str| PAGE.find(p).unwrap();
        assert!(at(PAYMENTS_JS_PATH) < at(JS_PATH));
        // Nothing from the internet (the SVG namespace is a name, never fetched).
        for text in [PAGE, CSS, JS, PAYMENTS_JS, ICON] {
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("//fonts.") && !text.contains("@import"));
        }
    }
}
