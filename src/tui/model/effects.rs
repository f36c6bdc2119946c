//! Keys and kiosk moves that need the world: sandbox helper calls (claim, expire, reset),
//! opening another device, writing a HAR file. Each answers a [`Cmd`]; the executor's result
//! comes back as a [`Msg`](super::Msg).

use super::{Cmd, Model, SandboxAction};
use crate::tui::keys::Action;
use crate::tui::theme::Level;
use posemu_device::Phase;
use posemu_runtime::DeviceOptions;

pub(super) fn restart(m: &mut Model) -> Vec<Cmd> {
    let Some(generation) = m.generation() else {
        return Vec::new();
    };
    // The server must forget the device first, or it would still hold the old claim.
    m.toast_(Level::Info, "Restarting…");
    vec![Cmd::SandboxHelper {
        generation,
        action: SandboxAction::Reset,
        code: None,
    }]
}

pub(super) fn code_action(m: &mut Model, action: Action) -> Vec<Cmd> {
    let what = if action == Action::Claim {
        SandboxAction::Claim
    } else {
        SandboxAction::Expire
    };
    code_call(m, what)
}

/// Demo mode's claim: as `c`, but a failure (the merchant was quicker in the portal) is only
/// logged.
pub(super) fn auto_claim(m: &mut Model) -> Vec<Cmd> {
    code_call(m, SandboxAction::AutoClaim)
}

fn code_call(m: &mut Model, what: SandboxAction) -> Vec<Cmd> {
    let Some(generation) = m.generation() else {
        return Vec::new();
    };
    let code = m
        .device()
        .filter(|d| d.phase == Phase::Pairing)
        .and_then(|d| d.code.as_ref())
        .map(|c| c.code.clone());
    let Some(code) = code else {
        m.toast_(Level::Info, "No pairing code on screen");
        return Vec::new();
    };
    m.log(
        Level::Info,
        if what != SandboxAction::Expire {
            format!("claiming {code} as the merchant (sandbox helper)")
        } else {
            format!("expiring {code} (sandbox helper)")
        },
    );
    vec![Cmd::SandboxHelper {
        generation,
        action: what,
        code: Some(code),
    }]
}

pub(super) fn reopen(m: &mut Model, options: DeviceOptions, what: String) -> Vec<Cmd> {
    m.opening = Some(what);
    vec![Cmd::Open(Box::new(options))]
}

pub(super) fn export(m: &mut Model) -> Vec<Cmd> {
    if m.debug.exchanges().is_empty() {
        m.toast_(Level::Info, "No exchanges to export yet");
        return Vec::new();
    }
    let device = m.profile().map_or("device".into(), |p| p.device_id.clone());
    let stamp = m.clock.now().format("%Y%m%d-%H%M%S");
    vec![Cmd::Export {
        exchanges: m.debug.exchanges().to_vec(),
        name: format!("posemu-{device}-{stamp}.har"),
    }]
}
