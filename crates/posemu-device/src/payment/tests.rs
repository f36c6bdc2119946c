//! Every rule of spec 7.11 through `update`, with a fake clock: no I/O, no sleeping.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::keyset::tests::key_set;
use crate::machine::{update as device_update, DeviceConfig, DeviceEvent, Effect};
use crate::progress::Progress;
use crate::Phase;
use posemu_protocol::api::{ApiAnswer, ApiCall};
use posemu_protocol::error::ErrorEnvelope;
use posemu_protocol::payments::pinblock;
use posemu_protocol::wire::{AttestResponse, BootstrapResponse, DeviceStatus};

const ZMK: [u8; 32] = [9; 32];
const MSK: [u8; 32] = [3; 32];
/// The TPK of `key_set`.
const TPK: [u8; 32] = [4; 32];
const WALL0: i64 = 1_765_635_930_000;

pub(super) struct Sim {
    pub(super) d: DeviceState,
    pub(super) p: Payments,
    pub(super) mono: u64,
    pub(super) random: u64,
    pub(super) fx: Vec<PayEffect>,
}

fn activated_progress() -> Progress {
    let mut p = Progress::new("POS-8F3A2C91", "http://x");
    p.status = DeviceStatus::Activated;
    p.terminal_id = Some("TID-004812".into());
    p.merchant_name = Some("Demo Merchant".into());
    p.config = Some(Box::new(
        json!({"terminal_id": "TID-004812", "emv": {"currency": "EUR"}}),
    ));
    p
}

impl Sim {
    /// A device restarted from saved progress (activated, no keys in memory).
    fn restarted() -> Sim {
        let config = DeviceConfig::new("POS-8F3A2C91", "http://x", "1.4.2", ZMK);
        let mut s = Sim {
            d: DeviceState::resume(config, activated_progress()),
            p: Payments::new(),
            mono: 0,
            random: 7,
            fx: Vec::new(),
        };
        s.dev(DeviceEvent::Start);
        assert_eq!(s.d.phase, Phase::Ready);
        assert!(s.d.keys().is_none());
        s
    }

    /// Activated with its keys (the re-key path of `restarted` run through).
    pub(super) fn ready() -> Sim {
        let mut s = Sim::restarted();
        s.rekey();
        s
    }

    fn now(&self) -> Now {
        Now {
            mono_ms: self.mono,
            wall_ms: WALL0 + self.mono as i64,
            random: self.random,
        }
    }

    /// Feeds the device machine; answers its calls like a good server until it settles.
    fn dev(&mut self, e: DeviceEvent) -> Vec<Effect> {
        let now = self.now();
        device_update(&mut self.d, now, e)
    }

    fn rekey(&mut self) {
        let mut fx = self.dev(DeviceEvent::Rekey);
        let mut steps = Vec::new();
        while let Some((id, call)) = fx.iter().find_map(|e| match e {
            Effect::Call { id, call } => Some((*id, call.clone())),
            _ => None,
        }) {
            steps.push(call.step().name());
            let answer = match call {
                ApiCall::Bootstrap => ApiAnswer::Bootstrap(BootstrapResponse {
                    status: "ok".into(),
                    server_time: "2025-12-13T14:25:30Z".into(),
                    min_supported_version: "1.0.0".into(),
                }),
                ApiCall::Attest { .. } => ApiAnswer::Attest(AttestResponse {
                    status: "attested".into(),
                    attestation_token: "att_x".into(),
                    expires_in_sec: 300,
                }),
                ApiCall::Keys { .. } => ApiAnswer::Keys(Box::new(key_set(&ZMK, &MSK))),
                other => panic!("re-key made {other:?}"),
            };
            fx = self.dev(DeviceEvent::Answer {
                call: id,
                result: Ok(answer),
            });
        }
        assert_eq!(steps, ["bootstrap", "attest", "keys"]);
        assert_eq!(self.d.phase, Phase::Ready);
        assert!(self.d.can_pay());
    }

    pub(super) fn ev(&mut self, e: PayEvent) -> &[PayEffect] {
        let now = self.now();
        self.fx = update(&mut self.d, &mut self.p, now, e);
        &self.fx
    }

    pub(super) fn begin(&mut self, op: PayOp) -> &[PayEffect] {
        self.ev(PayEvent::Begin { op, seed: [1; 32] })
    }

    fn call(&self) -> (u32, PayCall) {
        let calls: Vec<_> = self
            .fx
            .iter()
            .filter_map(|e| match e {
                PayEffect::Call { id, call } => Some((*id, call.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(calls.len(), 1, "expected one call in {:?}", self.fx);
        calls[0].clone()
    }

    fn no_call(&self) {
        assert!(
            !self.fx.iter().any(|e| matches!(e, PayEffect::Call { .. })),
            "unexpected call in {:?}",
            self.fx
        );
    }

    fn answer(&mut self, r: Result<PayAnswer, CallError>) -> &[PayEffect] {
        let (id, _) = self.call();
        self.ev(PayEvent::Answer {
            call: id,
            result: r,
        })
    }

    fn wait(&self) -> Option<Duration> {
        self.fx.iter().find_map(|e| match e {
            PayEffect::Wait(d) => Some(*d),
            _ => None,
        })
    }

    /// Lets the retry timer fire.
    fn fire(&mut self) -> &[PayEffect] {
        let d = self.wait().expect("a retry timer");
        self.mono += d.as_millis() as u64;
        self.ev(PayEvent::Timer)
    }

    fn outcome(&self) -> &PayOutcome {
        self.p.outcome().expect("done")
    }
}

pub(super) fn input() -> ChargeInput {
    ChargeInput {
        amount: 1500,
        tip: Some(150),
        entry_mode: EntryMode::Chip,
        card: CardData {
            pan: "4242424242424242".into(),
            exp_month: 12,
            exp_year: 2030,
        },
        reference: Some("ORDER-1001".into()),
        allow_partial: false,
        pin: None,
        idempotency_key: None,
    }
}

pub(super) fn charge(status: &str, decline: Option<&str>) -> Box<Charge> {
    let approved = status != "declined";
    Box::new(
        serde_json::from_value(json!({
            "charge_id": "ch_4fR9kT2mXq7LbN3vZp8sWc1D", "terminal_id": "TID-004812",
            "merchant_id": "m", "status": status,
            "amount": {"value": "1500", "currency": "EUR"}, "tip": {"value": "150", "currency": "EUR"},
            "total": {"value": "1650", "currency": "EUR"},
            "approved_amount": if approved { json!({"value": "1650", "currency": "EUR"}) } else { json!(null) },
            "partial_approval": false, "refunded_amount": {"value": "0", "currency": "EUR"},
            "entry_mode": "chip", "card": {"brand": "visa", "masked_pan": "424242******4242", "last4": "4242"},
            "cvm": "none", "auth_code": if approved { json!("K7Q2ZD") } else { json!(null) },
            "decline_code": decline, "reference": "ORDER-1001",
            "gateway": {"acquirer": "posemu-sandbox", "response_code": "00", "rrn": "534712000123",
                        "stan": "000001", "pos_entry_mode": "05"},
            "settlement": {"status": "pending", "batch_id": null, "settled_at": null},
            "refunds": [], "created_at": "2025-12-13T14:30:00Z",
            "cancelled_at": if status == "cancelled" { json!("2025-12-13T14:31:00Z") } else { json!(null) }
        }))
        .unwrap(),
    )
}

pub(super) fn http(status: u16, message: &str, details: serde_json::Value) -> CallError {
    let mut env = ErrorEnvelope::new(status, message, "ab".repeat(16));
    if let serde_json::Value::Object(m) = details {
        env = env.with_details(m);
    }
    CallError::Http {
        status,
        retry_after: None,
        error: Some(env.error),
    }
}

fn is_uuid_v4(k: &str) -> bool {
    let b = k.as_bytes();
    k.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
        && k.bytes()
            .all(|c| c == b'-' || c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

#[test]
fn a_restarted_device_fetches_its_keys_before_its_first_charge() {
    let mut s = Sim::restarted();
    s.begin(PayOp::Charge(input()));
    s.no_call();
    assert!(s.fx.contains(&PayEffect::Rekey));
    assert_eq!(s.p.phase, PayPhase::NeedKeys);
    s.rekey();
    s.ev(PayEvent::KeysReady);
    let (_, call) = s.call();
    assert_eq!(call.terminal_id, "TID-004812");
    assert_eq!(call.key_id, "k", "the mac entry's key_id");
    assert_eq!(call.msk.expose(), &MSK);
    assert_eq!(call.mac_key.expose(), &[6; 32]);
    assert!(!format!("{:?}", s.d).contains("3, 3, 3"), "keys in Debug");
}

#[test]
fn rekey_is_ignored_unless_ready_without_keys() {
    let mut s = Sim::ready();
    let fx = s.dev(DeviceEvent::Rekey);
    assert!(fx.is_empty(), "keys already installed: {fx:?}");
    let config = DeviceConfig::new("POS-8F3A2C91", "http://x", "1.4.2", ZMK);
    let mut d = DeviceState::new(config);
    let now = s.now();
    assert!(device_update(&mut d, now, DeviceEvent::Rekey).is_empty());
    assert_eq!(d.phase, Phase::Off);
}

#[test]
fn a_charge_is_built_from_the_input_and_the_terminal_currency() {
    let mut s = Sim::ready();
    s.begin(PayOp::Charge(input()));
    let (_, call) = s.call();
    let PayRequest::Charge(req) = &call.request else {
        panic!("{call:?}")
    };
    assert_eq!(
        serde_json::to_string(req).unwrap(),
        r#"{"amount":{"value":"1500","currency":"EUR"},"tip":{"value":"150","currency":"EUR"},"entry_mode":"chip","card":{"pan":"4242424242424242","exp_month":12,"exp_year":2030},"reference":"ORDER-1001"}"#
    );
    assert!(is_uuid_v4(call.idempotency_key.as_deref().unwrap()));
    s.answer(Ok(PayAnswer::Charge(charge("approved", None))));
    assert!(
        matches!(s.outcome(), PayOutcome::Approved(c) if c.auth_code.as_deref() == Some("K7Q2ZD"))
    );
    assert!(s.p.is_free());
}

#[test]
fn a_terminal_keeping_only_its_currency_still_charges_in_it() {
    let mut s = Sim::ready();
    s.d.progress.config = Some(Box::new(json!({
        "terminal_id": "TID-004812", "emv": {"currency": "GBP", "tags": vec!["9F02"; 64]},
        "merchant": {"name": "Demo Merchant", "address": "1 Long Street"},
    })));
    keep_only_currency(&mut s.d);
    assert_eq!(
        s.d.progress.config.as_deref(),
        Some(&json!({"emv": {"currency": "GBP"}}))
    );
    s.begin(PayOp::Charge(input()));
    let (_, call) = s.call();
    let PayRequest::Charge(req) = &call.request else {
        panic!("{call:?}")
    };
    assert_eq!(req.amount.currency, "GBP");
    // without a currency there is nothing to keep, and a charge is refused as before
    s.d.progress.config = Some(Box::new(json!({"emv": {}})));
    keep_only_currency(&mut s.d);
    assert_eq!(s.d.progress.config, None);
}

#[test]
fn no_answer_retries_three_times_with_the_same_key_then_is_unknown_offering_cancel() {
    let mut s = Sim::ready();
    s.random = 123_456;
    s.begin(PayOp::Charge(input()));
    let (_, first) = s.call();
    let key = first.idempotency_key.clone().unwrap();
    let errors = [
        CallError::Timeout(Duration::from_secs(15)),
        http(
            504,
            "Issuer did not respond in time",
            json!({"charge_id": "ch_late0000000000000000001"}),
        ),
        CallError::Network("connection reset".into()),
    ];
    for (i, e) in errors.into_iter().enumerate() {
        s.answer(Err(e));
        s.no_call();
        let delay = s.wait().expect("backoff");
        let ceiling = crate::poll::backoff_ceiling(i as u32 + 1);
        assert!(delay <= ceiling, "retry {}: {delay:?} > {ceiling:?}", i + 1);
        assert!(matches!(
            s.fx.last(),
            Some(PayEffect::Note(PayNote::Retry { .. }))
        ));
        // early timer: nothing
        s.ev(PayEvent::Timer);
        if !delay.is_zero() {
            s.no_call();
        }
        s.fx = vec![PayEffect::Wait(delay)];
        s.fire();
        let (_, again) = s.call();
        assert_eq!(
            again.idempotency_key.as_deref(),
            Some(key.as_str()),
            "same key"
        );
        assert_eq!(again.request, first.request, "same plaintext");
    }
    s.answer(Err(http(503, "Service unavailable", json!({}))));
    s.no_call();
    match s.outcome() {
        PayOutcome::Unknown { charge_id, error } => {
            assert_eq!(charge_id.as_deref(), Some("ch_late0000000000000000001"));
            assert_eq!(error.status(), Some(503));
        }
        o => panic!("{o:?}"),
    }
    assert!(s
        .outcome()
        .describe()
        .contains("posemu cancel ch_late0000000000000000001"));
    assert_eq!(s.outcome().to_json()["status"], "unknown");
    assert_eq!(s.p.attempts, 1);
}

#[test]
fn a_late_approval_504_then_the_replayed_200_is_approved() {
    let mut s = Sim::ready();
    s.begin(PayOp::Charge(input()));
    s.answer(Err(http(
        504,
        "Issuer did not respond in time",
        json!({"charge_id": "ch_4fR9kT2mXq7LbN3vZp8sWc1D"}),
    )));
    s.fire();
    s.answer(Ok(PayAnswer::Charge(charge("approved", None))));
    assert!(matches!(s.outcome(), PayOutcome::Approved(_)));
}

#[test]
fn timestamp_window_adopts_the_server_clock_and_retries_once() {
    let mut s = Sim::ready();
    assert_eq!(s.d.clock_offset_ms, 0);
    s.begin(PayOp::Charge(input()));
    let (_, first) = s.call();
    let window = || {
        http(
            401,
            TIMESTAMP_WINDOW_MESSAGE,
            json!({"server_time": "2025-12-13T15:25:30Z"}),
        )
    };
    s.answer(Err(window()));
    let (_, again) = s.call();
    assert_eq!(again.clock_offset_ms, 3_600_000);
    assert_eq!(s.d.clock_offset_ms, 3_600_000, "the device keeps it");
    assert_eq!(again.idempotency_key, first.idempotency_key);
    // a second window error in the same attempt is final
    s.answer(Err(window()));
    s.no_call();
    assert!(matches!(s.outcome(), PayOutcome::Rejected(e) if e.status() == Some(401)));
}

#[test]
fn other_4xx_are_never_retried() {
    for (status, message) in [
        (400, "Invalid request body"),
        (401, "Invalid signature"),
        (401, "Nonce already used"),
        (404, "Terminal not found"),
        (409, "Device is not activated"),
        (422, "Idempotency-Key was used with a different request"),
        (429, "Too many requests"),
    ] {
        let mut s = Sim::ready();
        s.begin(PayOp::Charge(input()));
        s.answer(Err(http(status, message, json!({}))));
        s.no_call();
        assert!(s.wait().is_none());
        let o = s.outcome();
        assert!(matches!(o, PayOutcome::Rejected(_)), "{status}: {o:?}");
        let text = o.describe();
        assert!(
            text.contains(message) && text.contains(&"ab".repeat(16)),
            "{text}"
        );
    }
}

#[test]
fn pin_required_asks_for_the_pin_and_sends_a_new_attempt_with_a_new_key() {
    let mut s = Sim::ready();
    s.begin(PayOp::Charge(input()));
    let (_, first) = s.call();
    s.answer(Ok(PayAnswer::Charge(charge(
        "declined",
        Some("pin_required"),
    ))));
    s.no_call();
    assert_eq!(s.p.phase, PayPhase::AwaitingPin);
    s.random = u64::from_be_bytes([0xF1, 0xE2, 0xD3, 0xC4, 0xB5, 0xA6, 0x97, 0x88]);
    s.ev(PayEvent::Pin(Secret("1234".into())));
    let (_, second) = s.call();
    assert_ne!(second.idempotency_key, first.idempotency_key, "new key");
    assert!(is_uuid_v4(second.idempotency_key.as_deref().unwrap()));
    let PayRequest::Charge(req) = &second.request else {
        panic!()
    };
    let block = req.pin_block.as_deref().unwrap();
    assert_eq!(
        block,
        pinblock::encipher_with_pad(
            &TPK,
            "1234",
            "4242424242424242",
            [0xF1, 0xE2, 0xD3, 0xC4, 0xB5, 0xA6, 0x97, 0x88]
        )
        .unwrap()
    );
    assert_eq!(
        pinblock::decipher(&TPK, block, "4242424242424242")
            .unwrap()
            .expose(),
        "1234"
    );
    assert_eq!(s.p.attempts, 2);
    s.answer(Ok(PayAnswer::Charge(charge("approved", None))));
    assert!(matches!(s.outcome(), PayOutcome::Approved(_)));
}

#[test]
fn a_pin_given_up_front_answers_pin_required_and_a_refusal_keeps_the_decline() {
    let mut s = Sim::ready();
    let mut i = input();
    i.pin = Some(Secret("1234".into()));
    i.idempotency_key = Some("my-key-1".into());
    s.begin(PayOp::Charge(i));
    assert_eq!(s.call().1.idempotency_key.as_deref(), Some("my-key-1"));
    s.answer(Ok(PayAnswer::Charge(charge(
        "declined",
        Some("pin_required"),
    ))));
    let (_, second) = s.call();
    assert!(is_uuid_v4(second.idempotency_key.as_deref().unwrap()));
    // a second pin_required (the PIN attempt) is a final decline, not a loop
    s.answer(Ok(PayAnswer::Charge(charge(
        "declined",
        Some("pin_required"),
    ))));
    s.no_call();
    assert_eq!(s.outcome().decline_code(), Some(DeclineCode::PinRequired));

    let mut s = Sim::ready();
    s.begin(PayOp::Charge(input()));
    s.answer(Ok(PayAnswer::Charge(charge(
        "declined",
        Some("pin_required"),
    ))));
    s.ev(PayEvent::NoPin);
    assert!(matches!(s.outcome(), PayOutcome::Declined(_)));
    // a bad PIN never leaves the device
    let mut s = Sim::ready();
    s.begin(PayOp::Charge(input()));
    s.answer(Ok(PayAnswer::Charge(charge(
        "declined",
        Some("pin_required"),
    ))));
    s.ev(PayEvent::Pin(Secret("12".into())));
    s.no_call();
    assert!(matches!(s.outcome(), PayOutcome::Refused(w) if w.contains("PIN")));
}

#[test]
fn other_declines_end_with_their_code_and_words() {
    let mut s = Sim::ready();
    s.begin(PayOp::Charge(input()));
    s.answer(Ok(PayAnswer::Charge(charge(
        "declined",
        Some("do_not_honor"),
    ))));
    s.no_call();
    let o = s.outcome();
    assert_eq!(o.decline_code(), Some(DeclineCode::DoNotHonor));
    assert!(
        o.describe().contains("Do not honor (do_not_honor"),
        "{}",
        o.describe()
    );
    let j = s.fx.iter().find_map(|e| match e {
        PayEffect::Note(n @ PayNote::Finished { .. }) => Some(n.to_json()),
        _ => None,
    });
    let j = j.unwrap();
    assert_eq!(j["event"], "charge");
    assert_eq!(j["status"], "declined");
    assert_eq!(j["decline_code"], "do_not_honor");
}

#[test]
fn refund_and_cancel_are_operations_of_the_same_machine() {
    let mut s = Sim::ready();
    s.begin(PayOp::Refund {
        charge_id: "ch_1".into(),
        amount: 500,
        reason: None,
        idempotency_key: None,
    });
    let (_, call) = s.call();
    assert_eq!(call.request.path(), "/pos/charge/ch_1/refund");
    assert_eq!(
        call.request.plaintext().unwrap(),
        br#"{"amount":{"value":"500","currency":"EUR"}}"#
    );
    let key = call.idempotency_key.clone().unwrap();
    s.answer(Err(CallError::Timeout(Duration::from_secs(1))));
    s.fire();
    assert_eq!(s.call().1.idempotency_key.as_deref(), Some(key.as_str()));
    let refund: Refund = serde_json::from_value(json!({
        "refund_id": "re_1", "charge_id": "ch_1", "status": "succeeded",
        "amount": {"value": "500", "currency": "EUR"}, "reason": "requested_by_customer",
        "created_at": "2025-12-14T09:00:00Z"
    }))
    .unwrap();
    s.answer(Ok(PayAnswer::Refund(Box::new(refund))));
    assert!(matches!(s.outcome(), PayOutcome::Refunded(_)));

    s.begin(PayOp::Cancel {
        charge_id: "ch_1".into(),
        reverse: true,
    });
    let (_, call) = s.call();
    assert_eq!(call.request.path(), "/pos/charge/ch_1/reverse");
    assert_eq!(call.idempotency_key, None);
    s.answer(Ok(PayAnswer::Charge(charge("cancelled", None))));
    assert!(matches!(s.outcome(), PayOutcome::Cancelled(_)));
}

#[test]
fn stale_answers_busy_begins_and_unusable_answers() {
    let mut s = Sim::ready();
    s.begin(PayOp::Charge(input()));
    let (id, _) = s.call();
    // a second operation while one runs is ignored
    s.begin(PayOp::Cancel {
        charge_id: "ch_1".into(),
        reverse: false,
    });
    s.no_call();
    s.ev(PayEvent::Answer {
        call: id + 9,
        result: Ok(PayAnswer::Charge(charge("approved", None))),
    });
    assert!(!s.p.is_free());
    // a 200 of the wrong kind, or one that does not decrypt: the outcome is unknown
    s.ev(PayEvent::Answer {
        call: id,
        result: Ok(PayAnswer::Charge(charge("refunded", None))),
    });
    assert!(matches!(s.outcome(), PayOutcome::Unknown { .. }));
    let mut s = Sim::ready();
    s.begin(PayOp::Charge(input()));
    s.answer(Err(CallError::Decode(
        "answer envelope: bad padding".into(),
    )));
    assert!(matches!(s.outcome(), PayOutcome::Unknown { .. }));
}

#[test]
fn refuses_what_cannot_be_sent() {
    // not activated
    let config = DeviceConfig::new("POS-8F3A2C91", "http://x", "1.4.2", ZMK);
    let mut d = DeviceState::new(config);
    let mut p = Payments::new();
    let now = Now {
        mono_ms: 0,
        wall_ms: WALL0,
        random: 1,
    };
    let fx = update(
        &mut d,
        &mut p,
        now,
        PayEvent::Begin {
            op: PayOp::Charge(input()),
            seed: [0; 32],
        },
    );
    assert!(!fx.iter().any(|e| matches!(e, PayEffect::Call { .. })));
    assert!(matches!(p.outcome(), Some(PayOutcome::Refused(w)) if w.contains("not activated")));
    // a zero amount
    let mut s = Sim::ready();
    let mut i = input();
    i.amount = 0;
    s.begin(PayOp::Charge(i));
    s.no_call();
    assert!(matches!(s.outcome(), PayOutcome::Refused(_)));
    // a failed re-key aborts
    let mut s = Sim::restarted();
    s.begin(PayOp::Charge(input()));
    s.ev(PayEvent::Abort("keys: refused".into()));
    assert!(matches!(s.outcome(), PayOutcome::Refused(w) if w == "keys: refused"));
}
