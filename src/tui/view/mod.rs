//! `view(&Model, &mut Frame)`: the device on the left (shaped by the profile's form factor),
//! the debug side on the right when the terminal is wide enough, the hint bar at the bottom,
//! popups on top. Pure: it reads the model and draws, nothing else.

mod banner;
mod card;
mod debug;
mod device;
mod outcome;
mod pairing;
mod parts;
mod popups;
mod sale;
mod screens;
mod transactions;

pub use debug::wrapped_rows;
pub use popups::help_max_scroll;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Widget};
use ratatui::Frame;

use super::keys::{in_demo, When, BINDINGS};
use super::model::{Focus, Model};
use super::theme::Level;
use posemu_device::Phase;

/// Spinner frames; the spinner turns only while something is happening.
pub const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// Where things go on a frame of `area`.
struct Areas {
    banner: Option<Rect>,
    /// Below the banner: what popups cover.
    rest: Rect,
    device: Option<Rect>,
    debug: Option<Rect>,
    hints: Rect,
}

fn areas(m: &Model, mut area: Rect) -> Areas {
    let mut banner = None;
    // demo mode: the portal banner on top of everything, popups included
    if m.in_demo() && area.height >= 3 {
        let [top, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
        banner = Some(top);
        area = rest;
    }
    let [body, hints] = Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(area);
    let (device, debug) = match (m.device_visible(), m.debug_visible()) {
        (true, true) => {
            let form = m.profile().map(|p| p.form).unwrap_or_default();
            let w = device::wide_width(form).min(body.width / 2);
            let [dev, dbg] =
                Layout::horizontal([Constraint::Length(w), Constraint::Min(0)]).areas(body);
            (Some(dev), Some(dbg))
        }
        (true, false) => {
            let w = body.width.min(84);
            let dev = Rect {
                x: body.x + (body.width - w) / 2,
                width: w,
                ..body
            };
            (Some(dev), None)
        }
        (false, _) => (None, Some(body)),
    };
    Areas {
        banner,
        rest: area,
        device,
        debug,
        hints,
    }
}

/// The details panel's text area (columns, rows) at the model's terminal size, for scrolling.
pub fn detail_page(m: &Model) -> (u16, u16) {
    let (w, h) = m.size();
    areas(m, Rect::new(0, 0, w, h))
        .debug
        .and_then(|r| debug::detail_text(m, r))
        .map_or((0, 0), |t| (t.width, t.height))
}

pub fn view(m: &Model, f: &mut Frame) {
    let a = areas(m, f.area());
    let buf = f.buffer_mut();
    if let Some(top) = a.banner {
        banner::render(m, top, buf);
    }
    if let Some(dev) = a.device {
        device::render(m, dev, buf);
    }
    if let Some(dbg) = a.debug {
        debug::render(m, dbg, buf);
    }
    let (area, hints) = (a.rest, a.hints);
    match m.toast() {
        Some(toast) => message_line(m, hints, buf, &toast.text, toast.level),
        None => hint_bar(m, hints, buf),
    }
    popups::render(m, area, f);
}

/// A transient message in a place of its own (k9s's flash line): the hint bar's row, growing
/// upwards over the bottom of the frame for a long one. Everything under it is cleared
/// first, so nothing from before shows between its letters, and it never covers the QR code.
fn message_line(m: &Model, hints: Rect, buf: &mut Buffer, text: &str, level: Level) {
    let style = m.theme.toast(level);
    let width = hints.width.saturating_sub(2) as usize;
    let lines = device::wrap(text, width, 3);
    let h = (lines.len() as u16).clamp(1, hints.bottom().saturating_sub(1).max(1));
    let area = Rect {
        y: hints.bottom().saturating_sub(h),
        height: h,
        ..hints
    };
    Clear.render(area, buf);
    buf.set_style(area, style);
    for (i, l) in lines.iter().take(h as usize).enumerate() {
        buf.set_stringn(area.x + 1, area.y + i as u16, l, width, style);
    }
}

/// The keys that do something now, from the same table as the help.
fn hint_bar(m: &Model, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let phase = m.device().map(|d| &d.phase);
    let applies = |w: When| match w {
        When::Always => true,
        When::Pairing => phase == Some(&Phase::Pairing),
        When::Stopped => matches!(phase, Some(Phase::Failed(_) | Phase::UpdateRequired { .. })),
        When::Debug => m.debug_visible(),
        When::Exchange => m.debug_visible() && m.debug().selected().is_some(),
        When::HelpOnly => false,
        When::Pay(w) => m.pay_applies(w),
    };
    let right = if area.width >= 100 { " posemu " } else { "" };
    let room = (area.width as usize).saturating_sub(right.len() + 1);
    let mut hints: Vec<(&str, &str)> = Vec::new();
    if m.focus() == Focus::Exchanges && m.debug().selected().is_some() {
        hints.push(("Enter", "details"));
    }
    if m.debug_visible() && m.focus() != Focus::Device {
        hints.push(("↑↓", "select"));
    }
    let works = |a| !m.in_demo() || in_demo(a);
    for b in BINDINGS
        .iter()
        .filter(|b| applies(b.when) && works(b.action))
    {
        hints.push((b.shown.split(' ').next().unwrap_or(b.shown), b.hint));
    }
    let width = |(k, h): &(&str, &str)| k.chars().count() + h.chars().count() + 3;
    // help, quit and the debug side's key always fit
    let essential = |(k, _): &(&str, &str)| *k == "?" || *k == "q" || *k == "d";
    let mut used: usize = hints.iter().filter(|h| essential(h)).map(width).sum();
    let keep: Vec<bool> = hints
        .iter()
        .map(|h| {
            if essential(h) {
                return true;
            }
            let fits = used + width(h) <= room;
            if fits {
                used += width(h);
            }
            fits
        })
        .collect();
    let mut spans = vec![Span::raw(" ")];
    for ((key, hint), keep) in hints.into_iter().zip(keep) {
        if keep {
            spans.push(Span::styled(key.to_string(), t.key()));
            spans.push(Span::styled(format!(" {hint}  "), t.dim()));
        }
    }
    Line::from(spans).render(area, buf);
    if !right.is_empty() {
        let x = area.right().saturating_sub(right.len() as u16);
        buf.set_string(x, area.y, right, t.dim());
    }
}

/// A rectangle of `w` × `h` centred in `area` (clipped to it).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}
