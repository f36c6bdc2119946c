//! The pairing screen: the big code, the QR code to the portal, the countdown and the polls,
//! arranged for the room there is (one tall column, side by side at 80×24, or no QR).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;
use tui_big_text::PixelSize;

use super::device::wrap;
use super::parts::{
    big, big_height, big_plain, gauge, item, para, spin, stack, styled, text, Item,
};
use super::screens::booting;
use crate::tui::model::Model;
use crate::tui::qr::{QrMatrix, QrWidget};
use posemu_device::{DeviceState, Step};

pub(super) fn pairing(m: &Model, d: &DeviceState, area: Rect, buf: &mut Buffer) {
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
    let link = m.qr().map(|(l, _)| l.as_str()).unwrap_or("");
    let qr = m.qr().and_then(|(_, q)| q.as_ref());
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
                    Span::styled(posemu_protocol::duration::countdown(left), t.title()),
                ])),
            ),
            item(1, false, move |r: Rect, buf: &mut Buffer| {
                gauge(t, r, buf, bar_w, fraction)
            }),
        ]
    };
    let waiting = || {
        let (mark, style, what) = match (m.trouble(), d.slow_down.is_zero()) {
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
    // Below that (smaller than 80×24), plain blocks: sextants are missing from many fonts.
    if area.height >= 18 {
        let size = PixelSize::Quadrant;
        items.push(item(
            big_height(size),
            true,
            big(&code.code, t.code(), size),
        ));
    } else {
        items.push(item(4, true, big_plain(&code.code, t.code())));
    }
    items.extend(countdown(area.width));
    items.push(waiting());
    items.push(polls(area.width));
    items.extend(link_items(area.width, true));
    stack(area, items, buf);
}

fn fmt_secs(ms: u64) -> String {
    format!("{} s", ms.div_ceil(1000))
}
