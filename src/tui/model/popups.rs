//! Popups' state: building the profile picker, and the keys inside each popup (help, curl,
//! profile picker, server input).

use crossterm::event::KeyEvent;

use super::effects::reopen;
use super::{Cmd, Model, Popup, ProfileItem};
use crate::tui::theme::Level;
use posemu_runtime::Home;

pub(super) fn open_profiles(m: &mut Model) {
    let current = m.profile().map(|p| p.name.clone());
    let home = m.home.clone().map_or_else(Home::discover, Ok);
    let items: Vec<ProfileItem> = match home {
        Ok(home) => home
            .list_profiles()
            .into_iter()
            .map(|(p, origin)| match p {
                Ok(p) => ProfileItem {
                    current: current.as_deref() == Some(p.name.as_str()),
                    detail: format!(
                        "{} · {} · {} · {}",
                        p.model,
                        p.device_id,
                        p.app_version,
                        origin.as_str()
                    ),
                    name: p.name,
                    ok: true,
                },
                Err(e) => ProfileItem {
                    name: e.file.clone(),
                    detail: e.to_string(),
                    ok: false,
                    current: false,
                },
            })
            .collect(),
        Err(e) => {
            m.toast_(Level::Bad, e.to_string());
            return;
        }
    };
    let selected = items.iter().position(|i| i.current).unwrap_or(0);
    m.popup = Some(Popup::Profiles { items, selected });
}

pub(super) fn on_popup_key(m: &mut Model, k: KeyEvent) -> Vec<Cmd> {
    use crossterm::event::KeyCode;
    let Some(popup) = m.popup.as_mut() else {
        return Vec::new();
    };
    match popup {
        Popup::Help | Popup::Curl(_) => {
            if matches!(
                k.code,
                KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') | KeyCode::Char('?')
            ) || (matches!(popup, Popup::Curl(_)) && k.code == KeyCode::Char('y'))
            {
                m.popup = None;
            }
        }
        Popup::Profiles { items, selected } => match k.code {
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('p') => m.popup = None,
            KeyCode::Up | KeyCode::Char('k') => *selected = selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                *selected = (*selected + 1).min(items.len().saturating_sub(1))
            }
            KeyCode::Enter => {
                let Some(item) = items.get(*selected).cloned() else {
                    return Vec::new();
                };
                if !item.ok {
                    m.toast_(Level::Bad, item.detail);
                    return Vec::new();
                }
                m.popup = None;
                let mut args = m.args.clone();
                args.profile = item.name.clone();
                args.fresh = false;
                return reopen(m, args, format!("Switching to profile {}", item.name));
            }
            _ => {}
        },
        Popup::Server(input) => match k.code {
            KeyCode::Esc => m.popup = None,
            KeyCode::Enter => {
                let url = input.value().trim().to_string();
                m.popup = None;
                let mut args = m.args.clone();
                args.fresh = false;
                let what = if url.is_empty() {
                    args.server = None;
                    "Starting the embedded sandbox".to_string()
                } else {
                    args.server = Some(url.clone());
                    args.code_ttl = None;
                    format!("Connecting to {url}")
                };
                return reopen(m, args, what);
            }
            _ => {
                let ev = crossterm::event::Event::Key(k);
                if let Some(req) = tui_input::backend::crossterm::to_input_request(&ev) {
                    input.handle(req);
                }
            }
        },
    }
    Vec::new()
}
