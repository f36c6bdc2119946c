//! What the terminal's screen shows in each state of the flow: booting, update required,
//! pairing (in `pairing.rs`), setting up after the claim, ready, stopped.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use tui_big_text::PixelSize;

use super::pairing::pairing;
use super::parts::{big, big_height, gauge, item, para, spin, stack, styled, text};
use crate::tui::model::Model;
use posemu_device::{DeviceState, Failure, Phase, Step};

pub fn render(m: &Model, area: Rect, buf: &mut Buffer) {
    let area = Rect {
        x: area.x + 1,
        width: area.width.saturating_sub(2),
        ..area
    };
    if let Some(what) = &m.opening() {
        return booting(m, area, buf, Some(what));
    }
    let Some(d) = m.device() else {
        return booting(m, area, buf, Some("Starting"));
    };
    if m.sale_on_screen() {
        // the sale screen (a payment re-keying the device stays on it)
        return super::sale::render(m, d, area, buf);
    }
    match &d.phase {
        Phase::Off | Phase::Step(Step::Bootstrap) => booting(m, area, buf, None),
        Phase::Step(Step::PairingCode) | Phase::Step(Step::Status) => {
            if m.expired_code().is_some() {
                new_code(m, d, area, buf)
            } else {
                booting(m, area, buf, None)
            }
        }
        Phase::Pairing => pairing(m, d, area, buf),
        Phase::UpdateRequired { version, min } => update_required(m, version, min, area, buf),
        Phase::Step(_) => setting_up(m, d, area, buf),
        Phase::Ready => super::sale::render(m, d, area, buf),
        Phase::Failed(f) => failed(m, f, area, buf),
    }
}

pub(super) fn booting(m: &Model, area: Rect, buf: &mut Buffer, opening: Option<&str>) {
    let t = m.theme;
    let mut items = Vec::new();
    let size = if area.height >= 20 && area.width >= 50 {
        PixelSize::HalfWidth
    } else {
        PixelSize::Quadrant
    };
    items.push(item(
        big_height(size),
        false,
        big("viopay", t.brand(), size),
    ));
    if let Some(p) = m.profile() {
        items.push(item(
            1,
            true,
            text(styled(
                format!("{} · {} · app {}", p.model, p.os, p.app_version),
                t.muted(),
            )),
        ));
    }
    let d = m.device();
    let title = match (opening, d.map(|d| &d.phase)) {
        (Some(what), _) => format!("{what}…"),
        (None, Some(Phase::Step(s))) => format!("{}…", s.title()),
        _ => "Starting…".into(),
    };
    let trouble = m.trouble().filter(|_| opening.is_none());
    let mark = if trouble.is_some() { "⚠" } else { spin(m) };
    let mark_style = if trouble.is_some() {
        t.warn()
    } else {
        t.brand()
    };
    items.push(item(
        1,
        true,
        text(Line::from(vec![
            Span::styled(format!("{mark} "), mark_style),
            Span::styled(title, t.title()),
        ])),
    ));
    if let Some(server) = m.server().filter(|_| opening.is_none()) {
        let what = if m.embedded() {
            format!("{server} · embedded sandbox")
        } else {
            server.to_string()
        };
        items.push(item(1, false, text(styled(what, t.muted()))));
    }
    if let (Some(tr), Some(d)) = (trouble, d) {
        let retry = d
            .retry_due_ms
            .map(|due| {
                let left = std::time::Duration::from_millis(due.saturating_sub(m.now_ms()));
                format!(
                    "retry {} in {}",
                    tr.attempt,
                    posemu_protocol::duration::countdown(left)
                )
            })
            .unwrap_or_else(|| "retrying".into());
        items.push(item(1, true, text(styled("Cannot reach Viopay", t.warn()))));
        items.extend(para(
            short_error(&tr.error),
            t.muted(),
            area.width,
            2,
            false,
        ));
        items.push(item(1, false, text(styled(retry, t.muted()))));
    }
    stack(area, items, buf);
}

fn new_code(m: &Model, _d: &DeviceState, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let old = m.expired_code().unwrap_or_default().to_string();
    let items = vec![
        item(
            1,
            false,
            text(styled(format!("⏱ Code {old} expired"), t.warn())),
        ),
        item(
            1,
            true,
            text(Line::from(vec![
                Span::styled(format!("{} ", spin(m)), t.brand()),
                Span::styled("Getting a new pairing code…", t.title()),
            ])),
        ),
    ];
    stack(area, items, buf);
}

fn setting_up(m: &Model, d: &DeviceState, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let current = match d.phase {
        Phase::Step(s) => Some(s),
        _ => None,
    };
    let steps = [
        Step::Attest,
        Step::Keys,
        Step::Config,
        Step::TerminalParameters,
        Step::Activate,
    ];
    let done = steps
        .iter()
        .filter(|s| m.step_time(**s).is_some() && Some(**s) != current)
        .count();
    let mut items = vec![
        item(1, false, text(styled("✓ Claimed by the merchant", t.ok()))),
        item(1, true, text(styled("Setting up this terminal", t.brand()))),
    ];
    let w = area.width.min(44);
    let rows: Vec<(String, String, Style)> = steps
        .iter()
        .map(|s| {
            if Some(*s) == current {
                let retry = m
                    .trouble()
                    .filter(|tr| tr.step == *s || tr.step == Step::Attest);
                let (mark, style) = if retry.is_some() {
                    ("⚠", t.warn())
                } else {
                    (spin(m), t.brand())
                };
                (format!("{mark} {}", s.title()), String::new(), style)
            } else if let Some(took) = m.step_time(*s) {
                (
                    format!("✓ {}", s.title()),
                    posemu_protocol::duration::took(took),
                    t.ok(),
                )
            } else {
                (format!("· {}", s.title()), String::new(), t.muted())
            }
        })
        .collect();
    for (i, (label, right, style)) in rows.into_iter().enumerate() {
        items.push(item(1, i == 0, move |r: Rect, buf: &mut Buffer| {
            let x = r.x + r.width.saturating_sub(w) / 2;
            buf.set_stringn(x, r.y, &label, w as usize, style);
            let rw = right.chars().count() as u16;
            buf.set_string(x + w - rw, r.y, &right, t.muted());
        }));
    }
    let fraction = done as f64 / steps.len() as f64;
    items.push(item(1, true, move |r: Rect, buf: &mut Buffer| {
        gauge(t, r, buf, w.min(30), fraction)
    }));
    if let Some(tr) = m.trouble() {
        items.extend(para(short_error(&tr.error), t.warn(), area.width, 2, true));
    }
    stack(area, items, buf);
}

fn failed(m: &Model, f: &Failure, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let w = area.width.min(46);
    let mut items = vec![item(
        1,
        false,
        text(styled("✕ Activation stopped", t.bad())),
    )];
    let code = match (f.code(), f.http_status()) {
        (Some(c), Some(s)) => format!("{c} · HTTP {s}"),
        (None, Some(s)) => format!("HTTP {s}"),
        (Some(c), None) => c.to_string(),
        (None, None) => "—".into(),
    };
    let mut facts = vec![("Error", code), ("Step", f.step.title().to_string())];
    if let Some(tr) = f.trace_id() {
        facts.push(("Trace id", tr.to_string()));
    }
    for (i, (k, v)) in facts.into_iter().enumerate() {
        items.push(item(1, i == 0, move |r: Rect, buf: &mut Buffer| {
            let x = r.x + r.width.saturating_sub(w) / 2;
            buf.set_string(x, r.y, k, t.muted());
            buf.set_stringn(x + 10, r.y, &v, w.saturating_sub(10) as usize, t.title());
        }));
    }
    items.extend(para(&f.message(), t.screen(), w, 3, true));
    items.push(item(1, true, text(styled("What to do", t.title()))));
    items.extend(para(f.hint(), t.screen(), w, 3, false));
    items.push(item(
        1,
        true,
        text(Line::from(vec![
            Span::styled("OK", t.ok()),
            Span::styled(" retry   ", t.muted()),
            Span::styled("r", t.brand()),
            Span::styled(" start over", t.muted()),
        ])),
    ));
    stack(area, items, buf);
}

fn update_required(m: &Model, version: &str, min: &str, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let w = area.width.min(46);
    let mut items = vec![item(1, false, text(styled("⚠ Update required", t.warn())))];
    items.extend(para(
        &format!("This terminal runs Viopay POS {version}; the server needs {min} or later."),
        t.screen(),
        w,
        3,
        true,
    ));
    items.extend(para(
        "Install the update, then press OK to check again.",
        t.screen(),
        w,
        2,
        true,
    ));
    items.extend(para(
        "(posemu --ignore-min-version goes on anyway)",
        t.muted(),
        w,
        2,
        true,
    ));
    stack(area, items, buf);
}

/// The last, most specific part of a chained error ("…: Connection refused (os error 111)");
/// the timeline keeps the whole chain.
fn short_error(e: &str) -> &str {
    e.rsplit(": ").next().unwrap_or(e)
}
