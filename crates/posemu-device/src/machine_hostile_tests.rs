//! The machine against hostile answers: codes outside the spec, overflowing numbers, tampered
//! saved progress, and a property test over random sequences of events.

use super::*;

#[test]
fn codes_outside_the_spec_are_unusable_answers_and_never_shown() {
    for bad in [
        "\x1b]52;c;aGk=\x07\x1b[2J",
        "K7M3N0",
        "K7M3NPQ",
        "k7m3np",
        "K7M3N",
    ] {
        let mut sim = Sim::new();
        sim.ev(DeviceEvent::Start);
        sim.answer(bootstrap("2025-12-13T14:25:30Z", "1.3.5"));
        sim.answer(code_answer(bad, 300));
        assert!(sim.s.code.is_none(), "{bad:?} shown");
        let Phase::Failed(f) = &sim.s.phase else {
            panic!("{bad:?}: {:?}", sim.s.phase)
        };
        assert!(matches!(f.kind, FailureKind::BadAnswer(_)), "{f:?}");
        let text = Note::Failed((**f).clone()).describe();
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }
}

#[test]
fn huge_retry_after_is_clamped_and_never_turns_into_a_busy_poll() {
    let mut sim = Sim::new();
    sim.run_to_pairing("K7M3NP");
    let t = sim.poll_now();
    sim.error(http(429, Some(Duration::from_secs(u64::MAX))));
    assert_eq!(sim.waits(Timer::Poll), Some(MAX_RETRY_AFTER));
    assert_eq!(
        sim.s.poll_due_ms,
        Some(t + MAX_RETRY_AFTER.as_millis() as u64)
    );
    // slow-down stops growing at its maximum
    for _ in 0..100 {
        let due = sim.s.poll_due_ms.unwrap();
        sim.at(due).ev(DeviceEvent::Timer(Timer::Poll));
        sim.error(http(429, None));
    }
    assert_eq!(
        sim.s.effective_interval(),
        Duration::from_secs(3) + MAX_SLOW_DOWN
    );

    // on another step: a retry within the clamp, not never
    let mut sim = Sim::new();
    sim.run_to_pairing("K7M3NP");
    sim.poll_now();
    sim.answer(claimed());
    sim.answer(attest(300));
    assert_eq!(sim.step(), "keys");
    sim.error(http(429, Some(Duration::from_secs(u64::MAX))));
    assert_eq!(sim.waits(Timer::Retry), Some(MAX_RETRY_AFTER));
    let due = sim.s.retry_due_ms.unwrap();
    sim.at(due).ev(DeviceEvent::Timer(Timer::Retry));
    // the 300 s token died meanwhile: keys again after attesting again
    assert_eq!(sim.step(), "attest");
}

#[test]
fn huge_lifetimes_are_clamped_instead_of_expiring_at_once() {
    let mut sim = Sim::new();
    sim.ev(DeviceEvent::Start);
    sim.answer(bootstrap("2025-12-13T14:25:30Z", "1.3.5"));
    sim.answer(code_answer("K7M3NP", u64::MAX));
    assert_eq!(sim.waits(Timer::CodeExpiry), Some(MAX_CODE_LIFETIME));
    assert_eq!(sim.s.code_remaining(0), Some(MAX_CODE_LIFETIME));
    assert!(sim.s.progress.pending_code.as_ref().unwrap().expires_at_ms > WALL0);
    sim.poll_now();
    sim.answer(claimed());
    sim.answer(attest(u64::MAX));
    // the token is still valid: keys goes out without attesting again
    assert_eq!(sim.step(), "keys");
    sim.answer(keys());
    assert_eq!(sim.step(), "config");
}

#[test]
fn a_saved_code_from_a_tampered_file_is_not_shown() {
    let mut p = Progress::new("POS-8F3A2C91", "http://x");
    p.pending_code = Some(SavedCode {
        code: "\x1b[2JOWNED".into(),
        expires_at_ms: i64::MAX,
    });
    let cfg = DeviceConfig::new("POS-8F3A2C91", "http://x", "1.4.2", ZMK);
    let mut sim = Sim::with(cfg, Some(p));
    sim.ev(DeviceEvent::Start);
    sim.answer(bootstrap("2025-12-13T14:25:30Z", "1.3.5"));
    assert_eq!(sim.step(), "pairing-code");

    let mut p = Progress::new("POS-8F3A2C91", "http://x");
    p.pending_code = Some(SavedCode {
        code: "K7M3NP".into(),
        expires_at_ms: i64::MAX,
    });
    let cfg = DeviceConfig::new("POS-8F3A2C91", "http://x", "1.4.2", ZMK);
    let mut sim = Sim::with(cfg, Some(p));
    sim.ev(DeviceEvent::Start);
    sim.answer(bootstrap("2025-12-13T14:25:30Z", "1.3.5"));
    assert_eq!(sim.waits(Timer::CodeExpiry), Some(MAX_CODE_LIFETIME));
}

/// Random answers, errors, timers and jumps in time, in any order: the machine never panics,
/// every problem ends as a state (failed, retrying), and no wait exceeds the clamps.
mod prop {
    use super::*;
    use crate::keyset::tests::key_set;
    use crate::poll::{MAX_CODE_LIFETIME, MAX_RETRY_AFTER};
    use posemu_protocol::wire::{
        ActivationResult, DeviceStatus, PairingCodeStatus, StatusResponse,
    };
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Answer(u8, u64, u8, String),
        Error(u16, Option<u64>, u8),
        Timer(u8, u64),
        Restart,
        Retry,
        Interval(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<u8>(), any::<u64>(), any::<u8>(), "\\PC{0,12}")
                .prop_map(|(k, n, v, s)| Op::Answer(k, n, v, s)),
            2 => (prop_oneof![Just(429u16), Just(503), Just(401), Just(409), Just(426), 100u16..600],
                  proptest::option::of(any::<u64>()), any::<u8>())
                .prop_map(|(s, r, k)| Op::Error(s, r, k)),
            3 => (any::<u8>(), prop_oneof![0u64..10_000, any::<u64>().prop_map(|n| n >> 2)])
                .prop_map(|(t, ms)| Op::Timer(t, ms)),
            1 => Just(Op::Restart),
            1 => Just(Op::Retry),
            1 => any::<u64>().prop_map(Op::Interval),
        ]
    }

    fn answer(kind: u8, n: u64, v: u8, s: String) -> ApiAnswer {
        let pick = |a: &str| {
            if v.is_multiple_of(2) {
                a.to_string()
            } else {
                s.clone()
            }
        };
        let statuses = [
            PairingCodeStatus::None,
            PairingCodeStatus::Pending,
            PairingCodeStatus::Used,
            PairingCodeStatus::Expired,
        ];
        let devices = [
            DeviceStatus::Inactive,
            DeviceStatus::Claimed,
            DeviceStatus::Activated,
        ];
        match kind % 8 {
            0 => bootstrap(&pick("2025-12-13T14:25:30Z"), &pick("1.3.5")),
            1 => code_answer(&pick("K7M3NP"), n),
            2 => ApiAnswer::Status(StatusResponse {
                device_status: devices[v as usize % 3],
                is_claimed: v.is_multiple_of(5),
                pairing_code_status: statuses[(v / 3) as usize % 4],
            }),
            3 => attest(n),
            4 => {
                let mut k = key_set(&ZMK, &MSK);
                if v.is_multiple_of(3) {
                    k.keys.kek.kcv = s;
                }
                ApiAnswer::Keys(Box::new(k))
            }
            5 => ApiAnswer::Config(if v.is_multiple_of(2) {
                serde_json::json!({"terminal_id": s, "merchant": {"name": s}})
            } else {
                serde_json::json!([n])
            }),
            6 => ApiAnswer::TerminalParameters {
                sha256_hex: s,
                bytes: n as usize,
            },
            _ => ApiAnswer::Activate(ActivationResult {
                status: s.clone(),
                device_id: s.clone(),
                terminal_id: pick("TID-000001"),
                activated_at: s,
            }),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_sequence_of_answers_and_timers_is_handled(ops in proptest::collection::vec(op(), 1..60)) {
            let mut sim = Sim::new();
            sim.ev(DeviceEvent::Start);
            let mut last_call = None;
            for op in ops {
                let id = last_call.unwrap_or(0);
                match op {
                    Op::Answer(k, n, v, s) => {
                        sim.ev(DeviceEvent::Answer { call: id, result: Ok(answer(k, n, v, s)) });
                    }
                    Op::Error(status, retry, k) => {
                        let e = match k % 4 {
                            0 => network(),
                            1 => CallError::Decode("x".into()),
                            _ => http(status, retry.map(Duration::from_secs)),
                        };
                        sim.ev(DeviceEvent::Answer { call: id, result: Err(e) });
                    }
                    Op::Timer(t, ms) => {
                        let to = sim.mono.saturating_add(ms);
                        let timer = [Timer::Poll, Timer::CodeExpiry, Timer::Retry][t as usize % 3];
                        sim.at(to).ev(DeviceEvent::Timer(timer));
                    }
                    Op::Restart => { sim.ev(DeviceEvent::Restart); }
                    Op::Retry => { sim.ev(DeviceEvent::Retry); }
                    Op::Interval(ms) => { sim.ev(DeviceEvent::SetPollInterval(Duration::from_millis(ms))); }
                }
                for e in &sim.fx {
                    match e {
                        Effect::Call { id, .. } => last_call = Some(*id),
                        Effect::Wait { after, .. } => {
                            prop_assert!(*after <= MAX_CODE_LIFETIME.max(MAX_RETRY_AFTER), "{after:?}");
                        }
                        Effect::Note(n) => {
                            let text = n.describe();
                            prop_assert!(!text.chars().any(char::is_control), "{text:?}");
                            let _ = n.to_json();
                        }
                        _ => {}
                    }
                }
                if let Phase::Pairing = sim.s.phase {
                    prop_assert!(sim.s.code.as_ref().is_some_and(|c| posemu_protocol::rules::is_valid_code(&c.code)));
                }
            }
        }
    }
}

#[test]
fn server_text_kept_for_screens_is_escaped_at_the_source() {
    let mut sim = Sim::new();
    sim.ev(DeviceEvent::Start);
    sim.answer(bootstrap("2025-12-13T14:25:30Z", "1.3.5"));
    sim.error(CallError::Http {
        status: 426,
        retry_after: None,
        error: Some(ErrorBody {
            code: "4026".into(),
            message: "below the minimum \x1b]52;c;aGk=\x07".into(),
            details: None,
            trace_id: String::new(),
        }),
    });
    let Phase::UpdateRequired { min, .. } = &sim.s.phase else {
        panic!("{:?}", sim.s.phase)
    };
    assert!(!min.chars().any(char::is_control), "{min:?}");

    let mut sim = Sim::new();
    sim.run_to_pairing("K7M3NP");
    sim.poll_now();
    sim.answer(claimed());
    sim.answer(attest(300));
    sim.answer(keys());
    sim.answer(ApiAnswer::Config(serde_json::json!({
        "terminal_id": "TID-\x1b]52;c;aGk=\x07",
        "merchant": {"name": "Evil\x1b[2J"}
    })));
    let p = &sim.s.progress;
    for t in [p.terminal_id.as_deref(), p.merchant_name.as_deref()] {
        assert!(!t.unwrap().chars().any(char::is_control), "{t:?}");
    }
}
