//! Demo mode's banner across the top: where the merchant portal is and how to sign in, on
//! every screen and size, with the kiosk's next move counting down when there is room.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::tui::model::{DemoDue, Model};
use posemu_protocol::rules::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};

pub fn render(m: &Model, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let style = t.banner();
    buf.set_style(area, style);
    let Some(url) = m.portal_url() else {
        return;
    };
    let login = format!("{DEMO_CLIENT_ID} / {DEMO_CLIENT_SECRET}");
    // the longest wording that fits; the URL itself always shows
    let wordings = [
        ("Merchant portal: ", format!(" — sign in as {login}")),
        ("Merchant portal: ", format!(" · {login}")),
        ("Portal: ", format!(" · {login}")),
        ("Portal: ", String::new()),
        ("", String::new()),
    ];
    let room = area.width.saturating_sub(2) as usize;
    let len =
        |(label, rest): &(&str, String)| label.len() + url.chars().count() + rest.chars().count();
    let (label, rest) = wordings
        .iter()
        .find(|w| len(w) <= room)
        .unwrap_or(&wordings[4]);
    let used = len(&(label, rest.clone()));
    Line::from(vec![
        Span::styled(format!(" {label}"), style),
        Span::styled(url.clone(), style.add_modifier(Modifier::UNDERLINED)),
        Span::styled(rest.clone(), style),
    ])
    .render(area, buf);
    if let Some((due, left)) = m.demo_countdown() {
        let what = match due {
            DemoDue::Claim { .. } => "auto-claim in",
            DemoDue::Loop => "starts over in",
        };
        let text = format!("{what} {} ", posemu_protocol::duration::countdown(left));
        let w = text.chars().count();
        if used + 1 + 3 + w <= area.width as usize {
            let x = area.right() - w as u16;
            buf.set_string(x, area.y, &text, style.remove_modifier(Modifier::BOLD));
        }
    }
}
