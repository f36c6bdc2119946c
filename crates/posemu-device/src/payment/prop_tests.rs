//! The payment machine fed random events and answers: it never panics, keeps one call in
//! flight, keeps one Idempotency-Key per attempt, and never retries more than 3 times.

use proptest::prelude::*;
use serde_json::json;

use super::tests::{charge, http, input, Sim};
use super::*;

#[derive(Debug, Clone)]
enum Step {
    Ok {
        status: &'static str,
        decline: Option<&'static str>,
    },
    Err {
        status: u16,
        message: &'static str,
        details: serde_json::Value,
    },
    Timeout,
    Decode,
    Timer {
        advance_ms: u64,
    },
    Pin(String),
    NoPin,
    Stale,
    Begin(u8),
}

fn step() -> impl Strategy<Value = Step> {
    let status = prop::sample::select(vec![
        "approved",
        "declined",
        "cancelled",
        "refunded",
        "partially_refunded",
    ]);
    let decline = prop::option::of(prop::sample::select(vec![
        "pin_required",
        "do_not_honor",
        "incorrect_pin",
        "expired_card",
    ]));
    let details = prop_oneof![
        Just(json!({})),
        Just(json!({"server_time": "2025-12-13T15:25:30Z"})),
        Just(json!({"server_time": "not a time"})),
        Just(json!({"server_time": 7})),
        Just(json!({"charge_id": "ch_late0000000000000000001"})),
        Just(json!({"charge_id": "../../evil\u{1b}"})),
        "[ -~]{0,20}".prop_map(|s| json!({"charge_id": s, "server_time": s})),
    ];
    let message = prop::sample::select(vec![
        TIMESTAMP_WINDOW_MESSAGE,
        "Invalid signature",
        "Issuer did not respond in time",
        "",
    ]);
    prop_oneof![
        (status, decline).prop_map(|(status, decline)| Step::Ok { status, decline }),
        (
            prop_oneof![Just(401u16), Just(504), Just(503), 400u16..600],
            message,
            details
        )
            .prop_map(|(status, message, details)| Step::Err {
                status,
                message,
                details
            }),
        Just(Step::Timeout),
        Just(Step::Decode),
        (0u64..40_000).prop_map(|advance_ms| Step::Timer { advance_ms }),
        "[0-9a]{0,14}".prop_map(Step::Pin),
        Just(Step::NoPin),
        Just(Step::Stale),
        any::<u8>().prop_map(Step::Begin),
    ]
}

fn call_of(fx: &[PayEffect]) -> Option<(u32, PayCall)> {
    let calls: Vec<_> = fx
        .iter()
        .filter_map(|e| match e {
            PayEffect::Call { id, call } => Some((*id, call.clone())),
            _ => None,
        })
        .collect();
    assert!(calls.len() <= 1, "one call at a time: {fx:?}");
    calls.into_iter().next()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_answers_never_panic_and_keep_the_rules(
        steps in prop::collection::vec(step(), 1..30),
        random in any::<u64>(),
    ) {
        let mut s = Sim::ready();
        s.random = random;
        s.begin(PayOp::Charge(input()));
        let mut in_flight = call_of(&s.fx);
        let mut attempt_key: Option<(u32, Option<String>)> = None;
        for st in steps {
            let id = in_flight.as_ref().map(|(id, _)| *id);
            let answer = |r| PayEvent::Answer { call: id.unwrap_or(0), result: r };
            let ev = match st {
                Step::Ok { status, decline } => {
                    let mut c = charge(status, decline);
                    if status == "cancelled" { c.cancelled_at = None; }
                    answer(Ok(PayAnswer::Charge(c)))
                }
                Step::Err { status, message, details } => answer(Err(http(status, message, details))),
                Step::Timeout => answer(Err(CallError::Timeout(Duration::from_secs(1)))),
                Step::Decode => answer(Err(CallError::Decode("x".into()))),
                Step::Timer { advance_ms } => {
                    s.mono += advance_ms;
                    PayEvent::Timer
                }
                Step::Pin(p) => PayEvent::Pin(Secret(p)),
                Step::NoPin => PayEvent::NoPin,
                Step::Stale => PayEvent::Answer {
                    call: id.unwrap_or(0).wrapping_add(77),
                    result: Ok(PayAnswer::Charge(charge("approved", None))),
                },
                Step::Begin(n) => PayEvent::Begin {
                    op: if n % 2 == 0 {
                        PayOp::Charge(input())
                    } else {
                        PayOp::Cancel { charge_id: "ch_1".into(), reverse: n % 4 == 1 }
                    },
                    seed: [n; 32],
                },
            };
            let was_answer = matches!(ev, PayEvent::Answer { .. });
            if matches!(ev, PayEvent::Begin { .. }) && s.p.is_free() {
                attempt_key = None; // a new operation counts its attempts afresh
            }
            s.ev(ev);
            prop_assert!(s.p.retries <= MAX_RETRIES);
            if let Some((id, call)) = call_of(&s.fx) {
                if was_answer || in_flight.is_none() {
                    // same attempt → same key; a new attempt → a new key (or none on cancel)
                    if let Some((attempt, key)) = &attempt_key {
                        if *attempt == s.p.attempts {
                            prop_assert_eq!(key, &call.idempotency_key);
                        } else if call.idempotency_key.is_some() {
                            prop_assert_ne!(key, &call.idempotency_key);
                        }
                    }
                }
                attempt_key = Some((s.p.attempts, call.idempotency_key.clone()));
                in_flight = Some((id, call));
            } else if was_answer && s.p.phase != PayPhase::Sending {
                in_flight = None;
            }
            if let Some(o) = s.p.outcome() {
                let _ = (o.describe(), o.to_json());
            }
        }
    }
}
