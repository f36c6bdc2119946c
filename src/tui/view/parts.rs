//! The building blocks of the device's screens: a tiny vertical stack (items of fixed height,
//! spare rows spread as gaps), centred and wrapped text, big letters, the spinner and the gauge.

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;
use tui_big_text::{BigText, PixelSize};

use super::device::wrap;
use super::SPINNER;
use crate::tui::model::Model;
use crate::tui::theme::Theme;

pub(super) type Draw<'a> = Box<dyn Fn(Rect, &mut Buffer) + 'a>;

pub(super) struct Item<'a> {
    height: u16,
    /// A blank row before this item, if there is room.
    gap: bool,
    draw: Draw<'a>,
}

pub(super) fn item<'a>(height: u16, gap: bool, draw: impl Fn(Rect, &mut Buffer) + 'a) -> Item<'a> {
    Item {
        height,
        gap,
        draw: Box::new(draw),
    }
}

pub(super) fn stack(area: Rect, items: Vec<Item<'_>>, buf: &mut Buffer) {
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

pub(super) fn text<'a>(line: Line<'a>) -> impl Fn(Rect, &mut Buffer) + 'a {
    move |r, buf| line.clone().alignment(Alignment::Center).render(r, buf)
}

pub(super) fn styled(s: impl Into<String>, style: Style) -> Line<'static> {
    Line::from(Span::styled(s.into(), style))
}

/// Word-wrapped, centred lines, as items.
pub(super) fn para<'a>(s: &str, style: Style, width: u16, max: usize, gap: bool) -> Vec<Item<'a>> {
    wrap(s, width as usize, max)
        .into_iter()
        .enumerate()
        .map(|(i, l)| item(1, gap && i == 0, text(styled(l, style))))
        .collect()
}

pub(super) fn spin(m: &Model) -> &'static str {
    SPINNER[m.spinner() % SPINNER.len()]
}

pub(super) fn big<'a>(s: &str, style: Style, size: PixelSize) -> impl Fn(Rect, &mut Buffer) + 'a {
    let w = BigText::builder()
        .pixel_size(size)
        .style(style)
        .lines(vec![Line::from(s.to_string())])
        .alignment(Alignment::Center)
        .build();
    move |r, buf| (&w).render(r, buf)
}

/// Big letters in plain block characters only (`█ ▀ ▄`, which every terminal font has), for
/// small screens: the quadrant rendering with each cell's left and right halves merged, so a
/// cell only says whether its top and its bottom are lit. 4 rows high, 4 columns a letter.
pub(super) fn big_plain<'a>(s: &str, style: Style) -> impl Fn(Rect, &mut Buffer) + 'a {
    let quadrants = big(s, style, PixelSize::Quadrant);
    move |r, buf| {
        let mut scratch = Buffer::empty(r);
        quadrants(r, &mut scratch);
        for y in r.top()..r.bottom() {
            for x in r.left()..r.right() {
                let Some(cell) = scratch.cell((x, y)) else {
                    continue;
                };
                let (top, bottom) = halves(cell.symbol());
                let sym = match (top, bottom) {
                    (true, true) => "█",
                    (true, false) => "▀",
                    (false, true) => "▄",
                    (false, false) => continue,
                };
                buf.set_string(x, y, sym, style);
            }
        }
    }
}

/// Whether a quadrant block character lights its top half, its bottom half.
fn halves(sym: &str) -> (bool, bool) {
    let Some(c) = sym.chars().next() else {
        return (false, false);
    };
    // quadrants lit: upper left, upper right, lower left, lower right
    let (ul, ur, ll, lr) = match c {
        '█' => (true, true, true, true),
        '▀' => (true, true, false, false),
        '▄' => (false, false, true, true),
        '▌' => (true, false, true, false),
        '▐' => (false, true, false, true),
        '▘' => (true, false, false, false),
        '▝' => (false, true, false, false),
        '▖' => (false, false, true, false),
        '▗' => (false, false, false, true),
        '▚' => (true, false, false, true),
        '▞' => (false, true, true, false),
        '▙' => (true, false, true, true),
        '▛' => (true, true, true, false),
        '▜' => (true, true, false, true),
        '▟' => (false, true, true, true),
        _ => (false, false, false, false),
    };
    (ul || ur, ll || lr)
}

pub(super) fn big_height(size: PixelSize) -> u16 {
    match size {
        PixelSize::Full | PixelSize::HalfWidth => 8,
        PixelSize::Sextant => 3,
        _ => 4,
    }
}

pub(super) fn gauge(t: Theme, r: Rect, buf: &mut Buffer, width: u16, fraction: f64) {
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
