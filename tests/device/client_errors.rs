//! How the device HTTP client fails: each device-side fault answered by the sandbox with the
//! spec's error, `Retry-After` in both forms, a dead port, a server that never answers, a 2xx
//! the device cannot use, and how failures are logged.

use std::time::Duration;

use chrono::Utc;
use posemu_client::merchant::sandbox_claim;
use posemu_client::{
    DeviceFaults, DeviceIdentity, ExchangeLog, FaultHeader, HeaderSet, Transport, TransportConfig,
};
use posemu_profile::{builtin_named, DEFAULT_PROFILE};
use posemu_protocol::api::{ApiAnswer, ApiCall, CallError, Secret};
use posemu_sandbox::{FaultConfig, FaultRule, Latency, Sandbox, SandboxConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn identity() -> DeviceIdentity {
    posemu_runtime::profile_identity(&builtin_named(DEFAULT_PROFILE).unwrap()).unwrap()
}

fn transport(url: &str) -> Transport {
    Transport::new(url, TransportConfig::default()).unwrap()
}

async fn call_with(
    t: &Transport,
    faults: DeviceFaults,
    call: ApiCall,
    log: Option<&ExchangeLog>,
) -> Result<ApiAnswer, CallError> {
    let mut rng = StdRng::seed_from_u64(7);
    t.call(&identity(), &faults, &call, Utc::now(), &mut rng, log)
        .await
}

/// The status and message of a failed call.
fn http(r: Result<ApiAnswer, CallError>) -> (u16, String) {
    match r {
        Err(CallError::Http {
            status,
            error: Some(e),
            ..
        }) => {
            assert_eq!(e.code.len(), 4);
            (status, e.message)
        }
        other => panic!("expected an HTTP error with a body, got {other:?}"),
    }
}

fn drop_header(h: FaultHeader) -> DeviceFaults {
    DeviceFaults {
        drop_headers: HeaderSet::EMPTY.with(h),
        ..DeviceFaults::NONE
    }
}

fn malform(h: FaultHeader) -> DeviceFaults {
    DeviceFaults {
        malform_headers: HeaderSet::EMPTY.with(h),
        ..DeviceFaults::NONE
    }
}

/// A sandbox with the default device claimed, so attest can succeed.
async fn claimed_sandbox() -> (Sandbox, Transport) {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let t = transport(&sandbox.url());
    call_with(&t, DeviceFaults::NONE, ApiCall::PairingCode, None)
        .await
        .unwrap();
    sandbox_claim(&t, "POS-8F3A2C91", None).await.unwrap();
    (sandbox, t)
}

const ATTEST: ApiCall = ApiCall::Attest { clock_offset_ms: 0 };

#[tokio::test]
async fn every_device_fault_gets_the_documented_answer() {
    let (_sandbox, t) = claimed_sandbox().await;
    let attest = |f: DeviceFaults| call_with(&t, f, ATTEST, None);

    let skew = DeviceFaults {
        clock_skew_ms: 10 * 60 * 1000,
        ..DeviceFaults::NONE
    };
    assert_eq!(
        http(attest(skew).await),
        (401, "Timestamp outside allowed window".into())
    );
    let behind = DeviceFaults {
        clock_skew_ms: -6 * 60 * 1000,
        ..DeviceFaults::NONE
    };
    assert_eq!(
        http(attest(behind).await).1,
        "Timestamp outside allowed window"
    );
    let wrong = DeviceFaults {
        wrong_secret: true,
        ..DeviceFaults::NONE
    };
    assert_eq!(http(attest(wrong).await), (401, "Invalid signature".into()));

    let reuse = DeviceFaults {
        reuse_nonce: true,
        ..DeviceFaults::NONE
    };
    assert!(matches!(attest(reuse).await, Ok(ApiAnswer::Attest(_))));
    assert_eq!(
        http(attest(reuse).await),
        (401, "Nonce already used".into())
    );

    let cases = [
        (FaultHeader::DeviceId, 400, "X-Device-Id header is required"),
        (FaultHeader::UserAgent, 400, "User-Agent header is required"),
        (
            FaultHeader::ClientType,
            400,
            "X-Client-Type header is required",
        ),
        (FaultHeader::KeyId, 400, "X-Key-Id header is required"),
        (
            FaultHeader::Timestamp,
            400,
            "X-Timestamp header is required",
        ),
        (FaultHeader::Nonce, 400, "X-Nonce header is required"),
        (
            FaultHeader::Signature,
            400,
            "X-Signature header is required",
        ),
    ];
    for (h, status, message) in cases {
        assert_eq!(
            http(attest(drop_header(h)).await),
            (status, message.into()),
            "drop {h}"
        );
    }
    let cases = [
        (FaultHeader::DeviceId, 400, "X-Device-Id header is invalid"),
        (FaultHeader::UserAgent, 400, "User-Agent header is invalid"),
        (
            FaultHeader::ClientType,
            400,
            "X-Client-Type header is invalid",
        ),
        (FaultHeader::KeyId, 401, "Unknown or revoked identity key"),
        (FaultHeader::Timestamp, 400, "X-Timestamp header is invalid"),
        (FaultHeader::Nonce, 400, "X-Nonce header is invalid"),
        (FaultHeader::Signature, 400, "X-Signature header is invalid"),
    ];
    for (h, status, message) in cases {
        assert_eq!(
            http(attest(malform(h)).await),
            (status, message.into()),
            "malform {h}"
        );
    }
    // the device-header faults apply to the unsigned calls too
    assert_eq!(
        http(
            call_with(
                &t,
                drop_header(FaultHeader::ClientType),
                ApiCall::Status,
                None
            )
            .await
        ),
        (400, "X-Client-Type header is required".into())
    );

    // attestation auth (spec 3.2)
    let Ok(ApiAnswer::Attest(att)) = attest(DeviceFaults::NONE).await else {
        panic!("attest")
    };
    let keys = || ApiCall::Keys {
        token: Secret(att.attestation_token.clone()),
    };
    assert!(matches!(
        call_with(&t, DeviceFaults::NONE, keys(), None).await,
        Ok(ApiAnswer::Keys(_))
    ));
    for f in [
        drop_header(FaultHeader::Authorization),
        malform(FaultHeader::Authorization),
    ] {
        assert_eq!(
            http(call_with(&t, f, keys(), None).await),
            (401, "Attestation token is required".into())
        );
    }
    let forged = ApiCall::Keys {
        token: Secret("att_000000000000000000000000".into()),
    };
    assert_eq!(
        http(call_with(&t, DeviceFaults::NONE, forged, None).await),
        (401, "Attestation token is invalid or expired".into())
    );
    assert_eq!(
        http(call_with(&t, malform(FaultHeader::DeviceId), keys(), None).await),
        (400, "X-Device-Id header is invalid".into())
    );
}

#[tokio::test]
async fn activate_with_a_wrong_msk_or_failed_checks_is_refused() {
    let (_sandbox, t) = claimed_sandbox().await;
    let Ok(ApiAnswer::Attest(att)) = call_with(&t, DeviceFaults::NONE, ATTEST, None).await else {
        panic!("attest")
    };
    let token = Secret(att.attestation_token);
    let Ok(ApiAnswer::Keys(keys)) = call_with(
        &t,
        DeviceFaults::NONE,
        ApiCall::Keys {
            token: token.clone(),
        },
        None,
    )
    .await
    else {
        panic!("keys")
    };
    let zmk = builtin_named(DEFAULT_PROFILE).unwrap().zmk;
    let msk = *posemu_device::keyset::unwrap_key_set(&zmk, &keys)
        .unwrap()
        .msk
        .expose();
    let activate = |msk: [u8; 32], emv_ready: bool| ApiCall::Activate {
        token: token.clone(),
        msk: Secret(msk),
        checks: posemu_protocol::wire::ActivationChecks {
            emv_ready,
            keys_installed: true,
            network_ok: true,
        },
    };
    // The device stamps the KCV of the MSK it holds, so a wrong MSK is caught by it.
    assert_eq!(
        http(call_with(&t, DeviceFaults::NONE, activate([1; 32], true), None).await),
        (400, "key_kcv does not match MSK".into())
    );
    assert_eq!(
        http(call_with(&t, DeviceFaults::NONE, activate(msk, false), None).await),
        (422, "Activation checks failed".into())
    );
    assert!(matches!(
        call_with(&t, DeviceFaults::NONE, activate(msk, true), None).await,
        Ok(ApiAnswer::Activate(a)) if a.status == "activated"
    ));
}

#[tokio::test]
async fn retry_after_in_seconds_from_the_sandbox() {
    let faults = FaultConfig {
        seed: Some(1),
        rules: vec![FaultRule {
            route: "/pos/status".into(),
            error_status: Some(429),
            error_probability: 1.0,
            retry_after_secs: Some(7),
            ..FaultRule::default()
        }],
    };
    let sandbox = Sandbox::start(SandboxConfig {
        faults,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let t = transport(&sandbox.url());
    let log = ExchangeLog::default();
    match call_with(&t, DeviceFaults::NONE, ApiCall::Status, Some(&log)).await {
        Err(CallError::Http {
            status: 429,
            retry_after,
            error: Some(e),
        }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
            assert_eq!(e.code, "4029");
            let entry = log.last().unwrap();
            assert_eq!(entry.status, Some(429));
            assert_eq!(entry.response_header("retry-after"), Some("7"));
            assert_eq!(entry.trace_id.as_deref(), Some(e.trace_id.as_str()));
            assert!(entry.error.as_deref().unwrap().starts_with("HTTP 429 4029"));
        }
        other => panic!("{other:?}"),
    }
}

/// A one-shot HTTP server answering every connection with `response`.
async fn canned(response: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(response.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    url
}

fn http_response(status: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn retry_after_as_an_http_date_counts_from_the_servers_date() {
    // The server's clock is a day ahead of the device's: the wait must still be 120 s.
    let server_now = std::time::SystemTime::now() + Duration::from_secs(86_400);
    let extra = format!(
        "Date: {}\r\nRetry-After: {}\r\n",
        httpdate::fmt_http_date(server_now),
        httpdate::fmt_http_date(server_now + Duration::from_secs(120))
    );
    let url = canned(http_response("503 Service Unavailable", &extra, "")).await;
    let r = call_with(&transport(&url), DeviceFaults::NONE, ApiCall::Status, None).await;
    assert_eq!(
        r,
        Err(CallError::Http {
            status: 503,
            retry_after: Some(Duration::from_secs(120)),
            error: None
        })
    );
    assert!(r.unwrap_err().is_transient());
}

#[tokio::test]
async fn a_2xx_the_device_cannot_use_is_decode() {
    let url = canned(http_response("200 OK", "", "<html>hello</html>")).await;
    let t = transport(&url);
    let log = ExchangeLog::default();
    for call in [ApiCall::Bootstrap, ApiCall::Status, ATTEST] {
        match call_with(&t, DeviceFaults::NONE, call.clone(), Some(&log)).await {
            Err(CallError::Decode(m)) => assert!(m.starts_with(call.step().name()), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    let config = ApiCall::Config {
        token: Secret("att_x".into()),
        msk: Secret([0; 32]),
    };
    assert!(matches!(
        call_with(&t, DeviceFaults::NONE, config, None).await,
        Err(CallError::Decode(m)) if m.contains("envelope")
    ));
    let e = log.last().unwrap();
    assert_eq!(e.status, Some(200));
    assert_eq!(e.response_body.as_ref().unwrap().text, "<html>hello</html>");
    assert!(e.error.as_deref().unwrap().contains("unusable answer"));
    assert!(e.trace_id.is_none());
}

#[tokio::test]
async fn a_dead_port_is_a_network_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let log = ExchangeLog::default();
    match call_with(
        &transport(&url),
        DeviceFaults::NONE,
        ApiCall::Bootstrap,
        Some(&log),
    )
    .await
    {
        Err(e @ CallError::Network(_)) => {
            assert!(e.is_transient());
            assert!(e.to_string().to_lowercase().contains("connect"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let entry = log.last().unwrap();
    assert_eq!(entry.status, None);
    assert!(entry.response_body.is_none());
    assert!(entry.error.as_deref().unwrap().starts_with("network error"));
    assert_eq!(entry.request_header("X-Device-Id"), Some("POS-8F3A2C91"));
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Accept and hold connections without a word.
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            conns.push(s);
        }
    });
    let short = Duration::from_millis(200);
    let t = Transport::new(
        &url,
        TransportConfig {
            request_timeout: short,
            ..TransportConfig::default()
        },
    )
    .unwrap();
    let started = std::time::Instant::now();
    let r = call_with(&t, DeviceFaults::NONE, ApiCall::Status, None).await;
    assert_eq!(r, Err(CallError::Timeout(short)));
    assert!(started.elapsed() < Duration::from_secs(5));
    // the per-device fault overrides the transport's timeout
    let t = transport(&url);
    let f = DeviceFaults {
        request_timeout: Some(Duration::from_millis(150)),
        ..DeviceFaults::NONE
    };
    assert_eq!(
        call_with(&t, f, ApiCall::Status, None).await,
        Err(CallError::Timeout(Duration::from_millis(150)))
    );
    held.abort();
}

#[tokio::test]
async fn sandbox_latency_beyond_the_timeout_and_dropped_connections() {
    let faults = FaultConfig {
        seed: Some(1),
        rules: vec![
            FaultRule {
                route: "/pos/status".into(),
                latency_ms: Some(Latency::Fixed(2_000)),
                ..FaultRule::default()
            },
            FaultRule {
                route: "/pos/bootstrap".into(),
                drop_probability: 1.0,
                ..FaultRule::default()
            },
        ],
    };
    let sandbox = Sandbox::start(SandboxConfig {
        faults,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let t = transport(&sandbox.url());
    let f = DeviceFaults {
        request_timeout: Some(Duration::from_millis(150)),
        ..DeviceFaults::NONE
    };
    assert_eq!(
        call_with(&t, f, ApiCall::Status, None).await,
        Err(CallError::Timeout(Duration::from_millis(150)))
    );
    assert!(matches!(
        call_with(&t, DeviceFaults::NONE, ApiCall::Bootstrap, None).await,
        Err(CallError::Network(_))
    ));
}

#[tokio::test]
async fn an_unknown_device_is_told_so() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let t = transport(&sandbox.url());
    let stranger =
        DeviceIdentity::new("POS-00000000", "Viopay-POS/1.4.2 (x; y)", "k", [1; 32]).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let r = t
        .call(
            &stranger,
            &DeviceFaults::NONE,
            &ApiCall::Status,
            Utc::now(),
            &mut rng,
            None,
        )
        .await;
    match r {
        Err(CallError::Http {
            status: 404,
            error: Some(e),
            ..
        }) => {
            assert_eq!(e.message, "Device not found");
            assert_eq!(e.details.unwrap()["device_id"], "POS-00000000");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn derived_fleet_devices_and_separate_pools_work() {
    let sandbox = Sandbox::start(SandboxConfig {
        fleet: Some(posemu_sandbox::FleetSeed::new("posemu-demo")),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let shared = transport(&sandbox.url());
    let ua = posemu_client::SharedHeaders::fleet(reqwest::header::HeaderValue::from_static(
        "Viopay-POS/1.4.2 (Android 12; PAX-A920)",
    ));
    let mut tasks = Vec::new();
    for i in 1..=20u32 {
        let id = posemu_protocol::provision::fleet_device_id("F0", i);
        let ident = DeviceIdentity::derived_with("posemu-demo", &id, &ua).unwrap();
        let t = if i % 2 == 0 {
            shared.separate_pool().unwrap()
        } else {
            shared.clone()
        };
        // `&mut rand::rng()` inline: the future does not hold it, so it can be spawned.
        let fut = t.call(
            &ident,
            &DeviceFaults::NONE,
            &ApiCall::Bootstrap,
            Utc::now(),
            &mut rand::rng(),
            None,
        );
        tasks.push(tokio::spawn(fut));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Ok(ApiAnswer::Bootstrap(_))));
    }
}

#[tokio::test]
async fn https_to_a_plain_http_port_fails_cleanly() {
    // Exercises the TLS configuration: the handshake meets a plain HTTP answer and must fail
    // as a network error, not hang or panic.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s
                .write_all(http_response("200 OK", "", "{}").as_bytes())
                .await;
        }
    });
    match call_with(
        &transport(&https),
        DeviceFaults::NONE,
        ApiCall::Status,
        None,
    )
    .await
    {
        Err(CallError::Network(m)) => assert!(!m.is_empty()),
        other => panic!("{other:?}"),
    }
}
