use super::*;
use crate::device_faults::HeaderSet;
use crate::transport::TransportConfig;
use posemu_protocol::attest::{is_valid_nonce, parse_signature, verify_v1};
use posemu_protocol::wire::ActivationChecks;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Duration;

fn setup() -> (Transport, DeviceIdentity) {
    let t = Transport::new("http://127.0.0.1:9", TransportConfig::default()).unwrap();
    let id = DeviceIdentity::new(
        "POS-8F3A2C91",
        "Viopay-POS/1.4.2 (Android 12; PAX-A920)",
        "device-id-key-2025-01",
        hex::decode("8F3A2C91".repeat(8))
            .unwrap()
            .try_into()
            .unwrap(),
    )
    .unwrap();
    (t, id)
}

fn now() -> DateTime<Utc> {
    posemu_protocol::clock::parse_rfc3339("2025-12-13T14:25:30Z").unwrap()
}

fn header<'a>(p: &'a Prepared, name: &str) -> Option<&'a str> {
    p.out.headers.get(name).map(|v| v.to_str().unwrap())
}

#[test]
fn attest_is_signed_as_the_spec_says() {
    let (t, id) = setup();
    let mut rng = StdRng::seed_from_u64(1);
    let call = ApiCall::Attest {
        clock_offset_ms: -30_000,
    };
    let p = prepare(&t, &id, &DeviceFaults::NONE, &call, now(), &mut rng, true);
    assert_eq!(p.out.url, "http://127.0.0.1:9/pos/attest");
    assert_eq!(p.out.method, Method::POST);
    assert_eq!(header(&p, "x-client-type"), Some("pos"));
    assert_eq!(header(&p, "x-timestamp"), Some("2025-12-13T14:25:00Z"));
    let nonce = header(&p, "x-nonce").unwrap();
    assert!(is_valid_nonce(nonce) && nonce.len() == NONCE_LEN);
    let s = p.signing_string.as_deref().unwrap();
    assert_eq!(
        s,
        format!("POS-8F3A2C91\ndevice-id-key-2025-01\n2025-12-13T14:25:00Z\n{nonce}")
    );
    let sig = parse_signature(header(&p, "x-signature").unwrap()).unwrap();
    assert!(verify_v1(id.identity_secret().expose(), s, &sig));
    assert!(p.out.body.is_none() && header(&p, "authorization").is_none());
    // two calls, two nonces
    let p2 = prepare(&t, &id, &DeviceFaults::NONE, &call, now(), &mut rng, false);
    assert_ne!(header(&p2, "x-nonce"), Some(nonce));
    assert!(p2.signing_string.is_none(), "not kept without a log");
}

#[test]
fn faults_shape_the_request() {
    let (t, id) = setup();
    let mut rng = StdRng::seed_from_u64(1);
    let call = ApiCall::Attest { clock_offset_ms: 0 };
    let f = DeviceFaults {
        clock_skew_ms: 600_000,
        wrong_secret: true,
        reuse_nonce: true,
        drop_headers: HeaderSet::EMPTY.with(FaultHeader::ClientType),
        malform_headers: HeaderSet::EMPTY
            .with(FaultHeader::UserAgent)
            .with(FaultHeader::ClientType),
        request_timeout: Some(Duration::from_millis(5)),
    };
    let p = prepare(&t, &id, &f, &call, now(), &mut rng, true);
    assert_eq!(header(&p, "x-timestamp"), Some("2025-12-13T14:35:30Z"));
    assert_eq!(header(&p, "x-nonce"), Some(REUSED_NONCE));
    assert_eq!(header(&p, "x-client-type"), None, "drop wins");
    assert_eq!(header(&p, "user-agent"), Some("posemu-malformed/1.0"));
    let sig = parse_signature(header(&p, "x-signature").unwrap()).unwrap();
    let s = p.signing_string.as_deref().unwrap();
    assert!(!verify_v1(id.identity_secret().expose(), s, &sig));
    assert_eq!(p.out.timeout, Some(Duration::from_millis(5)));
}

#[test]
fn activate_seals_the_checks_under_the_msk() {
    let (t, id) = setup();
    let mut rng = StdRng::seed_from_u64(1);
    let msk: Key = core::array::from_fn(|i| i as u8);
    let call = ApiCall::Activate {
        token: Secret("att_abcdefghijklmnopqrstuvwx".into()),
        msk: Secret(msk),
        checks: ActivationChecks::ALL_OK,
    };
    let p = prepare(&t, &id, &DeviceFaults::NONE, &call, now(), &mut rng, true);
    assert_eq!(
        header(&p, "authorization"),
        Some("Attestation att_abcdefghijklmnopqrstuvwx")
    );
    assert!(p.out.headers["authorization"].is_sensitive());
    assert_eq!(header(&p, "content-type"), Some("application/json"));
    let env = Envelope::from_json(p.out.body.as_deref().unwrap()).unwrap();
    assert_eq!(env.key_kcv(), Some("377822"));
    let plain = open(&msk, &env).unwrap();
    assert_eq!(
        plain,
        br#"{"emv_ready":true,"keys_installed":true,"network_ok":true}"#
    );
    assert_eq!(p.request_plaintext.as_deref(), Some(&plain[..]));
}

fn incoming(status: u16, body: &[u8]) -> Incoming {
    Incoming {
        status: reqwest::StatusCode::from_u16(status).unwrap(),
        version: reqwest::Version::HTTP_11,
        headers: HeaderMap::new(),
        body: body.to_vec(),
    }
}

#[test]
fn unusable_2xx_answers_are_decode_errors() {
    let calls = super::prop::calls();
    for call in &calls {
        for body in [
            &b""[..],
            b"garbage",
            b"{}",
            b"[1,2]",
            b"{\"format\":\"TR31-DATA\"}",
        ] {
            let (r, _) = decode(
                &Expect::of(call),
                call.step().name(),
                &incoming(200, body),
                now(),
                true,
            );
            match r {
                Err(CallError::Decode(m)) => assert!(m.starts_with(call.step().name()), "{m}"),
                other => panic!("{} {:?}: {other:?}", call.step().name(), body),
            }
        }
    }
}

#[test]
fn envelopes_under_another_key_are_decode_errors() {
    let mut rng = StdRng::seed_from_u64(1);
    let env = seal_single(&[1u8; 32], b"{\"a\":1}", &mut rng);
    let body = serde_json::to_vec(&env).unwrap();
    let call = ApiCall::Config {
        token: Secret("t".into()),
        msk: Secret([2u8; 32]),
    };
    let (r, p) = decode(
        &Expect::of(&call),
        "config",
        &incoming(200, &body),
        now(),
        true,
    );
    assert!(
        matches!(r, Err(CallError::Decode(ref m)) if m.contains("key_kcv")),
        "{r:?}"
    );
    assert!(p.is_none());
    let call = ApiCall::Config {
        token: Secret("t".into()),
        msk: Secret([1u8; 32]),
    };
    let (r, p) = decode(
        &Expect::of(&call),
        "config",
        &incoming(200, &body),
        now(),
        true,
    );
    assert_eq!(r, Ok(ApiAnswer::Config(serde_json::json!({"a": 1}))));
    assert_eq!(p.unwrap().text, "{\"a\":1}");
}

#[test]
fn non_2xx_is_http_even_with_a_garbage_body() {
    let (r, _) = decode(
        &Expect::Status,
        "status",
        &incoming(503, b"\xff\xfe"),
        now(),
        true,
    );
    assert_eq!(
        r,
        Err(CallError::Http {
            status: 503,
            retry_after: None,
            error: None
        })
    );
}
