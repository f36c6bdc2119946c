//! `update`: one message in, the model changed, commands out; and what each key does. Nothing
//! here does I/O or spawns: whatever needs the world is a [`Cmd`].

use crossterm::event::KeyEvent;
use tokio::time::Instant;
use tui_input::Input;

use super::demo::on_due;
use super::effects::{code_action, export, restart};
use super::popups::{on_popup_key, show_profiles};
use super::{Cmd, Focus, Model, Msg, Popup, SandboxAction, SECOND};
use crate::tui::exec::HelperError;
use crate::tui::keys::{self, Action};
use crate::tui::theme::Level;
use posemu_device::{DeviceEvent, Phase};

/// Advances the model by one message; answers what the world must do for it.
pub fn update(m: &mut Model, msg: Msg) -> Vec<Cmd> {
    let mut cmds = dispatch(m, msg);
    // what the machine and the kiosk asked for on the way comes first, in order
    let mut out = std::mem::take(&mut m.out);
    out.append(&mut cmds);
    out
}

fn dispatch(m: &mut Model, msg: Msg) -> Vec<Cmd> {
    match msg {
        Msg::Key(k) => return on_key(m, k),
        Msg::Resize(w, h) => m.set_size(w, h),
        Msg::Tick => {
            m.spinner = m.spinner.wrapping_add(1);
            if m.toast.as_ref().is_some_and(|t| t.until <= Instant::now()) {
                m.toast = None;
            }
        }
        Msg::Quit => {
            m.quit = true;
            return vec![Cmd::Quit];
        }
        Msg::Device { generation, event } => {
            if m.generation() == Some(generation) {
                m.device_event(event);
            }
        }
        Msg::Exchange {
            generation,
            exchange,
        } => {
            if m.generation() == Some(generation) {
                m.debug.push(exchange, m.theme);
            }
        }
        Msg::Sandbox {
            generation,
            action,
            result,
        } => {
            if m.generation() != Some(generation) {
                return Vec::new();
            }
            match (action, result) {
                (SandboxAction::Reset, result) => {
                    if let Err(e) = result {
                        m.log(Level::Warn, format!("sandbox reset: {e}"));
                    }
                    if let Some(d) = m.device.as_mut() {
                        d.forget();
                    }
                    m.log(Level::Info, "restart from scratch");
                    m.device_event(DeviceEvent::Restart);
                    m.toast_(Level::Info, "Restarted from scratch");
                }
                (_, Err(e @ HelperError::NotCurrent(_))) => {
                    m.log(Level::Info, e.to_string());
                    m.toast_(Level::Info, e.to_string());
                }
                (SandboxAction::AutoClaim, Err(e)) => {
                    m.log(Level::Warn, format!("auto-claim: {e}"))
                }
                (SandboxAction::Settle, Ok(text)) => {
                    m.log(Level::Good, text.clone());
                    m.toast_(Level::Good, text);
                    m.sale_reload();
                }
                (_, Ok(text)) => m.toast_(Level::Good, text),
                (_, Err(e)) => {
                    m.log(Level::Bad, e.to_string());
                    m.toast_(Level::Bad, e.to_string());
                }
            }
        }
        // the executor attaches an opened device before `update` sees it
        Msg::Opened { result, .. } => {
            if let Err(e) = result {
                return dispatch(m, Msg::OpenFailed(e.to_string()));
            }
        }
        Msg::Attached(a) => m.attach(*a),
        Msg::OpenFailed(e) => {
            m.opening = None;
            m.log(Level::Bad, e.clone());
            m.toast_(Level::Bad, e);
        }
        Msg::Profiles(items) => show_profiles(m, items),
        Msg::SaveFailed(e) => m.toast_(Level::Bad, format!("Cannot save progress: {e}")),
        Msg::Exported(result) => match result {
            Ok(path) => {
                let text = format!("HAR written to {}", path.display());
                m.log(Level::Good, text.clone());
                m.toast_(Level::Good, text);
            }
            Err(e) => m.toast_(Level::Bad, format!("HAR export failed: {e}")),
        },
        Msg::Demo {
            generation,
            seq,
            due,
        } => return on_due(m, generation, seq, due),
        Msg::Pay { generation, event } => {
            if m.generation() == Some(generation) {
                m.pay_event(event);
            }
        }
        Msg::Charges { generation, result } => {
            if m.generation() == Some(generation) {
                m.charges_loaded(result);
            }
        }
    }
    Vec::new()
}

fn on_key(m: &mut Model, k: KeyEvent) -> Vec<Cmd> {
    use crossterm::event::{KeyCode, KeyModifiers};
    if k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL) {
        m.quit = true;
        return vec![Cmd::Quit];
    }
    if m.popup.is_some() {
        return on_popup_key(m, k);
    }
    match keys::lookup(&k) {
        Some(b) => match m.sale_key(b.action, &k) {
            Some(cmds) => cmds,
            None => act(m, b.action),
        },
        None => Vec::new(),
    }
}

fn act(m: &mut Model, action: Action) -> Vec<Cmd> {
    if m.demo.is_some() && !keys::in_demo(action) {
        // the banner's portal URL belongs to this demo's sandbox and terminal
        let why = match action {
            Action::Server => "Demo mode runs the embedded sandbox only",
            _ => "Demo mode: for another terminal, quit and run posemu demo --profile NAME",
        };
        m.toast_(Level::Info, why);
        return Vec::new();
    }
    match action {
        Action::Quit => {
            m.quit = true;
            return vec![Cmd::Quit];
        }
        Action::Help => m.popup = Some(Popup::Help { scroll: 0 }),
        Action::FocusNext | Action::FocusPrev => {
            let order: &[Focus] = match (m.device_visible(), m.debug_visible()) {
                (true, true) => &[Focus::Device, Focus::Exchanges, Focus::Details],
                (false, true) => &[Focus::Exchanges, Focus::Details],
                _ => &[Focus::Device],
            };
            let i = order.iter().position(|f| *f == m.focus).unwrap_or(0);
            let n = order.len();
            let j = if action == Action::FocusNext {
                (i + 1) % n
            } else {
                (i + n - 1) % n
            };
            m.focus = order[j];
        }
        Action::Up | Action::Down => {
            let d = if action == Action::Up { -1 } else { 1 };
            if m.focus == Focus::Details {
                m.debug.scroll_by(d, m.detail_page());
            } else {
                m.debug.select(d, m.theme);
            }
        }
        Action::PageUp => m.debug.scroll_by(-m.page(), m.detail_page()),
        Action::PageDown => m.debug.scroll_by(m.page(), m.detail_page()),
        Action::Ok => {
            if m.focus == Focus::Exchanges && m.debug.selected().is_some() {
                m.focus = Focus::Details;
            } else if m
                .device()
                .is_some_and(|d| matches!(d.phase, Phase::Failed(_) | Phase::UpdateRequired { .. }))
            {
                m.log(Level::Info, "retry");
                m.device_event(DeviceEvent::Retry);
            }
        }
        Action::Cancel => {
            if m.focus != Focus::Device && m.device_visible() {
                m.focus = Focus::Device;
                m.debug.follow_newest(m.theme);
            } else {
                m.toast = None;
            }
        }
        Action::Clear => m.toast = None,
        Action::Restart => return restart(m),
        Action::Claim | Action::Expire => return code_action(m, action),
        // the sale's keys (`Model::sale_key` takes them all)
        Action::Digit
        | Action::Left
        | Action::Right
        | Action::Transactions
        | Action::Void
        | Action::Refund
        | Action::Settle => {}
        Action::Profiles => return vec![Cmd::ListProfiles],
        Action::Server => {
            let current = m.options.server.clone().unwrap_or_default();
            m.popup = Some(Popup::Server(Input::new(current)));
        }
        Action::Export => return export(m),
        Action::CopyCurl => {
            if let Some(e) = m.selected_exchange() {
                let text = posemu_client::export::curl(e);
                m.popup = Some(Popup::Curl(text.clone()));
                return vec![Cmd::Clipboard(text)];
            }
            m.toast_(Level::Info, "No exchange selected");
        }
        Action::ToggleDebug => {
            m.debug_toggled = !m.debug_toggled;
            m.focus = if m.device_visible() {
                Focus::Device
            } else {
                Focus::Exchanges
            };
        }
        Action::PollSlower | Action::PollFaster => {
            let Some(d) = m.device() else {
                return Vec::new();
            };
            let cur = d.config.poll_interval;
            let next = if action == Action::PollSlower {
                cur + SECOND
            } else {
                cur.saturating_sub(SECOND)
            };
            let next = posemu_device::poll::clamp_interval(next);
            m.device_event(DeviceEvent::SetPollInterval(next));
            let text = if next == cur {
                format!(
                    "Poll interval stays {} (spec: 3–5 s)",
                    posemu_protocol::duration::took(next)
                )
            } else {
                format!("Polling every {}", posemu_protocol::duration::took(next))
            };
            m.toast_(Level::Info, text);
        }
    }
    Vec::new()
}
