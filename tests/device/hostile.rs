//! The device side against hostile servers: a raw-tokio HTTP server on 127.0.0.1:0 that answers
//! crafted bytes, and the real binary, client and machine facing it.

use std::process::{Command, Output};
use std::time::Duration;

use crate::hostile_server::*;

pub fn posemu(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_posemu"))
        .args(args)
        .env("POSEMU_HOME", home)
        .output()
        .expect("the binary runs")
}

async fn activate(home: &std::path::Path, args: &[&str]) -> Output {
    let (home, args): (std::path::PathBuf, Vec<String>) = (
        home.to_path_buf(),
        args.iter().map(|s| s.to_string()).collect(),
    );
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        posemu(&home, &args)
    })
    .await
    .unwrap()
}

fn assert_no_control(text: &str) {
    for line in text.lines() {
        assert!(
            !line.chars().any(char::is_control),
            "a control character reached the terminal: {line:?}"
        );
    }
}

/// 9: a pairing code that is an escape sequence is an unusable answer; nothing raw is printed.
#[tokio::test(flavor = "multi_thread")]
async fn an_escape_sequence_as_pairing_code_never_reaches_the_terminal() {
    let evil = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J";
    let server = Hostile::start(move |s| match s.path.as_str() {
        "/pos/bootstrap" => bootstrap_ok(),
        "/pos/pairing-code" => json_answer(
            200,
            &serde_json::json!({"pairing_code": evil, "expires_in_sec": 300}),
        ),
        _ => json_answer(404, &serde_json::json!({})),
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let o = activate(home.path(), &["activate", "--server", &server.url]).await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_no_control(&out);
    assert!(out.contains("pairing-code answer unusable"), "{out}");
    assert!(!out.contains("✓ pairing code"), "{out}");
    assert_eq!(
        server.count("/pos/pairing-code"),
        1,
        "an unusable answer is not retried"
    );
    assert!(server
        .seen
        .lock()
        .iter()
        .all(|s| s.method == "POST" && !s.head.is_empty()));
}

/// 9: error messages, codes and trace ids a server chose are escaped in text output.
#[tokio::test(flavor = "multi_thread")]
async fn server_error_texts_are_escaped() {
    let server = Hostile::start(|_| {
        json_answer(
            404,
            &serde_json::json!({"error": {"code": "40\u{1b}[31m", "message": "Device \u{1b}]0;pwned\u{7} not found\u{9b}2J",
                "trace_id": "\u{1b}[2Jtrace"}}),
        )
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let o = activate(home.path(), &["activate", "--server", &server.url]).await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_no_control(&out);
    assert!(out.contains("Device \\e]0;pwned\\u{7} not found"), "{out}");
    assert!(out.contains("trace id \\e[2Jtrace"), "{out}");
}

fn identity() -> posemu_client::DeviceIdentity {
    posemu_runtime::profile_identity(
        &posemu_profile::builtin_named(posemu_profile::DEFAULT_PROFILE).unwrap(),
    )
    .unwrap()
}

async fn call(
    url: &str,
    call: posemu_protocol::api::ApiCall,
) -> Result<posemu_protocol::api::ApiAnswer, posemu_protocol::api::CallError> {
    let t = posemu_client::Transport::new(url, posemu_client::TransportConfig::default()).unwrap();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
    t.call(
        &identity(),
        &posemu_client::DeviceFaults::NONE,
        &call,
        chrono::Utc::now(),
        &mut rng,
        None,
    )
    .await
}

/// 10: `Retry-After: 18446744073709551615` on a 429, through the real client into the machine:
/// the next poll waits the documented maximum, not ~0 ms (nor forever on keys).
#[tokio::test]
async fn an_overflowing_retry_after_is_clamped_from_wire_to_timer() {
    use posemu_device::poll::MAX_RETRY_AFTER;
    use posemu_device::{update, DeviceConfig, DeviceEvent, DeviceState, Effect, Now, Timer};
    use posemu_protocol::api::{ApiAnswer, ApiCall};
    use posemu_protocol::wire::PairingCodeResponse;

    let server = Hostile::start(|_| {
        answer(
            429,
            &[("Retry-After", "18446744073709551615")],
            br#"{"error":{"code":"4029","message":"slow down","trace_id":"x"}}"#,
        )
    })
    .await;
    let result = call(&server.url, ApiCall::Status).await;
    assert_eq!(result.as_ref().err().and_then(|e| e.status()), Some(429));

    let mut s = DeviceState::new(DeviceConfig::new(
        "POS-8F3A2C91",
        &server.url,
        "1.4.2",
        [0; 32],
    ));
    let mut now = Now {
        mono_ms: 1_000,
        wall_ms: 1_765_635_930_000,
        random: 0,
    };
    let call_id = |fx: &[Effect]| {
        fx.iter()
            .find_map(|e| match e {
                Effect::Call { id, .. } => Some(*id),
                _ => None,
            })
            .expect("a call")
    };
    let fx = update(&mut s, now, DeviceEvent::Start);
    let boot = posemu_protocol::wire::BootstrapResponse {
        status: "ok".into(),
        server_time: "2025-12-13T14:25:30Z".into(),
        min_supported_version: "1.3.5".into(),
    };
    let fx = update(
        &mut s,
        now,
        DeviceEvent::Answer {
            call: call_id(&fx),
            result: Ok(ApiAnswer::Bootstrap(boot)),
        },
    );
    let code = PairingCodeResponse {
        pairing_code: "K7M3NP".into(),
        expires_in_sec: 300,
    };
    update(
        &mut s,
        now,
        DeviceEvent::Answer {
            call: call_id(&fx),
            result: Ok(ApiAnswer::PairingCode(code)),
        },
    );
    now.mono_ms = s.poll_due_ms.unwrap();
    let fx = update(&mut s, now, DeviceEvent::Timer(Timer::Poll));
    let fx = update(
        &mut s,
        now,
        DeviceEvent::Answer {
            call: call_id(&fx),
            result: result.map(|_| unreachable!()),
        },
    );
    let wait = fx.iter().find_map(|e| match e {
        Effect::Wait {
            timer: Timer::Poll,
            after,
        } => Some(*after),
        _ => None,
    });
    assert_eq!(wait, Some(MAX_RETRY_AFTER));
    assert_eq!(
        s.poll_due_ms,
        Some(now.mono_ms + MAX_RETRY_AFTER.as_millis() as u64)
    );
    let _ = Duration::ZERO;
}

/// 13: the one auto-claim: a claim for a code the device no longer shows sends nothing; a 409
/// from the helper means "not current any more", not a failure; other errors stay errors.
#[tokio::test]
async fn the_auto_claim_helper_claims_once_and_knows_stale_codes() {
    use posemu_client::merchant::{claim_code, ClaimOutcome, ClaimVia};
    let server = Hostile::start(|s| {
        if s.path.ends_with("/POS-0000000A/claim") {
            json_answer(
                409,
                &serde_json::json!({"error": {"code": "4009", "message": "No pending pairing code", "trace_id": "t"}}),
            )
        } else if s.path.ends_with("/POS-0000000B/claim") {
            json_answer(500, &serde_json::json!({}))
        } else {
            json_answer(
                200,
                &serde_json::json!({"status": "claimed", "device_id": "POS-0000000C", "pairing_code": "K7M3NP"}),
            )
        }
    })
    .await;
    let t = posemu_client::Transport::new(&server.url, posemu_client::TransportConfig::default())
        .unwrap();
    let via = ClaimVia::SandboxHelper;
    let claim = |id: &'static str, current: bool| {
        let (t, via) = (t.clone(), via.clone());
        async move { claim_code(&via, &t, id, "K7M3NP", Duration::ZERO, || current, None).await }
    };
    assert_eq!(
        claim("POS-0000000C", false).await,
        Ok(ClaimOutcome::NotCurrent(None))
    );
    assert_eq!(server.seen.lock().len(), 0, "a stale code is not claimed");
    assert_eq!(claim("POS-0000000C", true).await, Ok(ClaimOutcome::Claimed));
    assert!(matches!(
        claim("POS-0000000A", true).await,
        Ok(ClaimOutcome::NotCurrent(Some(e))) if e.status() == Some(409)
    ));
    assert_eq!(
        claim("POS-0000000B", true).await.unwrap_err().status(),
        Some(500)
    );
}

/// 15: a client relies on the HTTP status of sandbox helpers alone, and reads no field it does
/// not need from any answer: minimal answers work, extra fields are ignored.
#[tokio::test]
async fn minimal_answers_are_enough() {
    use posemu_client::merchant::{
        claim_code, sandbox_claim, sandbox_expire_code, sandbox_reset, ClaimOutcome, ClaimVia,
    };
    use posemu_protocol::api::{ApiAnswer, ApiCall};
    let server = Hostile::start(|s| match s.path.as_str() {
        "/pos/bootstrap" => json_answer(
            200,
            &serde_json::json!({"server_time": "2025-12-13T14:25:30Z", "min_supported_version": "1.3.5", "extra": [1]}),
        ),
        "/pos/status" => json_answer(
            200,
            &serde_json::json!({"is_claimed": false, "pairing_code_status": "pending"}),
        ),
        "/pos/attest" => json_answer(200, &serde_json::json!({"attestation_token": "att_x"})),
        p if p.ends_with("/claim") => json_answer(
            200,
            &serde_json::json!({"status": "claimed", "device_id": "POS-8F3A2C91"}),
        ),
        p if p.ends_with("/expire-code") => answer(200, &[], b""),
        _ => answer(204, &[], b""),
    })
    .await;
    let r = call(&server.url, ApiCall::Bootstrap).await;
    assert!(
        matches!(r, Ok(ApiAnswer::Bootstrap(ref b)) if b.server_time.starts_with("2025")),
        "{r:?}"
    );
    let r = call(&server.url, ApiCall::Status).await;
    assert!(
        matches!(r, Ok(ApiAnswer::Status(ref s)) if !s.is_claimed),
        "{r:?}"
    );
    let r = call(&server.url, ApiCall::Attest { clock_offset_ms: 0 }).await;
    assert!(
        matches!(r, Ok(ApiAnswer::Attest(ref a)) if a.expires_in_sec == 300),
        "{r:?}"
    );

    let t = posemu_client::Transport::new(&server.url, posemu_client::TransportConfig::default())
        .unwrap();
    let id = "POS-8F3A2C91";
    let claimed = sandbox_claim(&t, id, None).await.unwrap();
    assert_eq!(claimed.pairing_code, "");
    let outcome = claim_code(
        &ClaimVia::SandboxHelper,
        &t,
        id,
        "K7M3NP",
        Duration::ZERO,
        || true,
        None,
    );
    assert_eq!(outcome.await, Ok(ClaimOutcome::Claimed));
    assert!(sandbox_expire_code(&t, id, None).await.is_ok());
    assert_eq!(
        sandbox_reset(&t, id, None).await,
        Ok(serde_json::Value::Null)
    );
}

/// 14: credentials in `--server` go out as basic auth and nowhere else: not in `--json`
/// output, saved progress, exchange URLs, HAR or curl; cookies and big bodies are redacted; a
/// HAR file is 0600.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_in_the_server_url_are_sent_never_shown() {
    let big = format!(
        r#"{{"access_token":"eyJSECRETSECRETSECRET","pad":"{}"}}"#,
        "x".repeat(600 * 1024)
    );
    let server = Hostile::start(move |s| match s.path.as_str() {
        "/pos/bootstrap" => {
            let mut a = bootstrap_ok();
            let at = a.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
            a.splice(
                at..at,
                b"Set-Cookie: sid=COOKIESECRET; Path=/\r\n".iter().copied(),
            );
            a
        }
        "/pos/pairing-code" => answer(200, &[("Content-Type", "application/json")], big.as_bytes()),
        _ => json_answer(404, &serde_json::json!({})),
    })
    .await;
    let with_creds = server.url.replace("http://", "http://alice:s3cretpw@");
    let home = tempfile::tempdir().unwrap();
    let o = activate(
        home.path(),
        &["activate", "--json", "--server", &with_creds],
    )
    .await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("s3cretpw"), "{out}");
    assert!(out.contains(&server.url), "{out}");
    for f in walk(home.path()) {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        assert!(!text.contains("s3cretpw"), "{}: {text}", f.display());
    }
    let heads: Vec<String> = server.seen.lock().iter().map(|s| s.head.clone()).collect();
    // alice:s3cretpw
    assert!(
        heads[0].contains("authorization: Basic YWxpY2U6czNjcmV0cHc="),
        "{heads:?}"
    );

    // the client's log, HAR and curl
    let t = posemu_client::Transport::new(&with_creds, posemu_client::TransportConfig::default())
        .unwrap();
    let log = posemu_client::ExchangeLog::new(8);
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
    for c in [
        posemu_protocol::api::ApiCall::Bootstrap,
        posemu_protocol::api::ApiCall::PairingCode,
    ] {
        let _ = t
            .call(
                &identity(),
                &posemu_client::DeviceFaults::NONE,
                &c,
                chrono::Utc::now(),
                &mut rng,
                Some(&log),
            )
            .await;
    }
    let entries = log.entries();
    assert_eq!(entries.len(), 2);
    let har_path = home.path().join("x.har");
    posemu_client::export::write_har(&har_path, entries.iter().map(|e| e.as_ref())).unwrap();
    let har = std::fs::read_to_string(&har_path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&har_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let curl = posemu_client::export::curl(&entries[0]);
    for text in [&har, &curl, &format!("{entries:?}")] {
        for secret in [
            "s3cretpw",
            "COOKIESECRET",
            "SECRETSECRET",
            "YWxpY2U6czNjcmV0cHc",
        ] {
            assert!(
                !text.contains(secret),
                "{secret} in {}",
                &text[..text.len().min(3000)]
            );
        }
    }
    assert!(har.contains("sid=…"));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
