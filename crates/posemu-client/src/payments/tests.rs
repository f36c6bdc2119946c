//! The request builder against the spec 7.13 vectors, the answer decoder, and one real
//! exchange with a small HTTP server on 127.0.0.1 that checks what it receives like the
//! sandbox would.

use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::export::{curl, har_string};
use crate::transport::TransportConfig;
use posemu_protocol::api::Secret;
use posemu_protocol::envelope::seal_single;
use posemu_protocol::payments::validate::open_request_envelope;
use posemu_protocol::payments::wire::CardData;
use posemu_protocol::payments::{
    parse_signature, string_to_sign, verify, Charge, ChargeRequest, EntryMode, Money,
};

const BODY: &str = r#"{"format":"TR31-DATA","ciphertext":"829A299C9D726AB3137185B1EF9F4E89AFE528657F92ECD0DDEB9D0590311A3EF0A0FD2BFCFE00842855B5848EBF8A1710E87B6454788E87005EADE3BB60FB2A7D0214B6C39A37932C5B6437D874D46A3B4B9388780AE20C7261F3BD620577AB7FD85A0B977585551E7F7887D32EA28E67CD975C70CEE8043A3828E0D4E78BC5A543A0DDA5C5B6BAE987378A97CD8F62C5128B7BCF1E39B01F4BEBDDC4AC94B118AB48CFCCB3EFA6185B949DF7AC4F9FD6670FFA7703B0B1F1EAE42E92BF75EB70A5EC5F568E80663D48B9ABB9AAFBF2","initialization_vector":"A0A1A2A3A4A5A6A7A8A9AAABACADAEAF","mode":"CBC","key_kcv":"377822"}"#;

fn key(start: u8) -> Key {
    std::array::from_fn(|i| start + i as u8)
}

fn identity() -> DeviceIdentity {
    DeviceIdentity::new(
        "POS-8F3A2C91",
        "Viopay-POS/1.4.2 (Android 12; PAX-A920)",
        "device-id-key-2025-01",
        [7; 32],
    )
    .unwrap()
}

fn transport(base: &str) -> Transport {
    Transport::new(base, TransportConfig::default()).unwrap()
}

fn vector_charge() -> ChargeRequest {
    ChargeRequest {
        amount: Money::new(1500, "EUR"),
        tip: Some(Money::new(150, "EUR")),
        entry_mode: EntryMode::Chip,
        card: CardData {
            pan: "4242424242424242".into(),
            exp_month: 12,
            exp_year: 2030,
        },
        pin_block: None,
        reference: Some("ORDER-1001".into()),
        allow_partial_approval: None,
    }
}

fn call(request: PayRequest) -> PayCall {
    PayCall {
        request,
        idempotency_key: Some("0f8fad5b-d9cb-469f-a165-70867728950e".into()),
        terminal_id: "TID-004812".into(),
        key_id: "hmac-key-2025-01".into(),
        mac_key: Secret(key(0x20)),
        msk: Secret(key(0x00)),
        clock_offset_ms: 0,
    }
}

fn stamp(timestamp: &str, nonce: &str) -> Stamp {
    Stamp {
        timestamp: timestamp.into(),
        nonce: nonce.into(),
        iv: std::array::from_fn(|i| 0xA0 + i as u8),
    }
}

#[test]
fn the_charge_vector_of_7_13_through_the_request_builder() {
    let p = build(
        &transport("http://127.0.0.1:9"),
        &identity(),
        &DeviceFaults::NONE,
        &call(PayRequest::Charge(vector_charge())),
        &stamp("2025-12-13T14:30:00Z", "chargenonce001"),
    );
    assert_eq!(String::from_utf8(p.body.clone()).unwrap(), BODY);
    assert_eq!(p.body.len(), 545);
    assert_eq!(
        p.out.body.as_deref(),
        Some(BODY.as_bytes()),
        "sends what it signed"
    );
    assert_eq!(
        p.body_sha256,
        "a696e31f57176355a42f308d08ed8250d1abfd1cbd04ad15db8c5905405fbffe"
    );
    assert_eq!(
        p.string_to_sign,
        "TID-004812\nhmac-key-2025-01\n2025-12-13T14:30:00Z\nchargenonce001\nPOST\n/pos/charge\na696e31f57176355a42f308d08ed8250d1abfd1cbd04ad15db8c5905405fbffe"
    );
    for (name, value) in [
        (
            "x-signature",
            "v1=rbnorETwJqXIrO8qOQZdD0am8TVEuas8ykET2r2lMG4=",
        ),
        ("x-terminal-id", "TID-004812"),
        ("x-key-id", "hmac-key-2025-01"),
        ("x-timestamp", "2025-12-13T14:30:00Z"),
        ("x-nonce", "chargenonce001"),
        ("user-agent", "Viopay-POS/1.4.2 (Android 12; PAX-A920)"),
        ("x-client-type", "pos"),
        ("content-type", "application/json"),
        ("idempotency-key", "0f8fad5b-d9cb-469f-a165-70867728950e"),
    ] {
        assert_eq!(p.header(name), Some(value), "{name}");
    }
    assert!(p.header("x-device-id").is_none());
    assert_eq!(p.url(), "http://127.0.0.1:9/pos/charge");
    let shown = p.redacted_plaintext.as_deref().unwrap();
    assert!(shown.contains("424242******4242") && !shown.contains("4242424242424242"));
    assert!(!shown.contains("2030"), "{shown}");
}

#[test]
fn the_cancel_vector_signs_the_empty_body_and_sends_no_key() {
    let p = build(
        &transport("http://127.0.0.1:9"),
        &identity(),
        &DeviceFaults::NONE,
        &call(PayRequest::Cancel {
            charge_id: "ch_4fR9kT2mXq7LbN3vZp8sWc1D".into(),
            reverse: false,
        }),
        &stamp("2025-12-13T14:31:00Z", "cancelnonce001"),
    );
    assert!(p.body.is_empty() && p.out.body.is_none());
    assert_eq!(
        p.header("x-signature"),
        Some("v1=RSoBHHrE+7adSeX2pOIzg1Im+lx4q5CFS0OhMxbrT/c=")
    );
    assert!(p.header("idempotency-key").is_none());
    assert!(p.header("content-type").is_none());
    assert!(p.redacted_plaintext.is_none());
}

#[test]
fn a_base_url_prefix_is_part_of_the_signed_path_and_pin_blocks_are_hidden() {
    let mut req = vector_charge();
    req.pin_block = Some("0CFE7172884A7E0970A6DB5A6D585969".into());
    let p = build(
        &transport("http://127.0.0.1:9/viopay/"),
        &identity(),
        &DeviceFaults::NONE,
        &call(PayRequest::Refund {
            charge_id: "ch_1".into(),
            request: serde_json::from_value(json!({"amount": {"value": "5"}})).unwrap(),
        }),
        &stamp("2025-12-13T14:31:00Z", "refundnonce001"),
    );
    assert_eq!(p.path, "/viopay/pos/charge/ch_1/refund");
    assert!(p
        .string_to_sign
        .contains("\n/viopay/pos/charge/ch_1/refund\n"));
    let c = build(
        &transport("http://127.0.0.1:9"),
        &identity(),
        &DeviceFaults::NONE,
        &call(PayRequest::Charge(req)),
        &stamp("2025-12-13T14:31:00Z", "pinnonce00001"),
    );
    let shown = c.redacted_plaintext.unwrap();
    assert!(
        shown.contains(r#""pin_block":"***""#) && !shown.contains("0CFE71"),
        "{shown}"
    );
}

#[test]
fn every_request_draws_a_new_nonce_iv_and_signature_and_adds_the_clock_offset() {
    let mut rng = StdRng::seed_from_u64(3);
    let now = posemu_protocol::clock::parse_rfc3339("2025-12-13T14:30:00Z").unwrap();
    let mut c = call(PayRequest::Charge(vector_charge()));
    c.clock_offset_ms = -60_000;
    let (t, id) = (transport("http://127.0.0.1:9"), identity());
    let a = build(
        &t,
        &id,
        &DeviceFaults::NONE,
        &c,
        &Stamp::draw(now, c.clock_offset_ms, &DeviceFaults::NONE, &mut rng),
    );
    let b = build(
        &t,
        &id,
        &DeviceFaults::NONE,
        &c,
        &Stamp::draw(now, c.clock_offset_ms, &DeviceFaults::NONE, &mut rng),
    );
    assert_eq!(a.header("x-timestamp"), Some("2025-12-13T14:29:00Z"));
    assert_ne!(a.header("x-nonce"), b.header("x-nonce"));
    assert_ne!(a.body, b.body, "fresh IV");
    assert_ne!(a.header("x-signature"), b.header("x-signature"));
    assert_eq!(a.header("idempotency-key"), b.header("idempotency-key"));
}

#[test]
fn device_faults_reach_payment_requests() {
    let now = posemu_protocol::clock::parse_rfc3339("2025-12-13T14:30:00Z").unwrap();
    let f = DeviceFaults {
        clock_skew_ms: 600_000,
        wrong_secret: true,
        reuse_nonce: true,
        drop_headers: crate::HeaderSet::EMPTY.with(FaultHeader::ClientType),
        malform_headers: crate::HeaderSet::EMPTY.with(FaultHeader::Signature),
        request_timeout: None,
    };
    let c = call(PayRequest::Charge(vector_charge()));
    let st = Stamp::draw(now, 0, &f, &mut StdRng::seed_from_u64(1));
    assert_eq!(st.timestamp, "2025-12-13T14:40:00Z");
    assert_eq!(st.nonce, REUSED_NONCE);
    let p = build(&transport("http://127.0.0.1:9"), &identity(), &f, &c, &st);
    assert!(p.header("x-client-type").is_none());
    assert_eq!(
        p.header("x-signature"),
        Some(FaultHeader::Signature.malformed_value())
    );
    let f = DeviceFaults {
        wrong_secret: true,
        ..DeviceFaults::NONE
    };
    let p = build(&transport("http://127.0.0.1:9"), &identity(), &f, &c, &st);
    let sig = parse_signature(p.header("x-signature").unwrap()).unwrap();
    assert!(
        !verify(&key(0x20), &p.string_to_sign, &sig),
        "signed with wrong bytes"
    );
}

fn charge_json() -> serde_json::Value {
    json!({
        "charge_id": "ch_4fR9kT2mXq7LbN3vZp8sWc1D", "terminal_id": "TID-004812",
        "merchant_id": "m", "status": "approved",
        "amount": {"value": "1500", "currency": "EUR"}, "tip": {"value": "150", "currency": "EUR"},
        "total": {"value": "1650", "currency": "EUR"},
        "approved_amount": {"value": "1650", "currency": "EUR"},
        "partial_approval": false, "refunded_amount": {"value": "0", "currency": "EUR"},
        "entry_mode": "chip", "card": {"brand": "visa", "masked_pan": "424242******4242", "last4": "4242"},
        "cvm": "none", "auth_code": "K7Q2ZD", "decline_code": null, "reference": "ORDER-1001",
        "gateway": {"acquirer": "posemu-sandbox", "response_code": "00", "rrn": "534712000123",
                    "stan": "000001", "pos_entry_mode": "05"},
        "settlement": {"status": "pending", "batch_id": null, "settled_at": null},
        "refunds": [], "created_at": "2025-12-13T14:30:00Z", "cancelled_at": null
    })
}

fn sealed(msk: &Key, v: &serde_json::Value) -> Vec<u8> {
    let env = seal_single(msk, v.to_string().as_bytes(), &mut StdRng::seed_from_u64(1));
    serde_json::to_vec(&env).unwrap()
}

fn http_err() -> CallError {
    CallError::Network("unused".into())
}

#[test]
fn answers_are_checked_decrypted_and_parsed() {
    let msk = key(0);
    let body = sealed(&msk, &charge_json());
    let (r, plain) = decode("charge", &msk, false, 200, &body, http_err);
    match r {
        Ok(PayAnswer::Charge(c)) => assert_eq!(c.auth_code.as_deref(), Some("K7Q2ZD")),
        other => panic!("{other:?}"),
    }
    assert!(plain.unwrap().text.contains("K7Q2ZD"));
    // the wrong key: key_kcv says so
    let (r, _) = decode("charge", &key(1), false, 200, &body, http_err);
    assert!(
        matches!(r, Err(CallError::Decode(ref m)) if m.contains("key_kcv")),
        "{r:?}"
    );
    // no key_kcv at all
    let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v.as_object_mut().unwrap().remove("key_kcv");
    let (r, _) = decode(
        "charge",
        &msk,
        false,
        200,
        v.to_string().as_bytes(),
        http_err,
    );
    assert!(
        matches!(r, Err(CallError::Decode(ref m)) if m.contains("no key_kcv")),
        "{r:?}"
    );
    // a refund where a charge was expected, and garbage
    for b in [
        &sealed(&msk, &json!({"refund_id": "re_1"}))[..],
        b"",
        b"{}",
        b"[]",
        b"\xff",
    ] {
        let (r, _) = decode("charge", &msk, false, 200, b, http_err);
        assert!(
            matches!(r, Err(CallError::Decode(ref m)) if m.starts_with("charge")),
            "{r:?}"
        );
    }
    // non-2xx is the caller's HTTP error, whatever the body
    let (r, _) = decode("charge", &msk, false, 504, b"garbage", || CallError::Http {
        status: 504,
        retry_after: None,
        error: None,
    });
    assert_eq!(r.unwrap_err().status(), Some(504));
}

/// One HTTP/1.1 exchange on 127.0.0.1: records the request (head and body) and answers
/// `status` with `body`.
async fn one_shot_server(
    status: u16,
    answer: Vec<u8>,
) -> (String, Arc<Mutex<Option<(String, Vec<u8>)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(None));
    let keep = seen.clone();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head, body) = loop {
            let n = sock.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..i]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                while buf.len() < i + 4 + len {
                    let n = sock.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                break (head, buf[i + 4..i + 4 + len].to_vec());
            }
        };
        *keep.lock().unwrap() = Some((head, body));
        let resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-trace-id: {}\r\nconnection: close\r\n\r\n",
            answer.len(),
            "cd".repeat(16)
        );
        sock.write_all(resp.as_bytes()).await.unwrap();
        sock.write_all(&answer).await.unwrap();
    });
    (url, seen)
}

fn header_of<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {head}"))
}

#[tokio::test]
async fn a_real_exchange_is_signed_over_the_bytes_sent_and_logged_without_secrets() {
    let msk = key(0);
    let (url, seen) = one_shot_server(200, sealed(&msk, &charge_json())).await;
    let log = ExchangeLog::new(10);
    let mut req = vector_charge();
    req.pin_block = Some("0CFE7172884A7E0970A6DB5A6D585969".into());
    let c = call(PayRequest::Charge(req));
    let now = chrono::Utc::now();
    let answer = transport(&url)
        .pay(
            &identity(),
            &DeviceFaults::NONE,
            &c,
            now,
            &mut rand::rng(),
            Some(&log),
        )
        .await;
    assert!(
        matches!(answer, Ok(PayAnswer::Charge(ref ch)) if ch.status.as_str() == "approved"),
        "{answer:?}"
    );
    // the server side: the signature verifies over what arrived, and the envelope opens
    let (head, body) = seen.lock().unwrap().clone().unwrap();
    assert!(head.starts_with("POST /pos/charge HTTP/1.1"), "{head}");
    let s = string_to_sign(
        header_of(&head, "x-terminal-id"),
        header_of(&head, "x-key-id"),
        header_of(&head, "x-timestamp"),
        header_of(&head, "x-nonce"),
        "POST",
        "/pos/charge",
        &body,
    );
    let sig = parse_signature(header_of(&head, "x-signature")).unwrap();
    assert!(verify(&key(0x20), &s, &sig));
    assert_eq!(
        header_of(&head, "idempotency-key"),
        "0f8fad5b-d9cb-469f-a165-70867728950e"
    );
    assert_eq!(header_of(&head, "x-client-type"), "pos");
    let plain = open_request_envelope(&msk, &body).unwrap();
    let sent: ChargeRequest = serde_json::from_slice(&plain).unwrap();
    assert_eq!(sent.card.pan, "4242424242424242");
    // the log: redacted plaintext, the string to sign and the body hash; no PAN, PIN block or keys
    let e = log.last().unwrap();
    assert_eq!(e.step, "charge");
    assert_eq!(e.signing_string.as_deref(), Some(s.as_str()));
    assert_eq!(e.body_sha256.as_deref(), Some(body_sha256(&body).as_str()));
    assert_eq!(e.trace_id.as_deref(), Some("cd".repeat(16).as_str()));
    let shown = &e.request_plaintext.as_ref().unwrap().text;
    assert!(shown.contains("424242******4242") && shown.contains(r#""pin_block":"***""#));
    assert!(e
        .response_plaintext
        .as_ref()
        .unwrap()
        .text
        .contains("K7Q2ZD"));
    let har = har_string([e.as_ref()]);
    let cu = curl(&e);
    for text in [&har, &cu, &format!("{e:?}")] {
        assert!(!text.contains("4242424242424242"), "PAN in {text}");
        assert!(!text.contains("0CFE7172884A7E09"), "PIN block in {text}");
    }
    assert!(har.contains("_bodySha256") && har.contains("_signingString"));
    assert!(
        cu.starts_with(&format!(
            "# body SHA-256: {}\n# string to sign:\n#   TID-004812\n",
            body_sha256(&body)
        )),
        "{cu}"
    );
    assert!(cu.contains("\ncurl -X POST "));
    let _: Charge = serde_json::from_value(charge_json()).unwrap();
}

#[tokio::test]
async fn an_error_answer_is_the_servers_error_with_its_trace_id() {
    let body = json!({"error": {"code": "4001", "message": "Timestamp outside allowed window",
        "details": {"server_time": "2025-12-13T14:30:00Z"}, "trace_id": "ab".repeat(16)}});
    let (url, _) = one_shot_server(401, body.to_string().into_bytes()).await;
    let log = ExchangeLog::new(10);
    let c = call(PayRequest::Cancel {
        charge_id: "ch_1".into(),
        reverse: true,
    });
    let r = transport(&url)
        .pay(
            &identity(),
            &DeviceFaults::NONE,
            &c,
            chrono::Utc::now(),
            &mut rand::rng(),
            Some(&log),
        )
        .await;
    let e = r.unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert_eq!(
        e.error_body().unwrap().message,
        "Timestamp outside allowed window"
    );
    let entry = log.last().unwrap();
    assert_eq!(entry.step, "reverse");
    assert_eq!(entry.path(), "/pos/charge/ch_1/reverse");
    assert!(entry.error.is_some() && entry.request_plaintext.is_none());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Mutations of a valid answer: byte flips, cuts and insertions anywhere.
    fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
        let len = base.len();
        prop::collection::vec((0..len.max(1), any::<u8>(), 0u8..3), 0..8).prop_map(move |ops| {
            let mut b = base.clone();
            for (at, byte, kind) in ops {
                let at = at.min(b.len().saturating_sub(1));
                match kind {
                    0 if !b.is_empty() => b[at] = byte,
                    1 => b.truncate(at),
                    _ => b.insert(at.min(b.len()), byte),
                }
            }
            b
        })
    }

    /// Charge answers whose fields are replaced by arbitrary JSON values.
    fn odd_charge() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(json!(null)),
            any::<bool>().prop_map(|b| json!(b)),
            any::<i64>().prop_map(|n| json!(n)),
            "[ -~]{0,12}".prop_map(|s| json!(s)),
            Just(json!({"value": "99999999999999999999999", "currency": "EUR"})),
            Just(json!([])),
        ];
        let fields: Vec<String> = charge_json().as_object().unwrap().keys().cloned().collect();
        prop::collection::vec((prop::sample::select(fields), leaf), 0..5).prop_map(|edits| {
            let mut v = charge_json();
            for (k, val) in edits {
                v[k.as_str()] = val;
            }
            v
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn mutated_answer_bodies_never_panic(
            body in mutated(sealed(&key(0), &charge_json())),
            status in prop_oneof![Just(200u16), Just(201), 100u16..600],
            refund in any::<bool>(),
        ) {
            let (r, _) = decode("charge", &key(0), refund, status, &body, http_err);
            if !(200..300).contains(&status) {
                prop_assert!(r.is_err());
            }
        }

        #[test]
        fn odd_plaintexts_in_a_good_envelope_never_panic(v in odd_charge(), refund in any::<bool>()) {
            let body = sealed(&key(0), &v);
            let (r, plain) = decode("charge", &key(0), refund, 200, &body, http_err);
            prop_assert!(plain.is_some(), "decrypted, so logged");
            if let Ok(PayAnswer::Charge(c)) = r {
                // whatever parsed is usable by the machine's printing
                let _ = format!("{c:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_charge_id_that_is_not_plain_never_reaches_a_path() {
    // port 9 (discard) on loopback: a request that went out would fail as a network error
    let t = transport("http://127.0.0.1:9");
    for id in ["../../sandbox/settle", "ch_1/cancel", "", "ch\u{1b}[2J"] {
        let c = call(PayRequest::Cancel {
            charge_id: id.into(),
            reverse: false,
        });
        let r = t
            .pay(
                &identity(),
                &DeviceFaults::NONE,
                &c,
                Utc::now(),
                &mut rand::rng(),
                None,
            )
            .await;
        match r {
            Err(CallError::Decode(m)) => {
                assert!(m.contains("not sent"), "{m}");
                assert!(!m.contains('\u{1b}'), "escaped: {m:?}");
            }
            other => panic!("{id:?}: {other:?}"),
        }
    }
}
