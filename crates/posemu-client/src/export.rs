//! Getting exchanges out of posemu: a HAR 1.2 file (browser devtools import it), "copy as
//! curl", and the OSC 52 escape that puts text on the user's clipboard through the terminal.
//!
//! Everything here works on logged [`Exchange`]s, which are already redacted.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::SecondsFormat;
use serde_json::{json, Value};

use super::exchange::{reason_phrase, Captured, Exchange};

/// The HAR 1.2 document of `exchanges` (the [HAR 1.2 spec]'s required fields, plus posemu's
/// own as `_`-prefixed custom fields: signing string, plaintexts, trace id, error).
///
/// [HAR 1.2 spec]: http://www.softwareishard.com/blog/har-12-spec/
pub fn har<'a>(exchanges: impl IntoIterator<Item = &'a Exchange>) -> Value {
    let entries: Vec<Value> = exchanges.into_iter().map(har_entry).collect();
    json!({
        "log": {
            "version": "1.2",
            "creator": { "name": "posemu", "version": env!("CARGO_PKG_VERSION") },
            "entries": entries,
        }
    })
}

/// [`har`] as pretty-printed JSON text.
pub fn har_string<'a>(exchanges: impl IntoIterator<Item = &'a Exchange>) -> String {
    serde_json::to_string_pretty(&har(exchanges)).unwrap_or_default()
}

/// Writes [`har_string`] of `exchanges` to `path`, readable by the owner only (mode 0600 on
/// Unix, also when the file existed): a HAR holds device ids, URLs and bodies.
pub fn write_har<'a>(
    path: &std::path::Path,
    exchanges: impl IntoIterator<Item = &'a Exchange>,
) -> std::io::Result<()> {
    use std::io::Write;
    let text = har_string(exchanges);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        o.mode(0o600);
        let mut f = o.open(path)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())
    }
    #[cfg(not(unix))]
    {
        o.open(path)?.write_all(text.as_bytes())
    }
}

fn name_values(headers: &[(String, String)]) -> Vec<Value> {
    headers
        .iter()
        .map(|(n, v)| json!({ "name": n, "value": v }))
        .collect()
}

fn query_string(url: &str) -> Vec<Value> {
    let Some((_, q)) = url.split_once('?') else {
        return Vec::new();
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            json!({ "name": n, "value": v })
        })
        .collect()
}

fn mime(headers: &[(String, String)], body: Option<&Captured>) -> String {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| match body {
            Some(_) => "application/json".into(),
            None => "x-unknown".into(),
        })
}

fn captured_json(c: &Captured) -> Value {
    let mut v = json!({ "text": c.text, "size": c.bytes, "truncated": c.truncated });
    if let Some(h) = &c.sha256 {
        v["sha256"] = json!(h);
    }
    v
}

fn har_entry(e: &Exchange) -> Value {
    let ms = e.latency.as_secs_f64() * 1000.0;
    let http_version = if e.http_version.is_empty() {
        "HTTP/1.1"
    } else {
        &e.http_version
    };
    let mut request = json!({
        "method": e.method,
        "url": e.url,
        "httpVersion": http_version,
        "cookies": [],
        "headers": name_values(&e.request_headers),
        "queryString": query_string(&e.url),
        "headersSize": -1,
        "bodySize": e.request_body.as_ref().map_or(0, |b| b.bytes as i64),
    });
    if let Some(b) = &e.request_body {
        request["postData"] = json!({
            "mimeType": mime(&e.request_headers, Some(b)),
            "params": [],
            "text": b.text,
        });
    }
    let body = e.response_body.as_ref();
    let mut content = json!({
        "size": body.map_or(0, |b| b.bytes),
        "mimeType": mime(&e.response_headers, body),
    });
    if let Some(b) = body {
        content["text"] = json!(b.text);
        if b.truncated {
            content["comment"] = json!(format!(
                "truncated to {} characters of {} bytes",
                b.text.chars().count(),
                b.bytes
            ));
        }
    }
    let status = e.status.unwrap_or(0);
    // no answer: status 0 and, as browsers do, the network error as the status text (a viewer
    // that shows only the standard fields still says why)
    let status_text = match (e.status, &e.error) {
        (Some(_), _) => reason_phrase(status).to_string(),
        (None, Some(err)) => err.clone(),
        (None, None) => String::new(),
    };
    let mut entry = json!({
        "startedDateTime": e.started_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "time": ms,
        "request": request,
        "response": {
            "status": status,
            "statusText": status_text,
            "httpVersion": http_version,
            "cookies": [],
            "headers": name_values(&e.response_headers),
            "content": content,
            "redirectURL": e.response_header("location").unwrap_or(""),
            "headersSize": -1,
            "bodySize": body.map_or(-1, |b| b.bytes as i64),
        },
        "cache": {},
        "timings": { "send": 0, "wait": ms, "receive": 0 },
        "_step": e.step,
    });
    let extra = [
        ("_traceId", e.trace_id.as_ref().map(|t| json!(t))),
        (
            "_signingString",
            e.signing_string.as_ref().map(|s| json!(s)),
        ),
        ("_bodySha256", e.body_sha256.as_ref().map(|s| json!(s))),
        (
            "_requestPlaintext",
            e.request_plaintext.as_ref().map(captured_json),
        ),
        (
            "_responsePlaintext",
            e.response_plaintext.as_ref().map(captured_json),
        ),
        ("_error", e.error.as_ref().map(|s| json!(s))),
    ];
    for (k, v) in extra {
        if let Some(v) = v {
            entry[k] = v;
        }
    }
    entry
}

/// `'text'` for a POSIX shell: single quotes, with `'` written as `'\''`.
pub fn shell_quote(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('\'');
    for c in text.chars() {
        if c == '\'' {
            s.push_str("'\\''");
        } else {
            s.push(c);
        }
    }
    s.push('\'');
    s
}

/// The shell variable a redacted credential of `scheme` is replaced with.
pub fn token_placeholder(scheme: &str) -> &'static str {
    if scheme.eq_ignore_ascii_case("Attestation") {
        "$ATTESTATION_TOKEN"
    } else if scheme.eq_ignore_ascii_case("Bearer") {
        "$BEARER_TOKEN"
    } else {
        "$TOKEN"
    }
}

/// The exchange's request as a curl command line, one option per line. The redacted
/// `Authorization` credential becomes a shell variable (`$ATTESTATION_TOKEN`,
/// `$BEARER_TOKEN`) for the user to set.
pub fn curl(e: &Exchange) -> String {
    let mut parts = vec!["curl".to_string()];
    if e.method != "GET" || e.request_body.is_some() {
        let plain = e.method.bytes().all(|b| b.is_ascii_uppercase());
        parts.push(if plain {
            format!("-X {}", e.method)
        } else {
            format!("-X {}", shell_quote(&e.method))
        });
    }
    parts.push(shell_quote(&e.url));
    // `curl [-X M] 'url'` on the first line, one option per following line.
    let mut parts = vec![parts.join(" ")];
    for (n, v) in &e.request_headers {
        if n.eq_ignore_ascii_case("authorization") {
            let scheme = v.split(' ').next().unwrap_or("");
            // Double quotes so the shell expands the variable; the scheme is a plain token,
            // anything else is dropped rather than risk unquoted text.
            let scheme: String = scheme
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            parts.push(format!(
                "-H \"{n}: {scheme} {}\"",
                token_placeholder(&scheme)
            ));
        } else {
            parts.push(format!("-H {}", shell_quote(&format!("{n}: {v}"))));
        }
    }
    if let Some(b) = &e.request_body {
        parts.push(format!("--data-raw {}", shell_quote(&b.text)));
    }
    let command = parts.join(" \\\n  ");
    // a signed payment request: what was signed, as shell comments above the command
    match (&e.body_sha256, &e.signing_string) {
        (Some(hash), Some(signed)) => {
            let mut s = format!("# body SHA-256: {hash}\n# string to sign:\n");
            for line in signed.lines() {
                s.push_str("#   ");
                s.push_str(&line.replace(|c: char| c.is_control(), " "));
                s.push('\n');
            }
            s + &command
        }
        _ => command,
    }
}

/// The OSC 52 escape sequence that asks the terminal to put `text` on the clipboard.
pub fn osc52(text: &str) -> String {
    format!("\x1b]52;c;{}\x07", B64.encode(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::sample_exchange;

    #[test]
    fn har_has_every_required_field() {
        let mut e = sample_exchange("activate");
        e.method = "POST".into();
        e.url = "http://127.0.0.1:1/pos/activate?x=1&y".into();
        e.request_body = Some(Captured::body(b"{\"format\":\"TR31-DATA\"}"));
        e.request_headers
            .push(("Content-Type".into(), "application/json".into()));
        e.trace_id = Some("ab".repeat(16));
        let mut failed = sample_exchange("status");
        failed.status = None;
        failed.response_body = None;
        failed.http_version.clear();
        failed.error = Some("request timed out after 200ms".into());
        let har = har([&e, &failed]);
        let text = serde_json::to_string(&har).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        let log = &back["log"];
        assert_eq!(log["version"], "1.2");
        assert_eq!(log["creator"]["name"], "posemu");
        let entries = log["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        for en in entries {
            for k in [
                "startedDateTime",
                "time",
                "request",
                "response",
                "cache",
                "timings",
            ] {
                assert!(!en[k].is_null(), "entry.{k}");
            }
            for k in [
                "method",
                "url",
                "httpVersion",
                "cookies",
                "headers",
                "queryString",
                "headersSize",
                "bodySize",
            ] {
                assert!(!en["request"][k].is_null(), "request.{k}");
            }
            for k in [
                "status",
                "statusText",
                "httpVersion",
                "cookies",
                "headers",
                "content",
                "redirectURL",
                "headersSize",
                "bodySize",
            ] {
                assert!(!en["response"][k].is_null(), "response.{k}");
            }
            assert!(en["response"]["content"]["size"].is_number());
            assert!(en["response"]["content"]["mimeType"].is_string());
            assert!(en["timings"]["wait"].is_number());
            assert!(
                chrono::DateTime::parse_from_rfc3339(en["startedDateTime"].as_str().unwrap())
                    .is_ok()
            );
        }
        assert_eq!(
            entries[0]["request"]["postData"]["mimeType"],
            "application/json"
        );
        assert_eq!(entries[0]["request"]["queryString"][1]["name"], "y");
        assert_eq!(entries[0]["_traceId"], "ab".repeat(16));
        assert_eq!(entries[1]["response"]["status"], 0);
        assert_eq!(entries[1]["_error"], "request timed out after 200ms");
        // a failed request says why in the standard field too, as browsers do
        assert_eq!(
            entries[1]["response"]["statusText"],
            "request timed out after 200ms"
        );
        assert_eq!(entries[0]["response"]["statusText"], "OK");
    }

    #[test]
    fn curl_quotes_everything_and_uses_placeholders() {
        let mut e = sample_exchange("activate");
        e.method = "POST".into();
        e.request_headers
            .push(("Authorization".into(), "Attestation att_f83k…".into()));
        e.request_body = Some(Captured::body(b"{\"it's\":1}"));
        let c = curl(&e);
        assert!(
            c.starts_with("curl -X POST 'http://127.0.0.1:1/pos/status' \\\n  -H "),
            "{c}"
        );
        assert!(c.contains("-H 'X-Device-Id: POS-8F3A2C91'"));
        assert!(c.contains("-H \"Authorization: Attestation $ATTESTATION_TOKEN\""));
        assert!(!c.contains("att_f83k"));
        assert!(c.contains(r#"--data-raw '{"it'\''s":1}'"#), "{c}");
        let get = curl(&sample_exchange("status"));
        assert!(!get.contains("-X"), "{get}");
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        assert_eq!(token_placeholder("bearer"), "$BEARER_TOKEN");
    }

    #[test]
    fn curl_survives_a_real_shell() {
        // Run the command in sh with `curl` replaced by a function that prints its arguments:
        // hostile text must arrive as one literal argument, and the placeholder must expand.
        let body = "{\"a\":\"$(echo pwned)`echo x` \\\" '\"}";
        let mut e = sample_exchange("activate");
        e.method = "POST".into();
        e.request_body = Some(Captured::body(body.as_bytes()));
        e.request_headers
            .push(("Authorization".into(), "Bearer ey;echo pwned…".into()));
        let script = format!("curl() {{ printf '%s\\0' \"$@\"; }}\n{}", curl(&e));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("BEARER_TOKEN", "tok123")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let args: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split('\0')
            .map(str::to_string)
            .collect();
        assert!(
            args.contains(&"Authorization: Bearer tok123".to_string()),
            "{args:?}"
        );
        assert!(args.contains(&body.to_string()), "{args:?}");
        assert!(!args.iter().any(|a| a == "pwned" || a.contains("pwned\n")));
    }

    #[test]
    fn osc52_wraps_base64() {
        assert_eq!(osc52("hi"), "\x1b]52;c;aGk=\x07");
    }
}
