//! Every rule of the machine, driven by events with a fake clock: no I/O, no sleeping.

use std::time::Duration;

use super::*;
use crate::keyset::tests::key_set;
use crate::progress::{Progress, SavedCode};
use posemu_protocol::api::{ApiAnswer, ApiCall, CallError};
use posemu_protocol::error::ErrorBody;
use posemu_protocol::wire::{
    ActivationResult, AttestResponse, BootstrapResponse, DeviceStatus, PairingCodeResponse,
    PairingCodeStatus, StatusResponse,
};

const ZMK: [u8; 32] = [9; 32];
const MSK: [u8; 32] = [3; 32];
/// 2025-12-13T14:25:30Z in Unix ms: the device's wall clock at mono 0.
const WALL0: i64 = 1_765_635_930_000;

struct Sim {
    s: DeviceState,
    mono: u64,
    random: u64,
    fx: Vec<Effect>,
}

impl Sim {
    fn new() -> Sim {
        Sim::with(
            DeviceConfig::new("POS-8F3A2C91", "http://x", "1.4.2", ZMK),
            None,
        )
    }

    fn with(config: DeviceConfig, progress: Option<Progress>) -> Sim {
        let s = match progress {
            Some(p) => DeviceState::resume(config, p),
            None => DeviceState::new(config),
        };
        Sim {
            s,
            mono: 0,
            random: 0,
            fx: Vec::new(),
        }
    }

    fn now(&self) -> Now {
        Now {
            mono_ms: self.mono,
            wall_ms: WALL0 + self.mono as i64,
            random: self.random,
        }
    }

    fn ev(&mut self, e: DeviceEvent) -> &[Effect] {
        let now = self.now();
        self.fx = update(&mut self.s, now, e);
        &self.fx
    }

    fn at(&mut self, ms: u64) -> &mut Self {
        assert!(ms >= self.mono, "time runs forward");
        self.mono = ms;
        self
    }

    fn call(&self) -> (u32, ApiCall) {
        let calls: Vec<_> = self
            .fx
            .iter()
            .filter_map(|e| match e {
                Effect::Call { id, call } => Some((*id, call.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(calls.len(), 1, "expected one call in {:?}", self.fx);
        calls[0].clone()
    }

    fn no_call(&self) {
        assert!(
            !self.fx.iter().any(|e| matches!(e, Effect::Call { .. })),
            "unexpected call in {:?}",
            self.fx
        );
    }

    fn step(&self) -> &'static str {
        self.call().1.step().name()
    }

    fn answer(&mut self, a: ApiAnswer) -> &[Effect] {
        let (id, _) = self.call();
        self.ev(DeviceEvent::Answer {
            call: id,
            result: Ok(a),
        })
    }

    fn error(&mut self, e: CallError) -> &[Effect] {
        let (id, _) = self.call();
        self.ev(DeviceEvent::Answer {
            call: id,
            result: Err(e),
        })
    }

    fn waits(&self, timer: Timer) -> Option<Duration> {
        self.fx.iter().find_map(|e| match e {
            Effect::Wait { timer: t, after } if *t == timer => Some(*after),
            _ => None,
        })
    }

    fn notes(&self) -> Vec<&Note> {
        self.fx
            .iter()
            .filter_map(|e| match e {
                Effect::Note(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    fn saved(&self) -> bool {
        self.fx.contains(&Effect::Save)
    }

    /// Start → bootstrap → pairing code `code`.
    fn run_to_pairing(&mut self, code: &str) {
        self.ev(DeviceEvent::Start);
        assert_eq!(self.step(), "bootstrap");
        self.answer(bootstrap("2025-12-13T14:25:30Z", "1.3.5"));
        assert_eq!(self.step(), "pairing-code");
        self.answer(code_answer(code, 300));
        assert_eq!(self.s.phase, Phase::Pairing);
    }

    /// Fires the poll timer at its deadline and returns that time.
    fn poll_now(&mut self) -> u64 {
        let due = self.s.poll_due_ms.expect("a poll is scheduled");
        self.at(due).ev(DeviceEvent::Timer(Timer::Poll));
        assert_eq!(self.step(), "status");
        due
    }
}

fn bootstrap(server_time: &str, min: &str) -> ApiAnswer {
    ApiAnswer::Bootstrap(BootstrapResponse {
        status: "ok".into(),
        server_time: server_time.into(),
        min_supported_version: min.into(),
    })
}

fn code_answer(code: &str, secs: u64) -> ApiAnswer {
    ApiAnswer::PairingCode(PairingCodeResponse {
        pairing_code: code.into(),
        expires_in_sec: secs,
    })
}

fn status(device: DeviceStatus, code: PairingCodeStatus) -> ApiAnswer {
    ApiAnswer::Status(StatusResponse {
        device_status: device,
        is_claimed: device != DeviceStatus::Inactive,
        pairing_code_status: code,
    })
}

fn pending() -> ApiAnswer {
    status(DeviceStatus::Inactive, PairingCodeStatus::Pending)
}

fn claimed() -> ApiAnswer {
    status(DeviceStatus::Claimed, PairingCodeStatus::Used)
}

fn attest(secs: u64) -> ApiAnswer {
    ApiAnswer::Attest(AttestResponse {
        status: "attested".into(),
        attestation_token: "att_0123456789abcdefghijklmn".into(),
        expires_in_sec: secs,
    })
}

fn keys() -> ApiAnswer {
    ApiAnswer::Keys(Box::new(key_set(&ZMK, &MSK)))
}

fn config() -> ApiAnswer {
    ApiAnswer::Config(serde_json::json!({
        "terminal_id": "TID-004812",
        "device_id": "POS-8F3A2C91",
        "merchant": {"merchant_id": "m", "name": "Demo Merchant"}
    }))
}

fn params() -> ApiAnswer {
    ApiAnswer::TerminalParameters {
        sha256_hex: "ab".repeat(32),
        bytes: 200_000,
    }
}

fn activated() -> ApiAnswer {
    ApiAnswer::Activate(ActivationResult {
        status: "activated".into(),
        device_id: "POS-8F3A2C91".into(),
        terminal_id: "TID-004812".into(),
        activated_at: "2025-12-13T14:26:00Z".into(),
    })
}

fn http(status: u16, retry_after: Option<Duration>) -> CallError {
    CallError::Http {
        status,
        retry_after,
        error: Some(ErrorBody {
            code: posemu_protocol::error_code_for_status(status),
            message: format!("status {status}"),
            details: None,
            trace_id: "0123456789abcdef0123456789abcdef".into(),
        }),
    }
}

fn network() -> CallError {
    CallError::Network("connection refused".into())
}

#[test]
fn a_clean_activation_calls_every_step_in_order_and_saves_progress() {
    let mut sim = Sim::new();
    sim.run_to_pairing("K7M3NP");
    assert_eq!(sim.s.code.as_ref().unwrap().code, "K7M3NP");
    assert!(
        sim.saved(),
        "the code is saved so a restart keeps polling it"
    );
    assert_eq!(sim.s.progress.pending_code.as_ref().unwrap().code, "K7M3NP");

    let t = sim.poll_now();
    assert_eq!(t, 3_000, "default interval 3 s");
    sim.answer(pending());
    assert_eq!(sim.waits(Timer::Poll), Some(Duration::from_secs(3)));
    sim.poll_now();
    sim.answer(claimed());
    assert!(sim.notes().contains(&&Note::Claimed));
    assert_eq!(sim.s.status(), DeviceStatus::Claimed);
    assert!(sim.saved());

    let mut order = vec![];
    for answer in [attest(300), keys(), config(), params(), activated()] {
        order.push(sim.step());
        sim.answer(answer);
    }
    assert_eq!(
        order,
        [
            "attest",
            "keys",
            "config",
            "terminal-parameters",
            "activate"
        ],
        "7b comes before 8"
    );
    assert_eq!(sim.s.phase, Phase::Ready);
    let p = &sim.s.progress;
    assert_eq!(p.status, DeviceStatus::Activated);
    assert_eq!(p.terminal_id.as_deref(), Some("TID-004812"));
    assert_eq!(p.merchant_name.as_deref(), Some("Demo Merchant"));
    assert_eq!(p.key_set.as_ref().unwrap().key_set_id, "ks-test");
    assert_eq!(p.parameters.as_ref().unwrap().bytes, 200_000);
    assert_eq!(p.activated_at.as_deref(), Some("2025-12-13T14:26:00Z"));
    assert!(p.pending_code.is_none());
    assert!(sim.saved());
}

#[test]
fn the_activate_call_carries_the_msk_from_the_key_set_and_the_checks() {
    let mut sim = Sim::new();
    sim.run_to_pairing("K7M3NP");
    sim.poll_now();
    sim.answer(claimed());
    for a in [attest(300), keys(), config(), params()] {
        sim.answer(a);
    }
    match sim.call().1 {
        ApiCall::Activate { msk, checks, token } => {
            assert_eq!(msk.expose(), &MSK);
            assert_eq!(checks, posemu_protocol::wire::ActivationChecks::ALL_OK);
            assert_eq!(token.expose(), "att_0123456789abcdefghijklmn");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn poll_interval_is_clamped_to_three_to_five_seconds_and_applies_to_the_next_poll() {
    let mut sim = Sim::new();
    sim.run_to_pairing("K7M3NP");
    sim.poll_now();
    sim.answer(pending());
    sim.ev(DeviceEvent::SetPollInterval(Duration::from_secs(60)));
    assert_eq!(sim.s.config.poll_interval, Duration::from_secs(5));
    assert_eq!(sim.s.poll_due_ms, Some(3_000 + 5_000));
    sim.ev(DeviceEvent::SetPollInterval(Duration::from_millis(500)));
    assert_eq!(sim.s.config.poll_interval, Duration::from_secs(3));
    assert_eq!(sim.waits(Timer::Poll), Some(Duration::from_secs(3)));
}

#[test]
fn a_429_with_retry_after_waits_that_long_then_adds_five_seconds_for_the_codes_life() {
    let mut sim = Sim::new();
    sim.run_to_pairing("K7M3NP");
    let t = sim.poll_now();
    sim.error(http(429, Some(Duration::from_secs(12))));
    assert_eq!(sim.waits(Timer::Poll), Some(Duration::from_secs(12)));
    assert_eq!(sim.s.effective_interval(), Duration::from_secs(8));
    // a poll before the deadline (a stale timer) does nothing
    sim.at(t + 5_000).ev(DeviceEvent::Timer(Timer::Poll));
    sim.no_call();
    assert_eq!(sim.poll_now(), t + 12_000);
    sim.answer(pending());
    assert_eq!(sim.waits(Timer::Poll), Some(Duration::from_secs(8)));

    // without Retry-After: another 5 s, and wait the new interval
    sim.poll_now();
    sim.error(http(429, None));
    assert_eq!(sim.waits(Timer::Poll), Some(Duration::from_secs(13)));

    // a new code starts with the plain interval again
    let now = sim.s.poll_due_ms.unwrap();
    sim.at(now).ev(DeviceEvent::Timer(Timer::Poll));
    sim.answer(status(DeviceStatus::Inactive, PairingCodeStatus::Expired));
    sim.answer(code_answer("NEWC2D", 300));
    assert_eq!(sim.s.effective_interval(), Duration::from_secs(3));
}

#[test]
fn network_errors_timeouts_and_5xx_back_off_with_full_jitter_and_keep_the_code() {
    let mut sim = Sim::new();
    sim.run_to_pairing("K7M3NP");
    sim.poll_now();
    let errors = [
        network(),
        CallError::Timeout(Duration::from_secs(15)),
        http(503, None),
        http(500, None),
        network(),
        network(),
        network(),
    ];
    let ceilings = [1, 2, 4, 8, 16, 30, 30];
    for (i, (e, ceil)) in errors.into_iter().zip(ceilings).enumerate() {
        sim.random = u64::MAX - i as u64; // any draw stays within the window
        sim.error(e);
        let d = sim.waits(Timer::Retry).expect("a retry is scheduled");
        assert!(d <= Duration::from_secs(ceil), "attempt {}: {d:?}", i + 1);
        assert!(sim.s.code.is_some(), "the code stays on screen");
        assert_eq!(sim.s.phase, Phase::Pairing);
        let due = sim.s.retry_due_ms.unwrap();
        sim.at(due).ev(DeviceEvent::Timer(Timer::Retry));
        assert_eq!(sim.step(), "status");
    }
    // the largest draw of a window is its ceiling exactly
    sim.random = 4_000;
    sim.s.attempt = 2;
    sim.error(network());
    assert_eq!(sim.waits(Timer::Retry), Some(Duration::from_secs(4)));
    let due = sim.s.retry_due_ms.unwrap();
    sim.at(due).ev(DeviceEvent::Timer(Timer::Retry));
    sim.answer(pending());
    assert_eq!(sim.s.attempt, 0, "success resets the backoff");
}

#[test]
fn other_steps_back_off_too_and_resume_where_they_were() {
    let mut sim = Sim::new();
    sim.ev(DeviceEvent::Start);
    sim.error(network());
    assert_eq!(sim.s.phase, Phase::Step(Step::Bootstrap));
    sim.at(1_000).ev(DeviceEvent::Timer(Timer::Retry));
    assert_eq!(sim.step(), "bootstrap");
}

#[test]
fn the_device_asks_for_a_new_code_when_its_own_timer_says_it_expired() {
    let mut sim = Sim::new();
    sim.run_to_pairing("K7M3NP");
    assert_eq!(sim.s.code_remaining(0), Some(Duration::from_secs(300)));
    sim.poll_now();
    sim.answer(pending());
    // an early expiry timer is ignored
    sim.at(200_000).ev(DeviceEvent::Timer(Timer::CodeExpiry));
    sim.no_call();
    sim.at(300_000).ev(DeviceEvent::Timer(Timer::CodeExpiry));
    assert_eq!(sim.step(), "pairing-code");
    assert!(sim.notes().contains(&&Note::CodeExpired {
        code: "K7M3NP".into(),
        why: CodeGone::DeviceTimer
    }));
    sim.answer(code_answer("R2D2C3", 300));
    assert_eq!(sim.s.code.as_ref().unwrap().code, "R2D2C3");
    assert_eq!(sim.s.polls, 0);
}

#[test]
fn expiry_while_a_poll_is_in_flight_asks_for_a_new_code_after_the_answer() {
    let mut sim = Sim::new();
    sim.run_to_pairing("K7M3NP");
    sim.s.code.as_mut().unwrap().expires_at_ms = 3_000;
    sim.poll_now();
    let (id, _) = sim.call();
    sim.ev(DeviceEvent::Timer(Timer::CodeExpiry));
    sim.no_call();
    // the poll is still answered (pending by the server's clock), then a new code is asked
    sim.ev(DeviceEvent::Answer {
        call: id,
        result: Ok(pending()),
    });
    assert_eq!(sim.step(), "pairing-code");
}

#[test]
fn a_server_that_forgot_the_code_is_not_said_to_have_expired_it() {
    let mut sim = Sim::new();
    sim.run_to_pairing("K7M3NP");
    sim.poll_now();
    sim.answer(status(DeviceStatus::Inactive, PairingCodeStatus::None));
    assert_eq!(sim.step(), "pairing-code");
    let gone = sim
        .notes()
        .into_iter()
        .find(|n| matches!(n, Note::CodeExpired { .. }))
        .cloned()
        .expect("a note");
    assert_eq!(
        gone,
        Note::CodeExpired {
            code: "K7M3NP".into(),
            why: CodeGone::ServerForgot
        }
    );
    assert!(!gone.describe().contains("expired"), "{}", gone.describe());
    assert_eq!(gone.to_json()["why"], "server_forgot");
}

#[test]
fn the_server_saying_expired_asks_for_a_new_code() {
    let mut sim = Sim::new();
    sim.run_to_pairing("K7M3NP");
    sim.poll_now();
    sim.answer(status(DeviceStatus::Inactive, PairingCodeStatus::Expired));
    assert_eq!(sim.step(), "pairing-code");
    assert!(sim.notes().contains(&&Note::CodeExpired {
        code: "K7M3NP".into(),
        why: CodeGone::ServerExpired
    }));
}

#[test]
fn a_400_or_404_stops_with_the_error_and_retry_resumes() {
    for st in [400, 404] {
        let mut sim = Sim::new();
        sim.run_to_pairing("K7M3NP");
        sim.poll_now();
        sim.error(http(st, None));
        let Phase::Failed(f) = &sim.s.phase else {
            panic!("{:?}", sim.s.phase)
        };
        assert_eq!(f.http_status(), Some(st));
        assert_eq!(f.trace_id(), Some("0123456789abcdef0123456789abcdef"));
        assert!(!f.hint().is_empty());
        assert!(sim.fx.contains(&Effect::Cancel(Timer::Poll)));
        sim.no_call();
        sim.ev(DeviceEvent::Retry);
        assert_eq!(sim.step(), "status");
    }
}

#[test]
fn an_app_below_the_minimum_version_stops_unless_told_to_ignore_it() {
    let mut sim = Sim::new();
    sim.ev(DeviceEvent::Start);
    sim.answer(bootstrap("2025-12-13T14:25:30Z", "1.10.0"));
    assert_eq!(
        sim.s.phase,
        Phase::UpdateRequired {
            version: "1.4.2".into(),
            min: "1.10.0".into()
        }
    );
    sim.no_call();

    let mut cfg = DeviceConfig::new("POS-8F3A2C91", "http://x", "1.4.2", ZMK);
    cfg.ignore_min_version = true;
    let mut sim = Sim::with(cfg, None);
    sim.ev(DeviceEvent::Start);
    sim.answer(bootstrap("2025-12-13T14:25:30Z", "1.10.0"));
    assert_eq!(sim.step(), "pairing-code");

    let mut sim = Sim::new();
    sim.ev(DeviceEvent::Start);
    let mut e = http(426, None);
    if let CallError::Http { error: Some(b), .. } = &mut e {
        b.message = "POS app version 1.4.2 is below the minimum supported version 1.5.0".into();
    }
    sim.error(e);
    assert!(matches!(&sim.s.phase, Phase::UpdateRequired { min, .. } if min == "1.5.0"));
    sim.ev(DeviceEvent::Retry);
    assert_eq!(sim.step(), "bootstrap");

    // a 426 on a later step, with the minimum in its details
    sim.answer(bootstrap("2025-12-13T14:25:30Z", "1.3.5"));
    let mut e = http(426, None);
    if let CallError::Http { error: Some(b), .. } = &mut e {
        let details = serde_json::json!({ "min_supported_version": "1.6.0" });
        b.details = details.as_object().cloned();
    }
    sim.error(e);
    assert!(matches!(&sim.s.phase, Phase::UpdateRequired { min, .. } if min == "1.6.0"));
}

#[path = "machine_auth_tests.rs"]
mod auth;
#[path = "machine_hostile_tests.rs"]
mod hostile;
#[path = "machine_resume_tests.rs"]
mod resume;
