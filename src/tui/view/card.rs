//! "Present card": the total, the ways in (tap, insert, swipe, manual) and the sandbox's test
//! cards of spec 7.7, each with what it does.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::parts::{item, stack, styled, text};
use super::sale::{big_item, keys_line, money};
use crate::tui::model::sale::ENTRY_ORDER;
use crate::tui::model::Model;
use posemu_protocol::payments::card::CardBehaviour;
use posemu_protocol::payments::{Brand, EntryMode, TEST_CARDS};

/// The brand as a terminal prints it.
pub fn brand_name(b: Brand) -> &'static str {
    match b {
        Brand::Visa => "Visa",
        Brand::Mastercard => "MC",
        Brand::Amex => "Amex",
        Brand::Discover => "Disc",
        Brand::Jcb => "JCB",
        Brand::Unionpay => "UPI",
        Brand::Unknown => "Card",
    }
}

/// A way in with its icon: `))) Tap`.
pub fn entry_label(e: EntryMode) -> &'static str {
    match e {
        EntryMode::Contactless => "))) Tap",
        EntryMode::Chip => "▭ Insert",
        EntryMode::Swipe => "═ Swipe",
        EntryMode::Manual => "# Manual",
    }
}

/// What a test card does, in a few words.
fn behaviour(b: CardBehaviour) -> String {
    match b {
        CardBehaviour::Normal => "approves".into(),
        CardBehaviour::Declined(code) => format!("declines: {}", code.words().to_lowercase()),
        CardBehaviour::AlwaysPin => "asks for a PIN".into(),
        CardBehaviour::FailsLuhn => "bad number (Luhn)".into(),
    }
}

pub fn render(m: &Model, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let sale = m.sale();
    let tip = m.tip();
    let total = sale.amount.saturating_add(tip);
    let mut items = vec![
        item(1, false, text(styled("Present card", t.brand()))),
        big_item(&money(m, total), t.title(), area, false, true),
    ];
    if tip > 0 {
        items.push(item(
            1,
            false,
            text(styled(
                format!("{} + tip {}", money(m, sale.amount), money(m, tip)),
                t.muted(),
            )),
        ));
    }
    let mut ways = Vec::new();
    for (i, e) in ENTRY_ORDER.iter().enumerate() {
        if i > 0 {
            ways.push(Span::styled("  ", t.screen()));
        }
        let style = if i == sale.entry {
            t.status_bar()
        } else {
            t.muted()
        };
        ways.push(Span::styled(format!(" {} ", entry_label(*e)), style));
    }
    items.push(item(1, true, text(Line::from(ways))));
    let w = area.width.min(46);
    for (i, c) in TEST_CARDS.iter().enumerate() {
        let selected = i == sale.card;
        let label = format!(
            "{} {:<4} ···· {}",
            if selected { "▸" } else { " " },
            brand_name(c.brand),
            &c.pan[c.pan.len() - 4..]
        );
        let what = behaviour(c.behaviour);
        items.push(item(1, i == 0, move |r: Rect, buf: &mut Buffer| {
            let x = r.x + r.width.saturating_sub(w) / 2;
            let row = Rect { x, width: w, ..r };
            let style = if selected { t.status_bar() } else { t.screen() };
            buf.set_style(row, style);
            buf.set_stringn(x, r.y, &label, w as usize, style);
            let lw = label.chars().count() as u16 + 2;
            buf.set_stringn(x + lw, r.y, &what, w.saturating_sub(lw) as usize, style);
        }));
    }
    items.push(item(
        1,
        true,
        text(keys_line(
            m,
            &[
                ("↑↓", "card"),
                ("←→", "how"),
                ("OK", "to pay"),
                ("Cancel", "abandon"),
            ],
        )),
    ));
    stack(area, items, buf);
}
