//! Work that leaves the model: sandbox helper calls (claim, expire, reset), opening another
//! device session, writing a HAR file. Each answers a [`Cmd::Spawn`] whose result comes back
//! as a [`Msg`].

use std::path::PathBuf;

use super::{Cmd, Model, Msg, SandboxAction};
use crate::cli::device_args::DeviceArgs;
use crate::tui::keys::Action;
use crate::tui::theme::Level;
use posemu_client::MerchantError;
use posemu_device::Phase;
use posemu_runtime::Home;

pub(super) fn restart(m: &mut Model) -> Vec<Cmd> {
    let Some(live) = m.live.as_ref() else {
        return Vec::new();
    };
    // The server must forget the device first, or it would still hold the old claim.
    let generation = live.generation;
    let transport = live.session.transport.clone();
    let device_id = live.session.profile.device_id.clone();
    let log = live.session.log.clone();
    let embedded = live.sandbox.is_some();
    m.toast_(Level::Info, "Restarting…");
    vec![Cmd::Spawn(Box::pin(async move {
        let result =
            posemu_client::merchant::sandbox_reset(&transport, &device_id, Some(&log)).await;
        let result = match result {
            Ok(_) => Ok("device reset on the sandbox".to_string()),
            // A real server has no /sandbox/ helpers: restarting the device alone is all we can.
            Err(e) if !embedded && e.status() == Some(404) => {
                Err("the server has no /sandbox/ helpers; restarting the device only".into())
            }
            Err(e) => Err(e.to_string()),
        };
        Msg::Sandbox {
            generation,
            action: SandboxAction::Reset,
            result,
        }
    }))]
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
    let Some(live) = m.live.as_ref() else {
        return Vec::new();
    };
    let code = live
        .session
        .driver
        .state()
        .code
        .as_ref()
        .map(|c| c.code.clone());
    let Some(code) = code.filter(|_| live.session.driver.state().phase == Phase::Pairing) else {
        m.toast_(Level::Info, "No pairing code on screen");
        return Vec::new();
    };
    let generation = live.generation;
    let transport = live.session.transport.clone();
    let device_id = live.session.profile.device_id.clone();
    let log = live.session.log.clone();
    let claim = what != SandboxAction::Expire;
    m.log(
        Level::Info,
        if claim {
            format!("claiming {code} as the merchant (sandbox helper)")
        } else {
            format!("expiring {code} (sandbox helper)")
        },
    );
    vec![Cmd::Spawn(Box::pin(async move {
        let result = if claim {
            posemu_client::sandbox_claim(&transport, &device_id, Some(&log)).await
        } else {
            posemu_client::sandbox_expire_code(&transport, &device_id, Some(&log)).await
        };
        let result = match result {
            Ok(a) if claim => Ok(format!(
                "Code {} claimed: the terminal will notice at its next poll",
                a.pairing_code
            )),
            Ok(a) => Ok(format!(
                "Code {} expired on the server: the terminal will notice at its next poll",
                a.pairing_code
            )),
            Err(e) => Err(sandbox_error(&e)),
        };
        Msg::Sandbox {
            generation,
            action: what,
            result,
        }
    }))]
}

/// A sandbox helper's failure in words; a server without the helpers is told apart.
fn sandbox_error(e: &MerchantError) -> String {
    if e.status() == Some(404) && e.message() == Some("Route not found") {
        return "This server is not a posemu sandbox (no /sandbox/ helpers): claim the code in \
                the merchant portal instead"
            .into();
    }
    match e.message() {
        Some(msg) => format!("Sandbox: {msg}"),
        None => e.to_string(),
    }
}

pub(super) fn reopen(m: &mut Model, args: DeviceArgs, what: String) -> Vec<Cmd> {
    m.opening = Some(what);
    let opener = m.opener.clone();
    vec![Cmd::Spawn(Box::pin(async move {
        let result = opener(args.clone()).await.map(Box::new);
        Msg::Opened {
            args: Box::new(args),
            result,
        }
    }))]
}

pub(super) fn export(m: &mut Model) -> Vec<Cmd> {
    if m.exchanges.is_empty() {
        m.toast_(Level::Info, "No exchanges to export yet");
        return Vec::new();
    }
    let exchanges = m.exchanges.clone();
    let device = m.profile().map_or("device".into(), |p| p.device_id.clone());
    let stamp = m.clock.now().format("%Y%m%d-%H%M%S");
    let name = format!("posemu-{device}-{stamp}.har");
    let dirs: Vec<PathBuf> = match &m.export_dir {
        Some(d) => vec![d.clone()],
        None => std::env::current_dir()
            .into_iter()
            .chain(Home::discover().ok().map(|h| h.data_dir))
            .collect(),
    };
    vec![Cmd::Spawn(Box::pin(async move {
        let result = tokio::task::spawn_blocking(move || {
            let text = posemu_client::export::har_string(exchanges.iter().map(|e| e.as_ref()));
            let mut last = String::from("no directory to write to");
            for dir in dirs {
                let path = dir.join(&name);
                match std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, &text)) {
                    Ok(()) => return Ok(path),
                    Err(e) => last = format!("{}: {e}", path.display()),
                }
            }
            Err(last)
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        Msg::Exported(result)
    }))]
}
