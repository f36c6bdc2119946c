//! The transactions view: the terminal's charges (the sandbox's list and this session's) with
//! time, amount, masked PAN, status and settlement; cancel or refund the selected one. And the
//! refund amount, typed like the sale's.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

use super::parts::{item, stack, styled, text, Item};
use super::sale::{big_item, clean, currency, keys_line, major, server_money, tall};
use crate::tui::model::sale::{can_void, refundable};
use crate::tui::model::Model;
use posemu_protocol::payments::wire::SettlementStatus;
use posemu_protocol::payments::{Charge, ChargeStatus};

/// Rows besides the list: title, note, header, gaps, keys (on two rows when narrow).
const CHROME: u16 = 7;

fn status_word(s: ChargeStatus) -> &'static str {
    match s {
        ChargeStatus::Approved => "approved",
        ChargeStatus::Declined => "declined",
        ChargeStatus::Cancelled => "cancelled",
        ChargeStatus::PartiallyRefunded => "part.refund",
        ChargeStatus::Refunded => "refunded",
    }
}

fn settlement_word(s: SettlementStatus) -> &'static str {
    match s {
        SettlementStatus::Pending => "pending",
        SettlementStatus::Settled => "settled",
        SettlementStatus::None => "—",
    }
}

/// `HH:MM` of an RFC 3339 time (UTC, as the server wrote it).
fn hhmm(at: &str) -> String {
    at.split_once('T')
        .map(|(_, t)| t.chars().take(5).collect())
        .unwrap_or_default()
}

/// Columns at `w` wide: the masked PAN in full and wide gaps when there is room; else the
/// last four and single gaps; below [`NARROW`] the time goes. Status and settlement always
/// show in full (the device pane of a 120-column screen is 50 wide).
fn columns(w: u16) -> (bool, usize, &'static str) {
    if w >= 60 {
        (true, 16, "  ")
    } else if w > NARROW {
        (true, 5, " ")
    } else {
        (false, 5, " ")
    }
}

/// Below this width the time column goes.
const NARROW: u16 = 45;

fn line(w: u16, time: &str, total: &str, card: &str, status: &str, settled: &str) -> String {
    let (with_time, pan_w, gap) = columns(w);
    let time = if with_time {
        format!("{time:<5}{gap}")
    } else {
        String::new()
    };
    format!("{time}{total:>12}{gap}{card:<pan_w$}{gap}{status:<11} {settled}")
}

/// One row at `w` columns.
fn row(c: &Charge, w: u16) -> String {
    let pan = if w >= 60 {
        clean(&c.card.masked_pan, 19)
    } else {
        format!("·{}", clean(&c.card.last4, 4))
    };
    line(
        w,
        &hhmm(&c.created_at),
        &server_money(&c.total),
        &pan,
        status_word(c.status),
        settlement_word(c.settlement.status),
    )
}

pub fn render(m: &Model, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let sale = m.sale();
    let charges = sale.charges();
    let tid = m
        .device()
        .and_then(|d| d.progress.terminal_id.as_deref())
        .map(|t| format!(" · {}", clean(t, 64)))
        .unwrap_or_default();
    let mut items: Vec<Item> = vec![item(
        1,
        false,
        text(styled(format!("Transactions{tid}"), t.brand())),
    )];
    if let Some(note) = &sale.list_note {
        items.push(item(1, false, text(styled(clean(note, 200), t.muted()))));
    }
    let w = if area.width >= 62 {
        60
    } else {
        area.width.min(50)
    };
    if charges.is_empty() {
        items.push(item(
            1,
            true,
            text(styled("No transactions yet", t.muted())),
        ));
    } else {
        let header = line(w, "time", "total", "card", "status", "settled");
        items.push(item(1, true, move |r: Rect, buf: &mut Buffer| {
            let x = r.x + r.width.saturating_sub(w) / 2;
            buf.set_stringn(x + 1, r.y, &header, w as usize - 1, t.muted());
        }));
        let room = area.height.saturating_sub(CHROME).max(1) as usize;
        let first = sale.selected.saturating_sub(room.saturating_sub(1));
        for (i, c) in charges.iter().enumerate().skip(first).take(room) {
            let selected = i == sale.selected;
            let line = row(c, w);
            let style = if selected {
                t.status_bar()
            } else if c.status == ChargeStatus::Declined || c.status == ChargeStatus::Cancelled {
                t.muted()
            } else {
                t.screen()
            };
            items.push(item(1, false, move |r: Rect, buf: &mut Buffer| {
                let x = r.x + r.width.saturating_sub(w) / 2;
                let row = Rect { x, width: w, ..r };
                buf.set_style(row, style);
                buf.set_stringn(x + 1, r.y, &line, w as usize - 1, style);
            }));
        }
    }
    let selected = sale.selected_charge();
    let mut keys = vec![("↑↓", "select"), ("OK", "slip")];
    if selected.as_ref().is_some_and(can_void) {
        keys.push(("v", "cancel"));
    }
    if selected.as_ref().and_then(refundable).is_some() {
        keys.push(("f", "refund"));
    }
    keys.push(("b", "settle"));
    keys.push(("Cancel", "back"));
    // on two rows when one would be cut at both ends
    let half = keys.len().div_ceil(2);
    if keys_line(m, &keys).width() > usize::from(area.width) {
        items.push(item(1, true, text(keys_line(m, &keys[..half]))));
        items.push(item(1, false, text(keys_line(m, &keys[half..]))));
    } else {
        items.push(item(1, true, text(keys_line(m, &keys))));
    }
    stack(area, items, buf);
}

pub fn refund_amount(m: &Model, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let sale = m.sale();
    let Some((id, left)) = &sale.refund else {
        return;
    };
    let style = if sale.refund_amount == 0 {
        t.muted()
    } else {
        t.title()
    };
    let items = vec![
        item(1, false, text(styled("Refund", t.brand()))),
        item(1, false, text(styled(clean(id, 40), t.muted()))),
        item(1, true, text(styled(currency(m), t.muted()))),
        big_item(
            &major(m, sale.refund_amount),
            style,
            area,
            tall(area),
            false,
        ),
        item(
            1,
            true,
            text(styled(format!("at most {}", server_money(left)), t.muted())),
        ),
        item(
            1,
            true,
            text(keys_line(
                m,
                &[("OK", "refund"), ("Clear", "a digit"), ("Cancel", "back")],
            )),
        ),
    ];
    stack(area, items, buf);
}
