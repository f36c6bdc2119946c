//! The attestation side of the machine: the clock offset it signs with, its token renewed or
//! re-attested, and a key set whose check value fails.

use super::*;

#[test]
fn the_clock_offset_from_server_time_goes_into_the_attestation() {
    let mut sim = Sim::new();
    sim.ev(DeviceEvent::Start);
    // the server is 10 minutes ahead of the device
    sim.answer(bootstrap("2025-12-13T14:35:30Z", "1.3.5"));
    assert_eq!(sim.s.clock_offset_ms, 600_000);
    sim.answer(code_answer("K7M3NP", 300));
    sim.poll_now();
    sim.answer(claimed());
    assert_eq!(
        sim.call().1,
        ApiCall::Attest {
            clock_offset_ms: 600_000
        }
    );
    let mut sim = Sim::new();
    sim.ev(DeviceEvent::Start);
    sim.answer(bootstrap("yesterday", "1.3.5"));
    assert!(matches!(sim.s.phase, Phase::Failed(_)));
}

#[test]
fn an_expired_token_is_renewed_once_before_the_next_step() {
    let mut sim = Sim::new();
    sim.run_to_pairing("K7M3NP");
    sim.poll_now();
    sim.answer(claimed());
    sim.answer(attest(300));
    let t = sim.mono;
    // the keys answer arrives after the token expired: attest again before config
    sim.at(t + 301_000).answer(keys());
    assert_eq!(sim.step(), "attest");
    assert!(sim
        .notes()
        .contains(&&Note::ReAttest { step: Step::Config }));
    sim.answer(attest(300));
    assert_eq!(sim.step(), "config");
}

#[test]
fn a_401_mid_way_re_attests_once_then_gives_up() {
    let mut sim = Sim::new();
    sim.run_to_pairing("K7M3NP");
    sim.poll_now();
    sim.answer(claimed());
    sim.answer(attest(300));
    sim.answer(keys());
    assert_eq!(sim.step(), "config");
    sim.error(http(401, None));
    assert_eq!(sim.step(), "attest");
    sim.answer(attest(300));
    assert_eq!(sim.step(), "config");
    sim.error(http(401, None));
    let Phase::Failed(f) = &sim.s.phase else {
        panic!()
    };
    assert_eq!(f.step, Step::Config);
}

#[test]
fn a_key_set_whose_kcv_fails_is_refused() {
    let mut sim = Sim::new();
    sim.run_to_pairing("K7M3NP");
    sim.poll_now();
    sim.answer(claimed());
    sim.answer(attest(300));
    let mut set = key_set(&ZMK, &MSK);
    set.keys.msk.kcv = "ABCDEF".into();
    sim.answer(ApiAnswer::Keys(Box::new(set)));
    let Phase::Failed(f) = &sim.s.phase else {
        panic!("{:?}", sim.s.phase)
    };
    assert!(f.message().contains("msk: KCV"), "{}", f.message());
    assert!(sim.s.progress.key_set.is_none());
    sim.no_call();
}
