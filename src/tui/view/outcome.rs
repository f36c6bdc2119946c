//! The outcome as a full-screen word (APPROVED in green, DECLINED in red with the reason in
//! words and its code, CANCELLED, REFUNDED, outcome unknown with the charge to cancel), and the
//! receipt as a printed slip ([`posemu_device::payment::receipt`]).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

use super::card::brand_name;
use super::parts::{item, para, stack, styled, text, Item};
use super::sale::{big_item, clean, keys_line, server_money, tall};
use crate::tui::model::sale::has_slip;
use crate::tui::model::Model;
use posemu_device::payment::{error_text, receipt, PayOutcome};
use posemu_device::DeviceState;
use posemu_protocol::payments::Charge;

/// `Visa 424242******4242 · chip`.
fn card_line(c: &Charge) -> String {
    format!(
        "{} {} · {}",
        brand_name(c.card.brand),
        clean(&c.card.masked_pan, 19),
        c.entry_mode.as_str()
    )
}

fn headline<'a>(m: &Model, mark: &str, word: &str, style: Style, area: Rect) -> Vec<Item<'a>> {
    let _ = m;
    vec![
        item(1, false, text(styled(mark.to_string(), style))),
        big_item(word, style, area, tall(area), false),
    ]
}

pub fn render(m: &Model, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let sale = m.sale();
    let Some(outcome) = &sale.outcome else {
        return;
    };
    let w = area.width.min(46);
    let mut items: Vec<Item> = Vec::new();
    let mut keys = vec![("OK", "receipt"), ("Clear", "new sale")];
    if sale.operation != "charge" {
        keys = vec![("OK", "receipt"), ("Clear", "back")];
    }
    match outcome {
        PayOutcome::Approved(c) => {
            items.extend(headline(m, "✓", "APPROVED", t.ok(), area));
            let approved = c.approved_amount.as_ref().unwrap_or(&c.total);
            items.push(item(
                1,
                true,
                text(styled(server_money(approved), t.title())),
            ));
            if c.partial_approval {
                items.push(item(
                    1,
                    false,
                    text(styled(
                        format!("partial approval of {}", server_money(&c.total)),
                        t.warn(),
                    )),
                ));
            }
            items.push(item(1, false, text(styled(card_line(c), t.screen()))));
            items.push(item(
                1,
                false,
                text(styled(
                    format!(
                        "Auth code {}",
                        clean(c.auth_code.as_deref().unwrap_or("—"), 12)
                    ),
                    t.screen(),
                )),
            ));
        }
        PayOutcome::Declined(c) => {
            items.extend(headline(m, "✕", "DECLINED", t.bad(), area));
            let (words, code) = match c.decline_code {
                Some(d) => (d.words(), d.as_str()),
                None => ("Declined by the issuer", "—"),
            };
            items.push(item(1, true, text(styled(words, t.title()))));
            items.push(item(
                1,
                false,
                text(styled(
                    format!("{code} · response {}", clean(&c.gateway.response_code, 4)),
                    t.muted(),
                )),
            ));
            items.push(item(
                1,
                true,
                text(styled(server_money(&c.total), t.screen())),
            ));
            items.push(item(1, false, text(styled(card_line(c), t.screen()))));
        }
        PayOutcome::Cancelled(c) => {
            items.extend(headline(m, "↺", "CANCELLED", t.warn(), area));
            items.push(item(
                1,
                true,
                text(styled(server_money(&c.total), t.title())),
            ));
            items.push(item(
                1,
                false,
                text(styled("The cardholder is not charged", t.screen())),
            ));
            items.push(item(
                1,
                false,
                text(styled(clean(&c.charge_id, 40), t.muted())),
            ));
        }
        PayOutcome::Refunded(r) => {
            items.extend(headline(m, "↺", "REFUNDED", t.ok(), area));
            items.push(item(
                1,
                true,
                text(styled(server_money(&r.amount), t.title())),
            ));
            items.push(item(
                1,
                false,
                text(styled(format!("of {}", clean(&r.charge_id, 40)), t.muted())),
            ));
            if let Some(c) = &r.charge {
                items.push(item(
                    1,
                    false,
                    text(styled(
                        format!(
                            "refunded so far {} of {}",
                            server_money(&c.refunded_amount),
                            server_money(c.approved_amount.as_ref().unwrap_or(&c.total))
                        ),
                        t.screen(),
                    )),
                ));
            }
        }
        PayOutcome::Unknown { error, charge_id } => {
            items.extend(headline(m, "⚠", "UNKNOWN", t.warn(), area));
            items.push(item(
                1,
                true,
                text(styled("Payment outcome unknown", t.title())),
            ));
            items.extend(para(
                &clean(&error_text(error), 200),
                t.muted(),
                w,
                2,
                false,
            ));
            match charge_id {
                Some(id) => {
                    items.extend(para(
                        &format!(
                            "The server named charge {}: it may be approved. Cancel it before charging again.",
                            clean(id, 40)
                        ),
                        t.screen(),
                        w,
                        3,
                        true,
                    ));
                    keys = vec![("OK", "cancel the charge"), ("Clear", "new sale")];
                }
                None => {
                    items.extend(para(
                        "Check the transactions (t) before charging again.",
                        t.screen(),
                        w,
                        2,
                        true,
                    ));
                    keys = vec![("OK", "new sale"), ("t", "transactions")];
                }
            }
        }
        PayOutcome::Rejected(e) => {
            items.extend(headline(m, "✕", "ERROR", t.bad(), area));
            items.push(item(
                1,
                true,
                text(styled("Refused by the server", t.title())),
            ));
            items.extend(para(&clean(&error_text(e), 300), t.screen(), w, 4, false));
            keys = vec![("OK", "back")];
        }
        PayOutcome::Refused(why) => {
            items.extend(headline(m, "✕", "NOT SENT", t.bad(), area));
            items.extend(para(&clean(why, 300), t.screen(), w, 4, true));
            keys = vec![("OK", "back")];
        }
    }
    if !has_slip(outcome) {
        keys.retain(|(k, _)| *k != "receipt");
    }
    items.push(item(1, true, text(keys_line(m, &keys))));
    stack(area, items, buf);
}

/// The slip of the outcome on screen, or of the charge chosen in the transactions view.
pub fn receipt(m: &Model, d: &DeviceState, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let sale = m.sale();
    let config = d.progress.config.as_deref();
    let lines = match (&sale.receipt_of, &sale.outcome) {
        (Some(c), _) => receipt::charge(c, config),
        (None, Some(PayOutcome::Refunded(r))) => receipt::refund(r, config),
        (
            None,
            Some(PayOutcome::Approved(c) | PayOutcome::Declined(c) | PayOutcome::Cancelled(c)),
        ) => receipt::charge(c, config),
        _ => Vec::new(),
    };
    let w = (receipt::WIDTH as u16 + 4).min(area.width);
    let paper = t.screen();
    let mut items: Vec<Item> = Vec::new();
    let n = lines.len();
    for (i, l) in lines.into_iter().enumerate() {
        let edge = i == 0 || i + 1 == n;
        items.push(item(1, false, move |r: Rect, buf: &mut Buffer| {
            let x = r.x + r.width.saturating_sub(w) / 2;
            let row = Rect { x, width: w, ..r };
            buf.set_style(row, paper);
            let style = if edge {
                paper.add_modifier(ratatui::style::Modifier::BOLD)
            } else {
                paper
            };
            buf.set_stringn(x + 2, r.y, &l, w.saturating_sub(4) as usize, style);
        }));
    }
    let back = if sale.receipt_of.is_some() {
        "back"
    } else {
        "new sale"
    };
    items.push(item(1, true, text(keys_line(m, &[("OK", back)]))));
    stack(area, items, buf);
}
