//! The device HTTP client against a real in-process sandbox on 127.0.0.1: the whole activation
//! flow, the exchange log and its exports (with secrets kept out), and merchant claiming.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use posemu_client::export::{curl, har, har_string};
use posemu_client::merchant::{sandbox_claim, sandbox_expire_code, sandbox_reset, MerchantAction};
use posemu_client::{
    DeviceFaults, DeviceIdentity, ExchangeLog, MerchantCredentials, MerchantSession, Transport,
    TransportConfig,
};
use posemu_device::keyset::{unwrap_key_set, KeySetError};
use posemu_profile::{builtin_named, Profile, DEFAULT_PROFILE};
use posemu_protocol::api::{ApiAnswer, ApiCall, CallError, Secret};
use posemu_protocol::clock::{parse_rfc3339, ManualClock};
use posemu_protocol::wire::{ActivationChecks, DeviceStatus, KeysResponse, PairingCodeStatus};
use posemu_sandbox::{Sandbox, SandboxConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;

struct Device {
    transport: Transport,
    identity: DeviceIdentity,
    profile: Profile,
    log: ExchangeLog,
    rng: StdRng,
}

impl Device {
    fn new(sandbox: &Sandbox, profile: Profile) -> Device {
        Device {
            transport: Transport::new(&sandbox.url(), TransportConfig::default()).unwrap(),
            identity: posemu_runtime::profile_identity(&profile).unwrap(),
            profile,
            log: ExchangeLog::default(),
            rng: StdRng::seed_from_u64(42),
        }
    }

    async fn call(&mut self, call: ApiCall) -> Result<ApiAnswer, CallError> {
        self.transport
            .call(
                &self.identity,
                &DeviceFaults::NONE,
                &call,
                Utc::now(),
                &mut self.rng,
                Some(&self.log),
            )
            .await
    }
}

fn default_profile() -> Profile {
    builtin_named(DEFAULT_PROFILE).unwrap()
}

/// Every way a secret could leak: both hex cases.
fn forbidden(secrets: &[String]) -> Vec<String> {
    secrets
        .iter()
        .flat_map(|s| [s.clone(), s.to_uppercase(), s.to_lowercase()])
        .collect()
}

fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for s in forbidden(secrets) {
        assert!(
            !text.contains(&s),
            "{what} contains a secret ({} chars)",
            s.len()
        );
    }
}

#[tokio::test]
async fn every_call_succeeds_in_order_and_the_log_keeps_secrets_out() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let mut d = Device::new(&sandbox, default_profile());
    let mut rx = d.log.subscribe();

    let before = Utc::now();
    let ApiAnswer::Bootstrap(b) = d.call(ApiCall::Bootstrap).await.unwrap() else {
        panic!("bootstrap")
    };
    assert_eq!(b.status, "ok");
    let server_time = parse_rfc3339(&b.server_time).unwrap();
    let offset_ms = (server_time - before).num_milliseconds();
    assert!(offset_ms.abs() < 5_000, "same machine, offset {offset_ms}");

    let ApiAnswer::PairingCode(code) = d.call(ApiCall::PairingCode).await.unwrap() else {
        panic!("pairing code")
    };
    assert_eq!(code.pairing_code.len(), 6);
    assert_eq!(code.expires_in_sec, 300);

    let ApiAnswer::Status(st) = d.call(ApiCall::Status).await.unwrap() else {
        panic!("status")
    };
    assert_eq!(st.pairing_code_status, PairingCodeStatus::Pending);
    assert!(!st.is_claimed);

    let claimed = sandbox_claim(&d.transport, d.identity.device_id(), Some(&d.log))
        .await
        .unwrap();
    assert_eq!(claimed.pairing_code, code.pairing_code);
    assert_eq!(claimed.status, "claimed");

    let ApiAnswer::Status(st) = d.call(ApiCall::Status).await.unwrap() else {
        panic!("status")
    };
    assert!(st.is_claimed);
    assert_eq!(st.device_status, DeviceStatus::Claimed);

    let ApiAnswer::Attest(att) = d
        .call(ApiCall::Attest {
            clock_offset_ms: offset_ms,
        })
        .await
        .unwrap()
    else {
        panic!("attest")
    };
    assert!(att.attestation_token.starts_with("att_"));
    let token = Secret(att.attestation_token.clone());

    let ApiAnswer::Keys(keys) = d
        .call(ApiCall::Keys {
            token: token.clone(),
        })
        .await
        .unwrap()
    else {
        panic!("keys")
    };
    let installed = unwrap_key_set(&d.profile.zmk, &keys).unwrap();
    let msk = installed.msk.clone();

    let ApiAnswer::Config(config) = d
        .call(ApiCall::Config {
            token: token.clone(),
            msk: msk.clone(),
        })
        .await
        .unwrap()
    else {
        panic!("config")
    };
    let terminal_id = config["terminal_id"].as_str().unwrap().to_string();
    assert!(terminal_id.starts_with("TID-") && terminal_id.len() == 10);
    assert_eq!(config["device_id"], "POS-8F3A2C91");
    assert_eq!(config["merchant"]["name"], "Demo Merchant");

    let ApiAnswer::TerminalParameters { sha256_hex, bytes } = d
        .call(ApiCall::TerminalParameters {
            token: token.clone(),
            msk: msk.clone(),
        })
        .await
        .unwrap()
    else {
        panic!("terminal parameters")
    };
    assert!(bytes > 100_000, "about 200 KB, got {bytes}");
    assert_eq!(sha256_hex.len(), 64);

    let ApiAnswer::Activate(act) = d
        .call(ApiCall::Activate {
            token: token.clone(),
            msk: msk.clone(),
            checks: ActivationChecks::ALL_OK,
        })
        .await
        .unwrap()
    else {
        panic!("activate")
    };
    assert_eq!(act.status, "activated");
    assert_eq!(act.terminal_id, terminal_id);
    assert!(parse_rfc3339(&act.activated_at).is_some());

    let ApiAnswer::Status(st) = d.call(ApiCall::Status).await.unwrap() else {
        panic!("status")
    };
    assert_eq!(st.device_status, DeviceStatus::Activated);

    // --- the log ---
    let entries = d.log.entries();
    let steps: Vec<&str> = entries.iter().map(|e| e.step).collect();
    assert_eq!(
        steps,
        [
            "bootstrap",
            "pairing-code",
            "status",
            "sandbox-claim",
            "status",
            "attest",
            "keys",
            "config",
            "terminal-parameters",
            "activate",
            "status"
        ]
    );
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(rx.try_recv().unwrap().id, e.id, "subscriber saw entry {i}");
        assert_eq!(e.status, Some(200), "{}", e.step);
        assert!(e.error.is_none());
        assert!(e.latency > Duration::ZERO);
        assert_eq!(e.http_version, "HTTP/1.1");
        let trace = e.trace_id.as_deref().unwrap();
        assert!(trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(e.response_body.is_some(), "{}", e.step);
    }
    assert_eq!(entries[0].method, "POST");
    assert_eq!(entries[2].method, "GET");
    assert_eq!(entries[2].path(), "/pos/status");
    assert_eq!(entries[2].request_header("x-client-type"), Some("pos"));
    assert_eq!(
        entries[2].request_header("User-Agent"),
        Some("Viopay-POS/1.4.2 (Android 12; PAX-A920)")
    );

    let attest = &entries[5];
    let signing = attest.signing_string.as_deref().unwrap();
    let lines: Vec<&str> = signing.split('\n').collect();
    assert_eq!(lines[0], "POS-8F3A2C91");
    assert_eq!(lines[1], "device-id-key-2025-01");
    assert_eq!(Some(lines[2]), attest.request_header("X-Timestamp"));
    assert_eq!(Some(lines[3]), attest.request_header("X-Nonce"));
    assert!(attest
        .request_header("X-Signature")
        .unwrap()
        .starts_with("v1="));
    let body: Value = serde_json::from_str(&attest.response_body.as_ref().unwrap().text).unwrap();
    assert_eq!(
        body["attestation_token"],
        format!("{}…", &att.attestation_token[..8])
    );

    let keys_entry = &entries[6];
    assert_eq!(
        keys_entry.request_header("Authorization"),
        Some(format!("Attestation {}…", &att.attestation_token[..8]).as_str())
    );
    let config_entry = &entries[7];
    let plain: Value =
        serde_json::from_str(&config_entry.response_plaintext.as_ref().unwrap().text).unwrap();
    assert_eq!(plain["terminal_id"], terminal_id.as_str());
    let params = entries[8].response_plaintext.as_ref().unwrap();
    assert!(params.truncated && params.text.len() <= 2048 * 4);
    assert_eq!(params.bytes, bytes);
    assert_eq!(params.sha256.as_deref(), Some(sha256_hex.as_str()));
    let activate = &entries[9];
    assert_eq!(
        activate.request_plaintext.as_ref().unwrap().text,
        r#"{"emv_ready":true,"keys_installed":true,"network_ok":true}"#
    );
    assert!(activate
        .request_body
        .as_ref()
        .unwrap()
        .text
        .contains("TR31-DATA"));
    assert!(activate
        .response_plaintext
        .as_ref()
        .unwrap()
        .text
        .contains("\"activated\""));

    // --- secrets stay out of the log, the HAR and every curl ---
    let secrets = vec![
        hex::encode(d.profile.identity_secret),
        hex::encode(d.profile.zmk),
        hex::encode(msk.expose()),
        hex::encode(installed.mac.expose()),
        att.attestation_token.clone(),
        att.attestation_token[4..].to_string(),
    ];
    let serialized =
        serde_json::to_string(&entries.iter().map(|e| e.as_ref()).collect::<Vec<_>>()).unwrap();
    assert_clean("the log", &serialized, &secrets);
    assert_clean("Debug of the log", &format!("{entries:?}"), &secrets);
    let har_text = har_string(entries.iter().map(|e| e.as_ref()));
    assert_clean("the HAR", &har_text, &secrets);
    for e in &entries {
        assert_clean("a curl", &curl(e), &secrets);
    }
    assert!(curl(&entries[6]).contains("-H \"Authorization: Attestation $ATTESTATION_TOKEN\""));
    // the key blocks (wrapped) are there to debug with
    let kb = &keys.keys.msk.key_block;
    assert!(keys_entry
        .response_body
        .as_ref()
        .unwrap()
        .text
        .contains(kb.as_str()));

    // --- the HAR parses back with what devtools need ---
    let back: Value = serde_json::from_str(&har_text).unwrap();
    let har_entries = back["log"]["entries"].as_array().unwrap();
    assert_eq!(har_entries.len(), entries.len());
    assert_eq!(back["log"]["version"], "1.2");
    for (h, e) in har_entries.iter().zip(&entries) {
        assert_eq!(h["request"]["method"], e.method.as_str());
        assert_eq!(h["request"]["url"], e.url.as_str());
        assert_eq!(h["response"]["status"], 200);
        assert_eq!(h["response"]["statusText"], "OK");
        assert!(h["response"]["content"]["text"].is_string());
        assert!(h["response"]["content"]["mimeType"]
            .as_str()
            .unwrap()
            .starts_with("application/json"));
        assert!(h["time"].as_f64().unwrap() > 0.0);
        assert_eq!(h["_traceId"], e.trace_id.as_deref().unwrap());
        assert!(h["response"]["headers"].as_array().unwrap().len() >= 2);
    }
    assert!(har_entries[5]["_signingString"].is_string());
    assert!(har_entries[7]["_responsePlaintext"]["text"].is_string());
    assert!(har_entries[9]["request"]["postData"]["text"].is_string());
    assert_eq!(
        har(std::iter::empty())["log"]["entries"],
        Value::Array(vec![])
    );
}

fn tamper_base64_block(keys: &mut KeysResponse, which: &str) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let k = match which {
        "kek" => &mut keys.keys.kek,
        _ => &mut keys.keys.tdk,
    };
    let mut block = String::from_utf8(b64.decode(&k.key_block).unwrap()).unwrap();
    // flip one hex digit of the encrypted key data
    let i = 40;
    let c = block.as_bytes()[i];
    block.replace_range(i..=i, if c == b'0' { "1" } else { "0" });
    k.key_block = b64.encode(block);
}

#[tokio::test]
async fn a_served_key_set_is_refused_when_tampered() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let mut d = Device::new(&sandbox, builtin_named("sunmi-p2").unwrap());
    d.call(ApiCall::PairingCode).await.unwrap();
    sandbox_claim(&d.transport, d.identity.device_id(), None)
        .await
        .unwrap();
    let ApiAnswer::Attest(att) = d
        .call(ApiCall::Attest { clock_offset_ms: 0 })
        .await
        .unwrap()
    else {
        panic!("attest")
    };
    let ApiAnswer::Keys(keys) = d
        .call(ApiCall::Keys {
            token: Secret(att.attestation_token),
        })
        .await
        .unwrap()
    else {
        panic!("keys")
    };
    let zmk = d.profile.zmk;
    assert!(unwrap_key_set(&zmk, &keys).is_ok());

    let mut bad_kcv = (*keys).clone();
    bad_kcv.keys.kek.kcv = "000000".into();
    let e = unwrap_key_set(&zmk, &bad_kcv).unwrap_err();
    assert!(matches!(e, KeySetError::Kcv { key: "kek", .. }), "{e}");
    assert!(e.to_string().contains("kek"), "{e}");

    let mut bad_block = (*keys).clone();
    tamper_base64_block(&mut bad_block, "tdk");
    let e = unwrap_key_set(&zmk, &bad_block).unwrap_err();
    assert!(matches!(e, KeySetError::Block { key: "tdk", .. }), "{e}");
    assert!(e.to_string().contains("MAC does not verify"), "{e}");

    let e = unwrap_key_set(&[0u8; 32], &keys).unwrap_err();
    assert!(matches!(e, KeySetError::Block { key: "tmk", .. }), "{e}");
}

#[tokio::test]
async fn expire_code_helper_expires_the_pending_code() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let mut d = Device::new(&sandbox, builtin_named("verifone-v400c").unwrap());
    let ApiAnswer::PairingCode(code) = d.call(ApiCall::PairingCode).await.unwrap() else {
        panic!()
    };
    let r = sandbox_expire_code(&d.transport, d.identity.device_id(), Some(&d.log))
        .await
        .unwrap();
    assert_eq!(r.status, "expired");
    assert_eq!(r.pairing_code, code.pairing_code);
    let ApiAnswer::Status(st) = d.call(ApiCall::Status).await.unwrap() else {
        panic!()
    };
    assert_eq!(st.pairing_code_status, PairingCodeStatus::Expired);
    // nothing pending any more: both helpers say so with the server's message
    let e = sandbox_claim(&d.transport, d.identity.device_id(), None)
        .await
        .unwrap_err();
    assert_eq!(e.action, MerchantAction::SandboxClaim);
    assert_eq!(e.status(), Some(409));
    assert_eq!(e.message(), Some("No pending pairing code"));
    let e = sandbox_claim(&d.transport, "POS-00000000", None)
        .await
        .unwrap_err();
    assert_eq!(e.message(), Some("Device not found"));
    // reset: back to inactive with no code
    let r = sandbox_reset(&d.transport, d.identity.device_id(), Some(&d.log))
        .await
        .unwrap();
    assert_eq!(r["status"], "inactive");
    assert_eq!(r["device_id"], "POS-3C7B19E4");
    let ApiAnswer::Status(st) = d.call(ApiCall::Status).await.unwrap() else {
        panic!()
    };
    assert_eq!(st.pairing_code_status, PairingCodeStatus::None);
    let e = sandbox_reset(&d.transport, "../pos/status", None)
        .await
        .unwrap_err();
    assert_eq!(e.action, MerchantAction::SandboxReset);
    assert_eq!(e.status(), Some(404));
    let steps: Vec<_> = d.log.entries().iter().map(|e| e.step).collect();
    assert_eq!(
        steps,
        [
            "pairing-code",
            "sandbox-expire-code",
            "status",
            "sandbox-reset",
            "status"
        ]
    );
}

#[tokio::test]
async fn merchant_session_claims_and_signs_in_again_when_the_token_dies() {
    let clock = ManualClock::new(Utc::now());
    let sandbox = Sandbox::start(SandboxConfig {
        clock: Arc::new(clock.clone()),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let mut d = Device::new(&sandbox, default_profile());
    let log = ExchangeLog::default();
    let session = MerchantSession::new(d.transport.clone(), MerchantCredentials::demo())
        .with_log(log.clone());
    assert!(session.merchant().is_none());

    let ApiAnswer::PairingCode(code) = d.call(ApiCall::PairingCode).await.unwrap() else {
        panic!()
    };
    // A code typed as a person would: the server normalises it.
    let typed = format!(
        "{}-{}",
        &code.pairing_code[..3],
        code.pairing_code[3..].to_lowercase()
    );
    let r = session.claim(&typed, Some("POS-8F3A2C91")).await.unwrap();
    assert_eq!(r.status, "claimed");
    assert_eq!(r.device_id, "POS-8F3A2C91");
    let m = session.merchant().unwrap();
    assert_eq!(m.merchant_name, "Demo Merchant");
    assert_eq!(m.merchant_id, "550e8400-e29b-41d4-a716-446655440000");

    // A second device, after the server's clock passed the token's expiry (the client's own
    // renewal timer has not: it runs on real time). The 401 makes it sign in again.
    clock.advance(Duration::from_secs(301));
    let mut d2 = Device::new(&sandbox, builtin_named("sunmi-p2").unwrap());
    let ApiAnswer::PairingCode(code2) = d2.call(ApiCall::PairingCode).await.unwrap() else {
        panic!()
    };
    session.claim(&code2.pairing_code, None).await.unwrap();

    let steps: Vec<_> = log.entries().iter().map(|e| (e.step, e.status)).collect();
    assert_eq!(
        steps,
        [
            ("merchant-login", Some(200)),
            ("merchant-session", Some(200)),
            ("claim", Some(200)),
            ("claim", Some(401)),
            ("merchant-login", Some(200)),
            ("merchant-session", Some(200)),
            ("claim", Some(200)),
        ]
    );

    // Errors name what failed and carry the server's message.
    let e = session.claim("ZZZZZZ", None).await.unwrap_err();
    assert_eq!(e.action, MerchantAction::Claim);
    assert_eq!(e.status(), Some(404));
    assert_eq!(e.message(), Some("Pairing code not found"));
    let e = session.claim(&code.pairing_code, None).await.unwrap_err();
    assert_eq!(e.message(), Some("Pairing code already used"));
    let bad = MerchantSession::new(
        d.transport.clone(),
        MerchantCredentials::new("demo-merchant", "wrong-secret"),
    );
    let e = bad.claim(&code.pairing_code, None).await.unwrap_err();
    assert_eq!(e.action, MerchantAction::Login);
    assert_eq!(e.message(), Some("Invalid client credentials"));
    assert!(e.to_string().contains("/client/session"), "{e}");

    // Neither the bearer tokens nor the client secret are in the log or its exports.
    let entries = log.entries();
    let bodies: Vec<String> = entries
        .iter()
        .filter(|e| e.step == "merchant-login")
        .filter_map(|e| e.response_body.as_ref().map(|b| b.text.clone()))
        .collect();
    for b in &bodies {
        let v: Value = serde_json::from_str(b).unwrap();
        assert!(v["access_token"].as_str().unwrap().ends_with('…'), "{b}");
    }
    let text = serde_json::to_string(&entries.iter().map(|e| e.as_ref()).collect::<Vec<_>>())
        .unwrap()
        + &har_string(entries.iter().map(|e| e.as_ref()))
        + &entries.iter().map(|e| curl(e)).collect::<String>();
    assert!(!text.contains("demo-secret"), "client secret leaked");
    for e in &entries {
        if let Some(auth) = e.request_header("Authorization") {
            assert!(auth.starts_with("Bearer ") && auth.ends_with('…'), "{auth}");
            assert!(auth.len() < 20, "{auth}");
        }
    }
    let jwts: Vec<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .filter(|w| w.starts_with("eyJ") && w.matches('.').count() == 2 && w.len() > 30)
        .collect();
    assert!(jwts.is_empty(), "bearer token leaked: {jwts:?}");
    assert!(curl(&entries[2]).contains("$BEARER_TOKEN"));
}

/// The spec's TR-31 unwrap vector (4.7) as the TMK of a key set: ZMK = the vector's KBPK,
/// TMK = `11` × 32 with KCV `FE1B05`; the rest of the set is wrapped under it.
#[test]
fn the_spec_tr31_vector_installs_as_a_tmk() {
    use posemu_protocol::crypto::{kcv, key_from_hex};
    use posemu_protocol::tr31::{wrap, Header};
    use posemu_protocol::wire::{KeySetInfo, Transport as KeyTransport, WrappedKey, WrappedKeys};

    let zmk =
        key_from_hex("00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF").unwrap();
    let block = "D0144K0AB00E00007B9A06E8D4FC33FCC23A8A5568E5A6CF26B3894263D93083AB1985BFD73B16DA66F005D9550BFB478D531CED472224E727D92FDB42CB8DA3BDE23AF81EF64F47";
    let b64 = base64::engine::general_purpose::STANDARD;
    let tmk = [0x11u8; 32];
    let mut rng = StdRng::seed_from_u64(3);
    let mut entry = |kbpk: &[u8; 32], h: Header, key: &[u8; 32], under: &str| WrappedKey {
        key_id: format!("{under}-child"),
        key_block: b64.encode(wrap(kbpk, h, key, &mut rng)),
        usage: "x".into(),
        wrapped_under: under.into(),
        kcv: kcv(key),
    };
    let kek = [0x22u8; 32];
    let keys = WrappedKeys {
        tmk: WrappedKey {
            key_id: "tmk-spec".into(),
            key_block: b64.encode(block),
            usage: "key-encryption".into(),
            wrapped_under: "zmk".into(),
            kcv: "FE1B05".into(),
        },
        kek: entry(&tmk, Header::KEY_ENCRYPTION, &kek, "tmk"),
        msk: entry(&kek, Header::DATA_ENCRYPTION, &[0x33; 32], "kek"),
        tpk: entry(&kek, Header::PIN_ENCRYPTION, &[0x44; 32], "kek"),
        tdk: entry(&kek, Header::DATA_ENCRYPTION, &[0x55; 32], "kek"),
        mac: entry(&kek, Header::MAC, &[0x66; 32], "kek"),
    };
    let set = KeysResponse {
        key_set: KeySetInfo {
            key_set_id: "ks-spec".into(),
            issued_at: "2025-12-13T14:25:30Z".into(),
            expires_at: "2026-12-13T14:25:30Z".into(),
        },
        transport: KeyTransport {
            format: "TR31".into(),
            version: "D".into(),
            encryption: "AES-256".into(),
            wrapped_under: "kek".into(),
        },
        keys,
    };
    let installed = unwrap_key_set(&zmk, &set).unwrap();
    assert_eq!(installed.msk.expose(), &[0x33; 32]);
    assert_eq!(installed.kcvs[0], ("tmk".to_string(), "FE1B05".to_string()));
    assert!(
        !format!("{installed:?}").contains("51, 51"),
        "key bytes in Debug"
    );

    let mut wrong_kcv = set.clone();
    wrong_kcv.keys.tmk.kcv = "FE1B06".into();
    let e = unwrap_key_set(&zmk, &wrong_kcv).unwrap_err();
    assert!(matches!(e, KeySetError::Kcv { key: "tmk", .. }), "{e}");
    let mut flipped = set.clone();
    flipped.keys.tmk.key_block = b64.encode(block.replacen("7B9A", "7B9B", 1));
    let e = unwrap_key_set(&zmk, &flipped).unwrap_err();
    assert!(matches!(e, KeySetError::Block { key: "tmk", .. }), "{e}");
    let mut swapped = set.clone();
    swapped.keys.msk = set.keys.tpk.clone();
    let e = unwrap_key_set(&zmk, &swapped).unwrap_err();
    assert!(matches!(e, KeySetError::Header { key: "msk", .. }), "{e}");
}
