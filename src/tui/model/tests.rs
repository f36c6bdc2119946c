//! `update` on its own: keys and device answers in, commands out. No executor, no runtime, no
//! I/O: what the screen asks of the world is only looked at.

use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::tui::cmd::Slot;
use posemu_device::{DeviceConfig, Effect, Timer};
use posemu_protocol::api::{ApiAnswer, ApiCall, CallError};
use posemu_protocol::clock::ManualClock;
use posemu_protocol::wire::{BootstrapResponse, PairingCodeResponse};

const GEN: u64 = 7;

fn model() -> (Model, Vec<Cmd>) {
    attach(GEN, |_| None)
}

/// A model with the shipped PAX A920 attached as device `generation` of the screen: a new
/// device, or one resumed from the saved progress `saved` makes of its device id.
pub(super) fn attach(
    generation: u64,
    saved: impl FnOnce(&str) -> Option<posemu_device::progress::Progress>,
) -> (Model, Vec<Cmd>) {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_spec_example());
    let mut m = Model::new(
        DeviceOptions::default(),
        clock.clone(),
        Theme { color: false },
    );
    let profile = posemu_profile::builtin_named("pax-a920").expect("a shipped profile");
    let server = "http://pos.example.test";
    let config = DeviceConfig::new(
        &profile.device_id,
        server,
        &profile.app_version,
        profile.zmk,
    );
    let state = match saved(&profile.device_id) {
        Some(p) => DeviceState::resume(config, p),
        None => DeviceState::new(config),
    };
    let attached = Attached {
        generation,
        options: None,
        machine: Machine::new(state, clock, 1),
        device_id: profile.device_id.clone(),
        profile,
        server: server.into(),
        portal: None,
        exchanges: Vec::new(),
        resume_problem: None,
        notice: None,
    };
    let cmds = update(&mut m, Msg::Attached(Box::new(attached)));
    (m, cmds)
}

fn key(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

/// The calls among `cmds`, with their ids.
fn calls(cmds: &[Cmd]) -> Vec<(u32, ApiCall)> {
    cmds.iter()
        .filter_map(|c| match c {
            Cmd::Device {
                generation: GEN,
                effect: Effect::Call { id, call },
            } => Some((*id, call.clone())),
            _ => None,
        })
        .collect()
}

fn answer(m: &mut Model, id: u32, result: Result<ApiAnswer, CallError>) -> Vec<Cmd> {
    let event = DeviceEvent::Answer { call: id, result };
    update(
        m,
        Msg::Device {
            generation: GEN,
            event,
        },
    )
}

#[test]
fn power_on_asks_for_the_bootstrap_call_and_nothing_else_happens() {
    let (m, cmds) = model();
    let calls = calls(&cmds);
    assert_eq!(calls.len(), 1, "one call at power-on");
    assert_eq!(calls[0].1.step(), Step::Bootstrap);
    assert_eq!(
        m.device().map(|d| d.phase.clone()),
        Some(Phase::Step(Step::Bootstrap))
    );
    assert!(m.timeline().iter().any(|e| e.text.starts_with("power on")));
}

#[test]
fn a_device_answer_asks_for_the_next_call() {
    let (mut m, cmds) = model();
    let (id, _) = calls(&cmds)[0].clone();
    let boot = ApiAnswer::Bootstrap(BootstrapResponse {
        status: "ok".into(),
        server_time: "2025-01-15T10:30:00Z".into(),
        min_supported_version: "1.0.0".into(),
    });
    let cmds = answer(&mut m, id, Ok(boot));
    let next = calls(&cmds);
    assert_eq!(next.len(), 1, "one next call");
    assert_eq!(next[0].1.step(), Step::PairingCode);
    // the pairing code shown: a code-expiry timer and the QR code, still no I/O done
    let code = ApiAnswer::PairingCode(PairingCodeResponse {
        pairing_code: "SVNX9Z".into(),
        expires_in_sec: 300,
    });
    let cmds = answer(&mut m, next[0].0, Ok(code));
    assert!(cmds.iter().any(|c| matches!(
        c,
        Cmd::Device {
            effect: Effect::Wait {
                timer: Timer::CodeExpiry,
                ..
            },
            ..
        }
    )));
    assert!(m
        .qr()
        .is_some_and(|(link, _)| link.ends_with("/portal?code=SVNX9Z")));
}

#[test]
fn a_failed_call_becomes_a_retry_timer_and_stale_events_are_ignored() {
    let (mut m, cmds) = model();
    let (id, _) = calls(&cmds)[0].clone();
    let cmds = answer(&mut m, id, Err(CallError::Network("refused".into())));
    assert!(calls(&cmds).is_empty(), "no call until the backoff is over");
    assert!(cmds.iter().any(|c| matches!(
        c,
        Cmd::Device {
            effect: Effect::Wait {
                timer: Timer::Retry,
                ..
            },
            ..
        }
    )));
    assert!(m.trouble().is_some_and(|t| t.attempt >= 1));
    // an answer for an older device (a profile switch since) changes nothing
    let stale = Msg::Device {
        generation: GEN - 1,
        event: DeviceEvent::Answer {
            call: id,
            result: Err(CallError::Network("refused".into())),
        },
    };
    assert!(update(&mut m, stale).is_empty());
    assert!(m.trouble().is_some_and(|t| t.attempt == 1));
}

#[test]
fn restart_resets_on_the_sandbox_then_saves_and_powers_on_again() {
    let (mut m, _) = model();
    let cmds = update(&mut m, key('r'));
    assert!(matches!(
        cmds.as_slice(),
        [Cmd::SandboxHelper {
            generation: GEN,
            action: SandboxAction::Reset,
            ..
        }]
    ));
    let cmds = update(
        &mut m,
        Msg::Sandbox {
            generation: GEN,
            action: SandboxAction::Reset,
            result: Ok("device reset on the sandbox".into()),
        },
    );
    assert!(
        cmds.iter().any(|c| matches!(
            c,
            Cmd::Save {
                generation: GEN,
                ..
            }
        )),
        "the fresh progress is saved"
    );
    assert_eq!(calls(&cmds).len(), 1, "and bootstrap is called again");
}

#[test]
fn keys_answer_commands_the_executor_carries_out() {
    let (mut m, _) = model();
    assert!(matches!(
        update(&mut m, key('p')).as_slice(),
        [Cmd::ListProfiles]
    ));
    assert!(m.popup().is_none(), "the picker waits for the list");
    let items = vec![ProfileItem {
        name: "pax-a920".into(),
        detail: String::new(),
        ok: true,
        current: false,
    }];
    assert!(update(&mut m, Msg::Profiles(Ok(items))).is_empty());
    assert!(matches!(
        m.popup(),
        Some(Popup::Profiles { items, selected: 0 }) if items[0].current
    ));
    // Enter on the picker opens that profile, as a command
    let cmds = update(
        &mut m,
        Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
    );
    assert!(matches!(cmds.as_slice(), [Cmd::Open(o)] if o.profile == "pax-a920" && !o.fresh));
    assert_eq!(m.opening(), Some("Switching to profile pax-a920"));

    // nothing to claim before a code shows, nothing to export before an exchange
    assert!(update(&mut m, key('c')).is_empty());
    assert!(update(&mut m, key('e')).is_empty());
    assert!(matches!(update(&mut m, key('q')).as_slice(), [Cmd::Quit]));
    assert!(m.quit());
}

#[test]
fn a_not_a_sandbox_answer_is_shown_by_its_variant() {
    let (mut m, _) = model();
    let cmds = update(
        &mut m,
        Msg::Sandbox {
            generation: GEN,
            action: SandboxAction::Claim,
            result: Err(HelperError::NotASandbox),
        },
    );
    assert!(cmds.is_empty());
    let toast = m.toast().map(|t| t.text.clone()).unwrap_or_default();
    assert!(toast.contains("not a posemu sandbox"), "{toast}");
}

#[test]
fn demo_moves_are_delayed_messages_in_one_slot() {
    let (mut m, _) = model();
    m.set_demo(Some(DemoMode {
        auto_claim: Some(Duration::from_secs(20)),
        ..DemoMode::default()
    }));
    let note = posemu_device::Note::CodeShown {
        code: "SVNX9Z".into(),
        expires_in: Duration::from_secs(300),
        resumed: false,
    };
    m.demo_note(&note);
    let out = std::mem::take(&mut m.out);
    assert!(matches!(
        out.as_slice(),
        [Cmd::After { slot: Slot::Demo, after, .. }] if *after == Duration::from_secs(20)
    ));
    m.demo_note(&posemu_device::Note::Claimed);
    assert!(matches!(m.out.as_slice(), [Cmd::Cancel(Slot::Demo)]));
}
