//! Popups over everything: the help (generated from the key table), the profile picker, the
//! server URL input and the curl command just copied.

use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Widget, Wrap};
use ratatui::Frame;

use super::centered;
use crate::tui::keys::{in_demo, Section, BINDINGS};
use crate::tui::model::{Model, Popup};

pub fn render(m: &Model, area: Rect, f: &mut Frame) {
    let Some(p) = &m.popup() else {
        return;
    };
    match p {
        Popup::Help { scroll } => help(m, area, f.buffer_mut(), *scroll),
        Popup::Profiles { items, selected } => {
            let t = m.theme;
            let h = (items.len() as u16 * 2 + 4).min(area.height);
            let r = centered(area, 72, h);
            let inner = frame(
                m,
                r,
                f.buffer_mut(),
                "Device profile",
                "↑↓ choose · Enter open · Esc close",
            );
            let buf = f.buffer_mut();
            for (i, it) in items.iter().enumerate() {
                let y = inner.y + 1 + i as u16 * 2;
                if y + 1 >= inner.bottom() {
                    break;
                }
                let mark = if it.current { "●" } else { " " };
                let name_style = if it.ok { t.text() } else { t.bad_text() };
                let row = Rect {
                    y,
                    height: 2,
                    ..inner
                };
                Line::from(vec![
                    Span::styled(format!(" {mark} "), t.accent()),
                    Span::styled(it.name.clone(), name_style),
                ])
                .render(Rect { height: 1, ..row }, buf);
                Line::from(Span::styled(format!("   {}", it.detail), t.dim())).render(
                    Rect {
                        y: y + 1,
                        height: 1,
                        ..row
                    },
                    buf,
                );
                if i == *selected {
                    buf.set_style(row, t.selected(true));
                }
            }
        }
        Popup::Server(input) => {
            let t = m.theme;
            let r = centered(area, 70, 7);
            let inner = frame(
                m,
                r,
                f.buffer_mut(),
                "Server URL",
                "Enter connect · Esc cancel",
            );
            let buf = f.buffer_mut();
            buf.set_string(
                inner.x + 1,
                inner.y,
                "Viopay server base URL (empty: the embedded sandbox)",
                t.dim(),
            );
            let field = Rect {
                x: inner.x + 1,
                y: inner.y + 2,
                width: inner.width.saturating_sub(2),
                height: 1,
            };
            let scroll = input.visual_scroll(field.width as usize);
            buf.set_style(field, t.selected(false));
            let shown: String = input
                .value()
                .chars()
                .skip(scroll)
                .take(field.width as usize)
                .collect();
            buf.set_string(field.x, field.y, shown, t.text());
            let cx = field.x + (input.visual_cursor().saturating_sub(scroll)) as u16;
            f.set_cursor_position(Position::new(cx.min(field.right() - 1), field.y));
        }
        Popup::Curl(text) => {
            let t = m.theme;
            let lines = text.lines().count() as u16;
            let r = centered(area, area.width.saturating_sub(8).min(110), lines + 5);
            let inner = frame(m, r, f.buffer_mut(), "Copy as curl", "Esc close");
            let buf = f.buffer_mut();
            buf.set_string(
                inner.x + 1,
                inner.y,
                "Copied to the clipboard (OSC 52). Tokens are variables: set them first.",
                t.good_text(),
            );
            Paragraph::new(text.as_str())
                .wrap(Wrap { trim: false })
                .render(
                    Rect {
                        x: inner.x + 1,
                        y: inner.y + 2,
                        width: inner.width.saturating_sub(2),
                        height: inner.height.saturating_sub(2),
                    },
                    buf,
                );
        }
    }
}

/// A cleared, bordered box; answers its inside.
fn frame(m: &Model, r: Rect, buf: &mut Buffer, title: &str, keys: &str) -> Rect {
    let t = m.theme;
    Clear.render(r, buf);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(t.panel_border(true))
        .style(t.popup())
        .title(Span::styled(format!(" {title} "), t.panel_title(true)))
        .title_bottom(Line::from(Span::styled(format!(" {keys} "), t.dim())).right_aligned());
    let inner = block.inner(r);
    block.render(r, buf);
    inner
}

/// The width of the key column of the help ("  " and the key, padded).
const HELP_KEY_COLS: usize = 13;

/// The help's box in `area`, its lines (each description wrapped under itself) and the most
/// it scrolls: every binding, by section, from the same table as the hint bar.
fn help_layout(m: &Model, area: Rect) -> (Rect, Vec<Line<'static>>, usize) {
    let t = m.theme;
    let sections = [
        Section::General,
        Section::Device,
        Section::Payments,
        Section::Sandbox,
        Section::Debug,
    ];
    let shown = |section: Section| {
        BINDINGS
            .iter()
            .filter(move |b| b.section == section && !b.help.is_empty())
            .filter(|b| !m.in_demo() || in_demo(b.action))
    };
    let natural = sections
        .iter()
        .flat_map(|&s| shown(s).map(|b| HELP_KEY_COLS + b.help.chars().count()))
        .max()
        .unwrap_or(40);
    // borders, and a column of space on the left
    let w = (natural as u16 + 4).min(area.width);
    let text = usize::from(w.saturating_sub(3));
    let mut lines: Vec<Line<'static>> = Vec::new();
    for section in sections {
        lines.push(Line::from(Span::styled(section.title(), t.accent())));
        for b in shown(section) {
            let wrapped = super::device::wrap(b.help, text.saturating_sub(HELP_KEY_COLS), 8);
            for (i, part) in wrapped.into_iter().enumerate() {
                let key = if i == 0 {
                    format!("  {:<11}", b.shown)
                } else {
                    " ".repeat(HELP_KEY_COLS)
                };
                lines.push(Line::from(vec![
                    Span::styled(key, t.key()),
                    Span::styled(part, t.text()),
                ]));
            }
        }
        lines.push(Line::default());
    }
    lines.pop();
    if lines.len() as u16 + 2 > area.height {
        lines.retain(|l| l.width() > 0);
    }
    let h = (lines.len() as u16 + 2).min(area.height);
    let max_scroll = lines.len().saturating_sub(usize::from(h.saturating_sub(2)));
    (centered(area, w, h), lines, max_scroll)
}

/// How far the help scrolls at the screen's size.
pub fn help_max_scroll(m: &Model) -> usize {
    let (w, h) = m.size();
    help_layout(m, Rect::new(0, 0, w, h)).2
}

fn help(m: &Model, area: Rect, buf: &mut Buffer, scroll: usize) {
    let (r, lines, max_scroll) = help_layout(m, area);
    let scroll = scroll.min(max_scroll);
    let keys = if max_scroll == 0 {
        "Esc close".to_string()
    } else {
        let arrows = match (scroll > 0, scroll < max_scroll) {
            (true, true) => "↑↓",
            (false, _) => "↓",
            (true, false) => "↑",
        };
        format!("{arrows} more · Esc close")
    };
    let inner = frame(m, r, buf, "Keys", &keys);
    Paragraph::new(lines.into_iter().skip(scroll).collect::<Vec<_>>()).render(
        Rect {
            x: inner.x + 1,
            width: inner.width.saturating_sub(1),
            ..inner
        },
        buf,
    );
}
