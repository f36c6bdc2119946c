//! The sale screens on a ready terminal (`shared/design/payments-screens.md`): one thing per
//! screen in large type. Here: the amount (it grows from the right), the tip, processing and
//! the PIN pad; the card in `card.rs`, the outcome and the receipt in `outcome.rs`, the
//! transactions and the refund amount in `transactions.rs`.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use tui_big_text::PixelSize;

use super::parts::{big, big_height, item, spin, stack, styled, text, Item};
use super::{card, outcome, transactions};
use crate::tui::model::sale::{Screen, PIN_MAX, PIN_MIN};
use crate::tui::model::Model;
use posemu_device::DeviceState;
use posemu_protocol::payments::money::currency_decimals;
use posemu_protocol::payments::{format_major, Money};
use posemu_protocol::text::escape_control;

pub fn render(m: &Model, d: &DeviceState, area: Rect, buf: &mut Buffer) {
    match m.sale().screen {
        Screen::Amount => amount(m, d, area, buf),
        Screen::Tip => tip(m, area, buf),
        Screen::Card => card::render(m, area, buf),
        Screen::Processing => processing(m, area, buf),
        Screen::Pin => pin(m, area, buf),
        Screen::Outcome => outcome::render(m, area, buf),
        Screen::Receipt => outcome::receipt(m, d, area, buf),
        Screen::Transactions => transactions::render(m, area, buf),
        Screen::RefundAmount => transactions::refund_amount(m, area, buf),
    }
}

/// The terminal's currency, or `EUR` while none is known.
pub(super) fn currency(m: &Model) -> String {
    m.currency().unwrap_or_else(|| "EUR".into())
}

/// Minor units as the screen writes them: `15.00` in the terminal's currency.
pub(super) fn major(m: &Model, minor: u64) -> String {
    format_major(minor, currency_decimals(&currency(m)))
}

/// `EUR 15.00`.
pub(super) fn money(m: &Model, minor: u64) -> String {
    format!("{} {}", currency(m), major(m, minor))
}

/// `EUR 15.00` of an amount a server sent (its currency escaped).
pub(super) fn server_money(v: &Money) -> String {
    format!("{} {}", escape_control(&v.currency), v.major())
}

/// Server text on its way to the screen: control characters escaped, cut to `max`.
pub(super) fn clean(s: &str, max: usize) -> String {
    escape_control(s).chars().take(max).collect()
}

/// The largest letters `s` fits in within `area` (None: plain text only).
pub(super) fn big_size(s: &str, area: Rect, tall: bool) -> Option<PixelSize> {
    let n = s.chars().count() as u16;
    let w = area.width;
    if tall && n * 8 <= w {
        Some(PixelSize::Full)
    } else if tall && n * 4 <= w {
        Some(PixelSize::HalfWidth)
    } else if n * 4 <= w {
        Some(PixelSize::Quadrant)
    } else {
        None
    }
}

/// `s` in the largest letters that fit, else as a bold line.
pub(super) fn big_item<'a>(s: &str, style: Style, area: Rect, tall: bool, gap: bool) -> Item<'a> {
    match big_size(s, area, tall) {
        Some(size) => item(big_height(size), gap, big(s, style, size)),
        None => item(1, gap, text(styled(s.to_string(), style))),
    }
}

/// Whether the screen has room for 8-row letters.
pub(super) fn tall(area: Rect) -> bool {
    area.height >= 22
}

/// A line of keys as the screen names them: `OK to go on`.
pub(super) fn keys_line(m: &Model, keys: &[(&str, &str)]) -> Line<'static> {
    let t = m.theme;
    let mut spans = Vec::new();
    for (i, (k, what)) in keys.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" · ", t.muted()));
        }
        let style = match *k {
            "OK" => t.ok(),
            "Cancel" => t.bad(),
            "Clear" => t.warn(),
            _ => t.brand(),
        };
        spans.push(Span::styled(k.to_string(), style));
        spans.push(Span::styled(format!(" {what}"), t.muted()));
    }
    Line::from(spans)
}

fn amount(m: &Model, d: &DeviceState, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let p = &d.progress;
    let merchant = clean(p.merchant_name.as_deref().unwrap_or("Merchant"), 60);
    let config = p.config.as_deref();
    let field = |path: &[&str]| -> Option<String> {
        let mut v = config?;
        for k in path {
            v = v.get(*k)?;
        }
        v.as_str().map(|s| clean(s, 40))
    };
    let place = [field(&["location", "name"]), field(&["location", "city"])]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · ");
    let sale = m.sale();
    let mut items = vec![item(1, false, text(styled(merchant, t.title())))];
    if !place.is_empty() {
        items.push(item(1, false, text(styled(place, t.muted()))));
    }
    items.push(item(1, true, text(styled("Sale", t.brand()))));
    items.push(item(1, true, text(styled(currency(m), t.muted()))));
    let style = if sale.amount == 0 {
        t.muted()
    } else {
        t.title()
    };
    items.push(big_item(
        &major(m, sale.amount),
        style,
        area,
        tall(area),
        false,
    ));
    let hint = if sale.amount == 0 {
        keys_line(m, &[("0-9", "type the amount"), ("t", "transactions")])
    } else {
        keys_line(
            m,
            &[("OK", "to go on"), ("Clear", "a digit"), ("Cancel", "zero")],
        )
    };
    items.push(item(1, true, text(hint)));
    let tid = p
        .terminal_id
        .as_deref()
        .map(|t| format!(" · {}", clean(t, 64)))
        .unwrap_or_default();
    items.push(item(
        1,
        true,
        text(styled(format!("✓ Ready for payments{tid}"), t.ok())),
    ));
    stack(area, items, buf);
}

fn tip(m: &Model, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let sale = m.sale();
    let tips = m.tips();
    let mut items = vec![
        item(1, false, text(styled("Add a tip?", t.brand()))),
        big_item(&money(m, sale.amount), t.title(), area, false, true),
    ];
    let w = area.width.min(30);
    let rows = std::iter::once(("No tip".to_string(), String::new())).chain(tips.iter().map(|p| {
        let tip = crate::tui::model::sale::tip_of(sale.amount, *p);
        (format!("{p} %"), money(m, tip))
    }));
    for (i, (label, value)) in rows.enumerate() {
        let selected = i == sale.tip_choice;
        items.push(item(1, i == 0, move |r: Rect, buf: &mut Buffer| {
            let x = r.x + r.width.saturating_sub(w) / 2;
            let row = Rect { x, width: w, ..r };
            let style = if selected { t.status_bar() } else { t.screen() };
            buf.set_style(row, style);
            let mark = if selected { "▸ " } else { "  " };
            buf.set_stringn(x, r.y, format!("{mark}{label}"), w as usize, style);
            let vw = value.chars().count() as u16;
            buf.set_string(x + w.saturating_sub(vw + 1), r.y, &value, style);
        }));
    }
    items.push(item(
        1,
        true,
        text(keys_line(
            m,
            &[("↑↓", "choose"), ("OK", "to go on"), ("Cancel", "abandon")],
        )),
    ));
    stack(area, items, buf);
}

fn processing(m: &Model, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let sale = m.sale();
    let elapsed = std::time::Duration::from_millis(m.now_ms().saturating_sub(sale.started_ms));
    let what = match sale.operation {
        "refund" => "Refund",
        "cancel" | "reverse" => "Cancel",
        _ => "Sale",
    };
    let total = sale.amount.saturating_add(m.tip());
    let mut items = vec![item(1, false, text(styled(what, t.brand())))];
    if what == "Sale" {
        items.push(big_item(&money(m, total), t.title(), area, false, true));
    } else if let Some((id, _)) = &sale.refund {
        items.push(item(1, true, text(styled(clean(id, 64), t.muted()))));
    }
    items.push(item(
        1,
        true,
        text(Line::from(vec![
            Span::styled(format!("{} ", spin(m)), t.brand()),
            Span::styled(sale.step.clone(), t.title()),
        ])),
    ));
    items.push(item(
        1,
        true,
        text(styled(format!("{:.1} s", elapsed.as_secs_f64()), t.muted())),
    ));
    items.push(item(
        1,
        true,
        text(styled("Do not remove the card", t.muted())),
    ));
    stack(area, items, buf);
}

fn pin(m: &Model, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let sale = m.sale();
    let card = sale.test_card();
    let total = sale.amount.saturating_add(m.tip());
    let n = sale.pin_len();
    let stars = if n == 0 {
        "_ _ _ _".to_string()
    } else {
        vec!["*"; n].join(" ")
    };
    let items = vec![
        item(1, false, text(styled("Enter PIN", t.brand()))),
        item(
            1,
            true,
            text(styled(
                format!(
                    "{} · {} ···· {}",
                    money(m, total),
                    super::card::brand_name(card.brand),
                    &card.pan[card.pan.len() - 4..]
                ),
                t.screen(),
            )),
        ),
        item(
            1,
            true,
            text(styled(stars, if n == 0 { t.muted() } else { t.title() })),
        ),
        item(
            1,
            true,
            text(styled(
                format!("{PIN_MIN}–{PIN_MAX} digits · the test PIN is 1234"),
                t.muted(),
            )),
        ),
        item(
            1,
            true,
            text(keys_line(
                m,
                &[
                    ("OK", "confirm"),
                    ("Clear", "a digit"),
                    ("Cancel", "no PIN"),
                ],
            )),
        ),
    ];
    stack(area, items, buf);
}
