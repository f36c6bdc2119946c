//! A device that starts from saved progress, restarts, or finds the server no longer agrees
//! with what it saved; a fleet's spread first poll; answers it cannot use.

use super::*;

#[test]
fn a_device_already_claimed_goes_straight_to_attest() {
    let mut sim = Sim::new();
    sim.ev(DeviceEvent::Start);
    sim.answer(bootstrap("2025-12-13T14:25:30Z", "1.3.5"));
    sim.error(http(409, None));
    assert_eq!(sim.step(), "attest");
    assert_eq!(sim.s.status(), DeviceStatus::Claimed);
}

#[test]
fn resume_activated_is_ready_without_a_call() {
    let mut p = Progress::new("POS-8F3A2C91", "http://x");
    p.status = DeviceStatus::Activated;
    let cfg = DeviceConfig::new("POS-8F3A2C91", "http://x", "1.4.2", ZMK);
    let mut sim = Sim::with(cfg, Some(p));
    sim.ev(DeviceEvent::Start);
    sim.no_call();
    assert_eq!(sim.s.phase, Phase::Ready);
}

#[test]
fn resume_claimed_attests_again_after_bootstrap() {
    let mut p = Progress::new("POS-8F3A2C91", "http://x");
    p.status = DeviceStatus::Claimed;
    let cfg = DeviceConfig::new("POS-8F3A2C91", "http://x", "1.4.2", ZMK);
    let mut sim = Sim::with(cfg, Some(p));
    sim.ev(DeviceEvent::Start);
    sim.answer(bootstrap("2025-12-13T14:25:30Z", "1.3.5"));
    assert_eq!(sim.step(), "attest");
}

#[test]
fn resume_a_valid_pending_code_polls_it_at_once_and_an_expired_one_is_replaced() {
    let cfg = DeviceConfig::new("POS-8F3A2C91", "http://x", "1.4.2", ZMK);
    let mut p = Progress::new("POS-8F3A2C91", "http://x");
    p.pending_code = Some(SavedCode {
        code: "K7M3NP".into(),
        expires_at_ms: WALL0 + 120_000,
    });
    let mut sim = Sim::with(cfg.clone(), Some(p.clone()));
    sim.ev(DeviceEvent::Start);
    sim.answer(bootstrap("2025-12-13T14:25:30Z", "1.3.5"));
    assert_eq!(sim.step(), "status");
    assert_eq!(sim.s.code.as_ref().unwrap().code, "K7M3NP");
    assert_eq!(sim.s.code_remaining(0), Some(Duration::from_secs(120)));
    assert_eq!(sim.waits(Timer::CodeExpiry), Some(Duration::from_secs(120)));

    p.pending_code.as_mut().unwrap().expires_at_ms = WALL0 - 1;
    let mut sim = Sim::with(cfg, Some(p));
    sim.ev(DeviceEvent::Start);
    sim.answer(bootstrap("2025-12-13T14:25:30Z", "1.3.5"));
    assert_eq!(sim.step(), "pairing-code");
}

#[test]
fn restart_forgets_everything_and_ignores_answers_to_abandoned_calls() {
    let mut sim = Sim::new();
    sim.run_to_pairing("K7M3NP");
    sim.poll_now();
    let (old, _) = sim.call();
    sim.ev(DeviceEvent::Restart);
    assert!(sim.saved());
    assert_eq!(sim.step(), "bootstrap");
    assert!(sim.s.code.is_none());
    assert!(sim.s.progress.pending_code.is_none());
    sim.ev(DeviceEvent::Answer {
        call: old,
        result: Ok(claimed()),
    });
    assert!(sim.fx.is_empty(), "stale answer ignored: {:?}", sim.fx);
    assert_eq!(sim.s.in_flight(), Some(Step::Bootstrap));
}

#[test]
fn fleets_spread_the_first_poll_over_one_interval() {
    let mut cfg = DeviceConfig::new("POS-F0000001", "http://x", "1.4.2", ZMK);
    cfg.spread_first_poll = true;
    cfg.poll_interval = Duration::from_secs(4);
    let mut sim = Sim::with(cfg, None);
    sim.random = 1_234;
    sim.run_to_pairing("K7M3NP");
    assert_eq!(sim.waits(Timer::Poll), Some(Duration::from_millis(1_234)));
}

#[test]
fn garbage_answers_fail_clearly_instead_of_panicking() {
    let mut sim = Sim::new();
    sim.ev(DeviceEvent::Start);
    sim.answer(bootstrap("2025-12-13T14:25:30Z", "1.3.5"));
    sim.answer(code_answer("", 300));
    let Phase::Failed(f) = &sim.s.phase else {
        panic!()
    };
    assert!(
        f.message().contains("not a code of spec 4.2"),
        "{}",
        f.message()
    );

    let mut sim = Sim::new();
    sim.ev(DeviceEvent::Start);
    sim.answer(pending());
    assert!(
        matches!(&sim.s.phase, Phase::Failed(f) if f.message().contains("expected the answer of bootstrap"))
    );
}

#[test]
fn a_device_the_server_no_longer_knows_as_claimed_pairs_again() {
    let mut p = Progress::new("POS-8F3A2C91", "http://x");
    p.status = DeviceStatus::Claimed;
    let cfg = DeviceConfig::new("POS-8F3A2C91", "http://x", "1.4.2", ZMK);
    let mut sim = Sim::with(cfg, Some(p));
    sim.ev(DeviceEvent::Start);
    sim.answer(bootstrap("2025-12-13T14:25:30Z", "1.3.5"));
    let t = sim.mono;
    sim.at(t + 250).error(http(409, None));
    assert_eq!(sim.step(), "pairing-code");
    assert_eq!(sim.s.status(), DeviceStatus::Inactive);
    assert!(sim.saved());
    // the attest step that started ends in a note of its own, with its time
    let repair = sim
        .notes()
        .into_iter()
        .find(|n| matches!(n, Note::Repair { .. }))
        .cloned()
        .expect("a re-pair note");
    assert_eq!(
        repair,
        Note::Repair {
            step: Step::Attest,
            took: Duration::from_millis(250)
        }
    );
    assert!(
        repair.describe().contains("pairing again"),
        "{}",
        repair.describe()
    );
    assert_eq!(repair.to_json()["ms"], 250);
}
