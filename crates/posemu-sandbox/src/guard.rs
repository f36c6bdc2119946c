//! Browser protection of the sandbox-only endpoints (`/sandbox/…`): a web page of another
//! site open in the same browser must not provision, claim or reset devices (cross-origin
//! simple POSTs need no preflight), nor read pairing codes through DNS rebinding.
//!
//! - A request that carries `Origin` must come from the sandbox's own origin (`http://` and
//!   the `Host` it was sent to). Tools that send no `Origin` (curl, the device, the fleet)
//!   are not affected; the portal is served by the sandbox itself, so it is same-origin.
//! - While the sandbox listens on a loopback address, `Host` must name a loopback address,
//!   `localhost`, or a name allowed by `SandboxConfig::allowed_hosts` (`--allowed-host`).

use std::net::IpAddr;

use axum::http::HeaderMap;

use super::error::ApiError;
use super::log::RequestLogLine;

/// The paths the guard covers.
pub const GUARDED_PREFIX: &str = "/sandbox/";

/// The host part of a `Host` value, without the port (`[::1]:80` → `::1`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn is_loopback_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `host[:port]` without a default `:80`, lower-cased, for comparing an origin with a host.
fn normalized(authority: &str) -> String {
    let a = authority.to_ascii_lowercase();
    a.strip_suffix(":80").map(str::to_string).unwrap_or(a)
}

/// Checks a request to `path`; `Err` is the 403 to answer.
pub fn check(
    path: &str,
    headers: &HeaderMap,
    loopback: bool,
    allowed_hosts: &[String],
) -> Result<(), ApiError> {
    if !path.starts_with(GUARDED_PREFIX) {
        return Ok(());
    }
    let text = |name: &str| {
        headers.get(name).map(|v| {
            v.to_str()
                .map_err(|_| RequestLogLine::field(&String::from_utf8_lossy(v.as_bytes())))
        })
    };
    let host = match text("host") {
        None => None,
        Some(Ok(h)) => Some(h),
        Some(Err(shown)) => return Err(host_refused(&shown)),
    };
    if let Some(h) = host {
        let name = host_name(h);
        let allowed = !loopback
            || is_loopback_name(name)
            || allowed_hosts
                .iter()
                .any(|a| a.eq_ignore_ascii_case(name) || a.eq_ignore_ascii_case(h));
        if !allowed {
            return Err(host_refused(h));
        }
    }
    match text("origin") {
        None => Ok(()),
        Some(Err(shown)) => Err(origin_refused(&shown, host)),
        Some(Ok(origin)) => {
            let same = host.is_some_and(|h| {
                origin
                    .get(..7)
                    .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
                    && normalized(&origin[7..]) == normalized(h)
            });
            if same {
                Ok(())
            } else {
                Err(origin_refused(origin, host))
            }
        }
    }
}

fn host_refused(host: &str) -> ApiError {
    ApiError::new(403, "Host not allowed")
        .detail("host", RequestLogLine::field(host))
        .detail(
            "reason",
            "the sandbox listens on a loopback address and answers /sandbox/ requests only for \
             loopback addresses and localhost (DNS rebinding); allow another name with \
             --allowed-host",
        )
}

fn origin_refused(origin: &str, host: Option<&str>) -> ApiError {
    let e = ApiError::new(403, "Cross-origin request refused")
        .detail("origin", RequestLogLine::field(origin))
        .detail(
            "reason",
            "/sandbox/ endpoints answer only the sandbox's own pages (or tools that send no \
             Origin): a page of another site must not provision, claim or reset devices",
        );
    match host {
        Some(h) => e.detail(
            "expected_origin",
            format!("http://{}", RequestLogLine::field(h)),
        ),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn own_origin_and_loopback_hosts_pass_others_are_refused() {
        let ok = |path: &str, pairs: &[(&'static str, &str)], loopback: bool| {
            check(path, &headers(pairs), loopback, &["demo.test".into()]).is_ok()
        };
        assert!(ok("/sandbox/devices", &[], true));
        assert!(ok("/sandbox/devices", &[("host", "127.0.0.1:8765")], true));
        assert!(ok("/sandbox/devices", &[("host", "[::1]:8765")], true));
        assert!(ok("/sandbox/devices", &[("host", "LOCALHOST")], true));
        assert!(ok("/sandbox/devices", &[("host", "demo.test:8765")], true));
        assert!(ok(
            "/sandbox/devices",
            &[
                ("host", "127.0.0.1:8765"),
                ("origin", "http://127.0.0.1:8765")
            ],
            true
        ));
        assert!(ok(
            "/sandbox/devices",
            &[
                ("host", "192.168.1.5:8765"),
                ("origin", "http://192.168.1.5:8765")
            ],
            false
        ));
        assert!(!ok(
            "/sandbox/devices",
            &[("host", "evil.example:8765")],
            true
        ));
        assert!(!ok(
            "/sandbox/devices",
            &[
                ("host", "127.0.0.1:8765"),
                ("origin", "http://evil.example")
            ],
            true
        ));
        assert!(!ok(
            "/sandbox/devices",
            &[("host", "127.0.0.1:8765"), ("origin", "null")],
            true
        ));
        assert!(!ok(
            "/sandbox/devices",
            &[("origin", "http://127.0.0.1")],
            true
        ));
        // Other paths are the device API: not guarded.
        assert!(ok("/pos/status", &[("host", "evil.example")], true));
        assert_eq!(host_name("[::1]:80"), "::1");
        assert_eq!(host_name("localhost"), "localhost");
    }
}
