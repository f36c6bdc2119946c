//! What the terminal's screen shows in each state of the flow: booting, update required,
//! pairing (big code, QR, countdown), setting up after the claim, ready, stopped.

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;
use tui_big_text::{BigText, PixelSize};

use super::device::wrap;
use super::SPINNER;
use crate::device::{DeviceState, Failure, Phase, Step};
use crate::tui::model::{fmt_mmss, fmt_took, Model};
use crate::tui::qr::{QrMatrix, QrWidget};
use crate::tui::theme::Theme;

pub fn render(m: &Model, area: Rect, buf: &mut Buffer) {
    let area = Rect {
        x: area.x + 1,
        width: area.width.saturating_sub(2),
        ..area
    };
    if let Some(what) = &m.opening {
        return booting(m, area, buf, Some(what));
    }
    let Some(d) = m.device() else {
        return booting(m, area, buf, Some("Starting"));
    };
    match &d.phase {
        Phase::Off | Phase::Step(Step::Bootstrap) => booting(m, area, buf, None),
        Phase::Step(Step::PairingCode) | Phase::Step(Step::Status) => {
            if m.expired_code.is_some() {
                new_code(m, d, area, buf)
            } else {
                booting(m, area, buf, None)
            }
        }
        Phase::Pairing => pairing(m, d, area, buf),
        Phase::UpdateRequired { version, min } => update_required(m, version, min, area, buf),
        Phase::Step(_) => setting_up(m, d, area, buf),
        Phase::Ready => ready(m, d, area, buf),
        Phase::Failed(f) => failed(m, f, area, buf),
    }
}

// ----- a tiny vertical stack: items of fixed height, spare rows spread as gaps -----

type Draw<'a> = Box<dyn Fn(Rect, &mut Buffer) + 'a>;

struct Item<'a> {
    height: u16,
    /// A blank row before this item, if there is room.
    gap: bool,
    draw: Draw<'a>,
}

fn item<'a>(height: u16, gap: bool, draw: impl Fn(Rect, &mut Buffer) + 'a) -> Item<'a> {
    Item {
        height,
        gap,
        draw: Box::new(draw),
    }
}

fn stack(area: Rect, items: Vec<Item<'_>>, buf: &mut Buffer) {
    let need: u16 = items.iter().map(|i| i.height).sum();
    let mut spare = area.height.saturating_sub(need);
    let gaps: Vec<bool> = items
        .iter()
        .map(|i| {
            let g = i.gap && spare > 0;
            if g {
                spare -= 1;
            }
            g
        })
        .collect();
    let mut y = area.y + spare / 2;
    for (it, gap) in items.iter().zip(gaps) {
        y += u16::from(gap);
        if y + it.height > area.bottom() {
            break;
        }
        (it.draw)(
            Rect {
                y,
                height: it.height,
                ..area
            },
            buf,
        );
        y += it.height;
    }
}

fn text<'a>(line: Line<'a>) -> impl Fn(Rect, &mut Buffer) + 'a {
    move |r, buf| line.clone().alignment(Alignment::Center).render(r, buf)
}

fn styled(s: impl Into<String>, style: Style) -> Line<'static> {
    Line::from(Span::styled(s.into(), style))
}

/// Word-wrapped, centred lines, as items.
fn para<'a>(s: &str, style: Style, width: u16, max: usize, gap: bool) -> Vec<Item<'a>> {
    wrap(s, width as usize, max)
        .into_iter()
        .enumerate()
        .map(|(i, l)| item(1, gap && i == 0, text(styled(l, style))))
        .collect()
}

fn spin(m: &Model) -> &'static str {
    SPINNER[m.spinner % SPINNER.len()]
}

fn big<'a>(s: &str, style: Style, size: PixelSize) -> impl Fn(Rect, &mut Buffer) + 'a {
    let w = BigText::builder()
        .pixel_size(size)
        .style(style)
        .lines(vec![Line::from(s.to_string())])
        .alignment(Alignment::Center)
        .build();
    move |r, buf| (&w).render(r, buf)
}

fn big_height(size: PixelSize) -> u16 {
    match size {
        PixelSize::Full | PixelSize::HalfWidth => 8,
        PixelSize::Sextant => 3,
        _ => 4,
    }
}

// ----- the screens -----

fn booting(m: &Model, area: Rect, buf: &mut Buffer, opening: Option<&str>) {
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
    let trouble = m.trouble.as_ref().filter(|_| opening.is_none());
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
                format!("retry {} in {}", tr.attempt, fmt_mmss(left))
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
    let old = m.expired_code.clone().unwrap_or_default();
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

fn pairing(m: &Model, d: &DeviceState, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let Some(code) = d.code.as_ref() else {
        return booting(m, area, buf, None);
    };
    let now = m.now_ms();
    let left = d.code_remaining(now).unwrap_or_default();
    let fraction = if code.lifetime.is_zero() {
        0.0
    } else {
        (left.as_secs_f64() / code.lifetime.as_secs_f64()).clamp(0.0, 1.0)
    };
    let link = m.qr.as_ref().map(|(l, _)| l.as_str()).unwrap_or("");
    let qr = m.qr.as_ref().and_then(|(_, q)| q.as_ref());
    let (qw, qh) = qr.map_or((0, 0), QrMatrix::cells);

    // Pieces shared by the arrangements below.
    let title = || item(1, false, text(styled("Pair this terminal", t.brand())));
    let subtitle = |w: u16| {
        para(
            "Enter this code in the merchant portal",
            t.muted(),
            w,
            2,
            false,
        )
    };
    let countdown = |w: u16| {
        let bar_w = w.clamp(10, 30);
        vec![
            item(
                1,
                true,
                text(Line::from(vec![
                    Span::styled("Code expires in ", t.muted()),
                    Span::styled(fmt_mmss(left), t.title()),
                ])),
            ),
            item(1, false, move |r: Rect, buf: &mut Buffer| {
                gauge(t, r, buf, bar_w, fraction)
            }),
        ]
    };
    let waiting = || {
        let (mark, style, what) = match (&m.trouble, d.slow_down.is_zero()) {
            (Some(_), _) => ("⚠", t.warn(), "Connection problem, retrying"),
            (None, false) => ("⚠", t.warn(), "Waiting for merchant (slowed down)"),
            (None, true) => (spin(m), t.brand(), "Waiting for merchant…"),
        };
        item(
            1,
            true,
            text(Line::from(vec![
                Span::styled(format!("{mark} "), style),
                Span::styled(what, t.title()),
            ])),
        )
    };
    let polls = |w: u16| {
        let last = match d.last_poll_ms {
            Some(l) => format!("last poll {} ago", fmt_secs(now.saturating_sub(l))),
            None => "not polled yet".into(),
        };
        let next = if d.in_flight() == Some(Step::Status) {
            "polling now".to_string()
        } else if let Some(due) = d.poll_due_ms.or(d.retry_due_ms) {
            format!("next in {}", fmt_secs(due.saturating_sub(now)))
        } else {
            String::new()
        };
        let every = format!(
            "every {}",
            fmt_secs(d.effective_interval().as_millis() as u64)
        );
        let mut parts: Vec<String> = [last, next, every]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        // drop the least useful parts on narrow screens
        while parts.len() > 1 && parts.join(" · ").chars().count() > w as usize {
            parts.pop();
        }
        item(1, false, text(styled(parts.join(" · "), t.muted())))
    };
    // A link too long for one line breaks before its query.
    let link_items = |w: u16, gap: bool| -> Vec<Item> {
        let lines: Vec<String> = if link.chars().count() <= w as usize {
            vec![link.to_string()]
        } else if let Some(q) = link.find('?') {
            vec![link[..q].to_string(), link[q..].to_string()]
        } else {
            wrap(link, w as usize, 2)
        };
        lines
            .into_iter()
            .enumerate()
            .map(|(i, l)| item(1, gap && i == 0, text(styled(l, t.muted()))))
            .collect()
    };
    let qr_item = |gap: bool| {
        let q = qr.cloned();
        item(qh, gap, move |r: Rect, buf: &mut Buffer| {
            if let Some(q) = &q {
                let x = r.x + r.width.saturating_sub(qw) / 2;
                QrWidget {
                    matrix: q,
                    color: t.color,
                }
                .render(Rect { x, width: qw, ..r }, buf);
            }
        })
    };

    // Tall: everything in one column, the code as large as the height allows.
    let rest = 1 + 2 + 2 + 1 + 1 + 1; // title, subtitle, countdown, waiting, polls, link
    let fits = |big: u16, with_qr: bool| {
        area.width >= qw.max(26) && rest + big + if with_qr { qh } else { 0 } <= area.height
    };
    let tall = [PixelSize::Full, PixelSize::HalfWidth, PixelSize::Quadrant]
        .into_iter()
        .filter(|s| *s != PixelSize::Full || area.width >= 48)
        .find(|s| qr.is_some() && fits(big_height(*s), true));
    if let Some(size) = tall {
        let mut items = vec![title()];
        items.extend(subtitle(area.width));
        items.push(item(
            big_height(size),
            true,
            big(&code.code, t.code(), size),
        ));
        items.push(qr_item(true));
        items.extend(link_items(area.width, false));
        items.extend(countdown(area.width));
        items.push(waiting());
        items.push(polls(area.width));
        return stack(area, items, buf);
    }
    // Side by side: code and status on the left, QR on the right (80×24).
    if qr.is_some() && area.width >= qw + 34 && area.height >= qh {
        let right = Rect {
            x: area.right() - qw - 1,
            width: qw,
            ..area
        };
        let left = Rect {
            width: area.width - qw - 2,
            ..area
        };
        let mut items = vec![title()];
        items.extend(subtitle(left.width));
        items.push(item(
            4,
            true,
            big(&code.code, t.code(), PixelSize::Quadrant),
        ));
        items.extend(countdown(left.width));
        items.push(waiting());
        items.push(polls(left.width));
        items.extend(link_items(left.width, true));
        stack(left, items, buf);
        stack(right, vec![qr_item(false)], buf);
        return;
    }
    // No room for the QR: the link in words.
    let mut items = vec![title()];
    items.extend(subtitle(area.width));
    let size = if area.height >= 18 {
        PixelSize::Quadrant
    } else {
        PixelSize::Sextant
    };
    items.push(item(
        big_height(size),
        true,
        big(&code.code, t.code(), size),
    ));
    items.extend(countdown(area.width));
    items.push(waiting());
    items.push(polls(area.width));
    items.extend(link_items(area.width, true));
    stack(area, items, buf);
}

fn gauge(t: Theme, r: Rect, buf: &mut Buffer, width: u16, fraction: f64) {
    let width = width.min(r.width);
    let x = r.x + (r.width - width) / 2;
    let eighths = (fraction * f64::from(width) * 8.0).round() as u16;
    let (fill, track) = t.gauge(fraction);
    for i in 0..width {
        let cell_eighths = eighths.saturating_sub(i * 8).min(8);
        let (sym, style) = match cell_eighths {
            8 => ("█", fill),
            0 => ("░", track),
            n => (["▏", "▎", "▍", "▌", "▋", "▊", "▉"][n as usize - 1], fill),
        };
        buf.set_string(x + i, r.y, sym, style);
    }
}

fn fmt_secs(ms: u64) -> String {
    format!("{} s", ms.div_ceil(1000))
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
        .filter(|s| m.step_times.contains_key(s) && Some(**s) != current)
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
                    .trouble
                    .as_ref()
                    .filter(|tr| tr.step == *s || tr.step == Step::Attest);
                let (mark, style) = if retry.is_some() {
                    ("⚠", t.warn())
                } else {
                    (spin(m), t.brand())
                };
                (format!("{mark} {}", s.title()), String::new(), style)
            } else if let Some(took) = m.step_times.get(s) {
                (format!("✓ {}", s.title()), fmt_took(*took), t.ok())
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
    if let Some(tr) = &m.trouble {
        items.extend(para(short_error(&tr.error), t.warn(), area.width, 2, true));
    }
    stack(area, items, buf);
}

fn ready(m: &Model, d: &DeviceState, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let p = &d.progress;
    let merchant = p.merchant_name.clone().unwrap_or_else(|| "Merchant".into());
    let config = p.config.as_ref();
    let field = |path: &[&str]| -> Option<String> {
        let mut v = config?;
        for k in path {
            v = v.get(*k)?;
        }
        v.as_str().map(str::to_string)
    };
    let place = [field(&["location", "name"]), field(&["location", "city"])]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · ");
    let size = match (area.height, area.width) {
        (22.., 40..) => PixelSize::Full,
        (22.., _) => PixelSize::HalfWidth,
        _ => PixelSize::Quadrant,
    };
    let mut items = vec![item(1, false, text(styled(merchant, t.title())))];
    if !place.is_empty() {
        items.push(item(1, false, text(styled(place, t.muted()))));
    }
    items.push(item(big_height(size), true, big("Ready", t.ok(), size)));
    items.push(item(1, true, text(styled("✓ Ready for payments", t.ok()))));
    let mut facts: Vec<(&str, String)> = Vec::new();
    if let Some(tid) = &p.terminal_id {
        facts.push(("Terminal", tid.clone()));
    }
    facts.push(("Device", p.device_id.clone()));
    if let Some(c) = field(&["emv", "currency"]) {
        facts.push(("Currency", c));
    }
    if let Some(at) = &p.activated_at {
        facts.push(("Activated", at.replace('T', " ").replace('Z', " UTC")));
    }
    if let Some(ks) = &p.key_set {
        facts.push((
            "Key set",
            format!("{} ({} keys)", ks.key_set_id, ks.kcvs.len()),
        ));
    }
    let w = area.width.min(44);
    for (i, (k, v)) in facts.into_iter().enumerate() {
        items.push(item(1, i == 0, move |r: Rect, buf: &mut Buffer| {
            let x = r.x + r.width.saturating_sub(w) / 2;
            buf.set_string(x, r.y, k, t.muted());
            buf.set_stringn(x + 11, r.y, &v, w.saturating_sub(11) as usize, t.screen());
        }));
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
