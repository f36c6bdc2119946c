//! The device itself: a body shaped by the profile's form factor, its status bar (time,
//! network, battery as terminals show them), the screen, and the coloured POS keys.

use chrono::Local;
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Widget};

use super::screens;
use crate::tui::model::Model;
use crate::tui::theme::PosKey;
use posemu_profile::FormFactor;

/// The device's width beside the debug side.
pub fn wide_width(form: FormFactor) -> u16 {
    match form {
        FormFactor::Handheld => 54,
        FormFactor::Countertop => 58,
        FormFactor::Compact => 48,
    }
}

pub fn render(m: &Model, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let form = m.profile().map(|p| p.form).unwrap_or_default();
    let model_name = m
        .profile()
        .map(|p| p.model.replace('-', " "))
        .unwrap_or_else(|| "Viopay POS".into());
    let border = match form {
        FormFactor::Handheld => BorderType::Rounded,
        FormFactor::Countertop => BorderType::Thick,
        FormFactor::Compact => BorderType::Double,
    };
    let block = Block::bordered()
        .border_type(border)
        .border_style(t.bezel())
        .style(t.bezel())
        .title(
            Line::from(Span::styled(format!(" {model_name} "), t.bezel_label()))
                .alignment(Alignment::Center),
        )
        .title_bottom(
            Line::from(Span::styled(" viopay ", t.bezel_label())).alignment(Alignment::Center),
        );
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.width < 20 || inner.height < 8 {
        return;
    }
    // one column of bezel each side of the screen
    let mut rows = Rect {
        x: inner.x + 1,
        width: inner.width - 2,
        ..inner
    };
    if form == FormFactor::Handheld && rows.height >= 28 {
        // the earpiece and front camera
        let y = rows.y;
        let grille = "▂▂▂▂▂▂▂▂";
        let x = rows.x + (rows.width.saturating_sub(grille.chars().count() as u16 + 4)) / 2;
        buf.set_string(x, y, grille, t.bezel());
        buf.set_string(x + grille.chars().count() as u16 + 2, y, "●", t.bezel());
        rows.y += 1;
        rows.height -= 1;
    }
    let keypad = form == FormFactor::Countertop && rows.height >= 34;
    let bottom = 1 + if keypad { 5 } else { 0 } + u16::from(rows.height >= 26);
    let status = Rect { height: 1, ..rows };
    let screen = Rect {
        y: rows.y + 1,
        height: rows.height - 1 - bottom,
        ..rows
    };
    status_bar(m, status, buf, form);
    buf.set_style(screen, t.screen());
    screens::render(m, screen, buf);
    let mut y = screen.bottom() + u16::from(rows.height >= 26);
    if keypad {
        for row in [
            ["1", "2", "3"],
            ["4", "5", "6"],
            ["7", "8", "9"],
            ["*", "0", "#"],
        ] {
            let caps: Vec<(String, PosKey)> = row
                .iter()
                .map(|d| (format!("  {d}  "), PosKey::Digit))
                .collect();
            key_row(
                m,
                Rect {
                    y,
                    height: 1,
                    ..rows
                },
                buf,
                &caps,
            );
            y += 1;
        }
        y += 1;
    }
    let caps = if rows.width >= 40 {
        [
            (" ✕ Cancel·Esc ".to_string(), PosKey::Cancel),
            (" ‹ Clear·⌫ ".to_string(), PosKey::Clear),
            (" ✓ OK·Enter ".to_string(), PosKey::Ok),
        ]
    } else {
        [
            (" ✕ Esc ".to_string(), PosKey::Cancel),
            (" ‹ ⌫ ".to_string(), PosKey::Clear),
            (" ✓ Enter ".to_string(), PosKey::Ok),
        ]
    };
    key_row(
        m,
        Rect {
            y,
            height: 1,
            ..rows
        },
        buf,
        &caps,
    );
}

fn key_row(m: &Model, row: Rect, buf: &mut Buffer, caps: &[(String, PosKey)]) {
    let gap = 2u16;
    let total: u16 = caps
        .iter()
        .map(|(s, _)| s.chars().count() as u16)
        .sum::<u16>()
        + gap * (caps.len() as u16 - 1);
    let mut x = row.x + row.width.saturating_sub(total) / 2;
    for (label, key) in caps {
        buf.set_string(x, row.y, label, m.theme.key_cap(*key));
        x += label.chars().count() as u16 + gap;
    }
}

fn status_bar(m: &Model, area: Rect, buf: &mut Buffer, form: FormFactor) {
    let t = m.theme;
    let style = t.status_bar();
    buf.set_style(area, style);
    let time = m
        .clock()
        .now()
        .with_timezone(&Local)
        .format("%H:%M")
        .to_string();
    let trouble = m.trouble().is_some() || m.session().is_none();
    let (bars, net) = match form {
        FormFactor::Handheld => ("▂▄▆█", "4G"),
        FormFactor::Compact => ("▂▄▆█", "WiFi"),
        FormFactor::Countertop => ("", "LAN"),
    };
    let network = if trouble {
        format!("{} {net}✕", if bars.is_empty() { "" } else { "▂___" })
    } else if bars.is_empty() {
        format!("⇅ {net}")
    } else {
        format!("{bars} {net}")
    };
    let power = match form {
        FormFactor::Countertop => "⚡ AC".to_string(),
        _ => "▮▮▮▯ 87%".to_string(),
    };
    buf.set_string(area.x + 1, area.y, &time, style);
    let right = format!("{network}  {power} ");
    let rw = right.chars().count() as u16;
    buf.set_string(area.right().saturating_sub(rw), area.y, &right, style);
    let brand = "Viopay";
    let bx = area.x + (area.width.saturating_sub(brand.len() as u16)) / 2;
    if bx > area.x + 7 && bx + 6 < area.right().saturating_sub(rw) {
        buf.set_string(
            bx,
            area.y,
            brand,
            style.add_modifier(ratatui::style::Modifier::BOLD),
        );
    }
}

/// Greedy word wrap to at most `max_lines` lines (the last one cut with `…`).
pub fn wrap(text: &str, width: usize, max_lines: usize) -> Vec<String> {
    let width = width.max(8);
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let wl = word.chars().count();
        let cl = cur.chars().count();
        if cl > 0 && cl + 1 + wl > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    for l in lines.iter_mut() {
        if l.chars().count() > width {
            *l = l.chars().take(width - 1).collect::<String>() + "…";
        }
    }
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            let keep: String = last.chars().take(width.saturating_sub(1)).collect();
            *last = keep + "…";
        }
    }
    lines
}
