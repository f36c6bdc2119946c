//! Popups' state: the profile picker from the profiles the executor read, and the keys inside each popup (help, curl,
//! profile picker, server input).

use crossterm::event::KeyEvent;

use super::effects::reopen;
use super::{Cmd, Model, Popup, ProfileItem};
use crate::tui::theme::Level;

/// The help scrolls (a short screen does not hold all the keys) and closes.
fn help_key(m: &mut Model, code: crossterm::event::KeyCode) {
    use crossterm::event::KeyCode;
    let max = crate::tui::view::help_max_scroll(m);
    let page = usize::from(m.size().1 / 2).max(1);
    let Some(Popup::Help { scroll }) = m.popup.as_mut() else {
        return;
    };
    *scroll = match code {
        KeyCode::Up | KeyCode::Char('k') => scroll.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => *scroll + 1,
        KeyCode::PageUp => scroll.saturating_sub(page),
        KeyCode::PageDown | KeyCode::Char(' ') => *scroll + page,
        KeyCode::Home => 0,
        KeyCode::End => max,
        KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') | KeyCode::Char('?') => {
            m.popup = None;
            return;
        }
        _ => *scroll,
    }
    .min(max);
}

/// The profiles on disk arrived ([`Cmd::ListProfiles`]): the picker opens on the current one.
pub(super) fn show_profiles(m: &mut Model, items: Result<Vec<ProfileItem>, String>) {
    let mut items = match items {
        Ok(items) => items,
        Err(e) => {
            m.toast_(Level::Bad, e);
            return;
        }
    };
    let current = m.profile().map(|p| p.name.clone());
    for i in &mut items {
        i.current = i.ok && current.as_deref() == Some(i.name.as_str());
    }
    let selected = items.iter().position(|i| i.current).unwrap_or(0);
    m.popup = Some(Popup::Profiles { items, selected });
}

pub(super) fn on_popup_key(m: &mut Model, k: KeyEvent) -> Vec<Cmd> {
    use crossterm::event::KeyCode;
    if matches!(m.popup, Some(Popup::Help { .. })) {
        help_key(m, k.code);
        return Vec::new();
    }
    let Some(popup) = m.popup.as_mut() else {
        return Vec::new();
    };
    match popup {
        Popup::Help { .. } => {} // help_key, above
        Popup::Curl(_) => {
            if matches!(
                k.code,
                KeyCode::Esc
                    | KeyCode::Enter
                    | KeyCode::Char('q')
                    | KeyCode::Char('?')
                    | KeyCode::Char('y')
            ) {
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
                let mut options = m.options.clone();
                options.profile = item.name.clone();
                options.fresh = false;
                return reopen(m, options, format!("Switching to profile {}", item.name));
            }
            _ => {}
        },
        Popup::Server(input) => match k.code {
            KeyCode::Esc => m.popup = None,
            KeyCode::Enter => {
                let url = input.value().trim().to_string();
                m.popup = None;
                let mut options = m.options.clone();
                options.fresh = false;
                let what = if url.is_empty() {
                    options.server = None;
                    "Starting the embedded sandbox".to_string()
                } else {
                    options.server = Some(url.clone());
                    options.code_ttl = None;
                    format!("Connecting to {url}")
                };
                return reopen(m, options, what);
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
