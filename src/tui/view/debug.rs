//! The debug side: who talks to whom, the flow timeline, the HTTP exchange list and the
//! selected exchange in full.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Widget};

use crate::tui::model::{Focus, Model};
use crate::tui::theme::Level;

pub fn render(m: &Model, area: Rect, buf: &mut Buffer) {
    if area.width < 20 || area.height < 10 {
        return;
    }
    let [head, timeline, list, detail] = parts(m, area);
    header(m, head, buf);
    render_timeline(m, timeline, buf);
    render_list(m, list, buf);
    render_detail(m, detail, buf);
}

fn parts(m: &Model, area: Rect) -> [Rect; 4] {
    let inner_h = area.height.saturating_sub(2);
    let timeline_h = (m.timeline().len() as u16 + 2).clamp(4, (inner_h / 4).max(4));
    let list_h = (m.debug().exchanges().len() as u16 + 2).clamp(4, (inner_h / 3).max(4));
    Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(timeline_h),
        Constraint::Length(list_h),
        Constraint::Min(3),
    ])
    .areas(area)
}

/// Where the details' text goes when the debug side is drawn in `area`.
pub fn detail_text(m: &Model, area: Rect) -> Option<Rect> {
    if area.width < 20 || area.height < 10 {
        return None;
    }
    let inner = Block::bordered().inner(parts(m, area)[3]);
    Some(Rect {
        x: inner.x + 1,
        width: inner.width.saturating_sub(1),
        ..inner
    })
}

/// `line` cut into rows of `width` columns: long values wrap instead of being cut off.
pub fn wrap_line(line: &Line<'static>, width: u16) -> Vec<Line<'static>> {
    let width = usize::from(width.max(1));
    let mut rows = vec![Line::default().style(line.style)];
    let mut used = 0;
    for span in &line.spans {
        let mut chunk = String::new();
        for c in span.content.chars() {
            let w = Span::raw(&*c.encode_utf8(&mut [0; 4])).width();
            if used + w > width && used > 0 {
                let done = Span::styled(std::mem::take(&mut chunk), span.style);
                if let Some(row) = rows.last_mut() {
                    row.spans.push(done);
                }
                rows.push(Line::default().style(line.style));
                used = 0;
            }
            chunk.push(c);
            used += w;
        }
        if let Some(row) = rows.last_mut().filter(|_| !chunk.is_empty()) {
            row.spans.push(Span::styled(chunk, span.style));
        }
    }
    rows
}

/// How many rows `lines` take wrapped at `width`.
pub fn wrapped_rows(lines: &[Line<'static>], width: u16) -> usize {
    let width = usize::from(width.max(1));
    lines.iter().map(|l| l.width().div_ceil(width).max(1)).sum()
}

fn panel<'a>(m: &Model, title: String, focused: bool) -> Block<'a> {
    let t = m.theme;
    Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(t.panel_border(focused))
        .title(Span::styled(format!(" {title} "), t.panel_title(focused)))
}

fn header(m: &Model, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let server = match (m.server(), m.embedded()) {
        (Some(s), true) => vec![
            Span::styled(s.to_string(), t.text()),
            Span::styled("  embedded sandbox", t.good_text()),
        ],
        (Some(s), false) => vec![Span::styled(s.to_string(), t.text())],
        (None, _) => vec![Span::styled("—", t.dim())],
    };
    let mut l1 = vec![Span::styled(" Server  ", t.dim())];
    l1.extend(server);
    Line::from(l1).render(Rect { height: 1, ..area }, buf);
    let l2 = match (m.profile(), m.device()) {
        (Some(p), Some(d)) => Line::from(vec![
            Span::styled(" Device  ", t.dim()),
            Span::styled(p.device_id.clone(), t.text()),
            Span::styled(
                format!(
                    "  {} · app {} · {} · poll {} s",
                    p.model,
                    p.app_version,
                    p.name,
                    d.effective_interval().as_secs()
                ),
                t.dim(),
            ),
        ]),
        _ => Line::from(Span::styled(" Device  —", t.dim())),
    };
    l2.render(
        Rect {
            y: area.y + 1,
            height: 1,
            ..area
        },
        buf,
    );
}

fn level_style(m: &Model, l: Level) -> (Style, &'static str) {
    let t = m.theme;
    match l {
        Level::Info => (t.dim(), "·"),
        Level::Good => (t.good_text(), "✓"),
        Level::Warn => (t.warn_text(), "⚠"),
        Level::Bad => (t.bad_text(), "✕"),
    }
}

fn render_timeline(m: &Model, area: Rect, buf: &mut Buffer) {
    let block = panel(m, "Flow timeline".into(), false);
    let inner = block.inner(area);
    block.render(area, buf);
    let n = inner.height as usize;
    let start = m.timeline().len().saturating_sub(n);
    for (i, e) in m.timeline()[start..].iter().enumerate() {
        let (style, mark) = level_style(m, e.level);
        let line = Line::from(vec![
            Span::styled(format!("{:>7.1}s ", e.at_ms as f64 / 1000.0), m.theme.dim()),
            Span::styled(format!("{mark} "), style),
            Span::styled(e.text.clone(), m.theme.text()),
        ]);
        line.render(
            Rect {
                y: inner.y + i as u16,
                height: 1,
                ..inner
            },
            buf,
        );
    }
}

fn render_list(m: &Model, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let focused = m.focus() == Focus::Exchanges;
    let title = format!("HTTP exchanges ({})", m.debug().exchanges().len());
    let block = panel(m, title, focused);
    let inner = block.inner(area);
    block.render(area, buf);
    if m.debug().exchanges().is_empty() {
        buf.set_string(inner.x + 1, inner.y, "no requests yet", t.dim());
        return;
    }
    let n = inner.height as usize;
    let sel = m
        .debug()
        .selected()
        .unwrap_or(m.debug().exchanges().len() - 1);
    // keep the selection in view, newest at the bottom
    let start = (sel + 1)
        .saturating_sub(n)
        .min(m.debug().exchanges().len().saturating_sub(n));
    let path_w = (inner.width as usize).saturating_sub(6 + 7 + 5 + 10).max(8);
    for (row, (i, e)) in m
        .debug()
        .exchanges()
        .iter()
        .enumerate()
        .skip(start)
        .take(n)
        .enumerate()
    {
        let status = match e.status {
            Some(s) => s.to_string(),
            None => "ERR".into(),
        };
        let status_style = match e.status {
            Some(s) if s < 300 => t.good_text(),
            Some(s) if s < 500 => t.warn_text(),
            _ => t.bad_text(),
        };
        let mut path: String = e.path().chars().take(path_w).collect();
        let pad = path_w.saturating_sub(path.chars().count());
        path.extend(std::iter::repeat_n(' ', pad));
        let line = Line::from(vec![
            Span::styled(format!("{:>4} ", e.id), t.dim()),
            Span::styled(format!("{:<6} ", e.method), t.accent()),
            Span::styled(path, t.text()),
            Span::styled(format!(" {status:>3} "), status_style),
            Span::styled(
                format!("{:>8.1} ms", e.latency.as_secs_f64() * 1000.0),
                t.dim(),
            ),
        ]);
        let r = Rect {
            y: inner.y + row as u16,
            height: 1,
            ..inner
        };
        line.render(r, buf);
        if i == sel {
            buf.set_style(r, t.selected(focused));
        }
    }
}

fn render_detail(m: &Model, area: Rect, buf: &mut Buffer) {
    let t = m.theme;
    let focused = m.focus() == Focus::Details;
    let title = match m.selected_exchange() {
        Some(e) => format!("Details · {} {}", e.method, e.path()),
        None => "Details".into(),
    };
    let block = panel(m, title, focused).title_bottom(
        Line::from(vec![
            Span::styled(" y", t.key()),
            Span::styled(" copy as curl  ", t.dim()),
            Span::styled("e", t.key()),
            Span::styled(" export HAR ", t.dim()),
        ])
        .right_aligned(),
    );
    let inner = block.inner(area);
    block.render(area, buf);
    if m.debug().detail().is_empty() {
        buf.set_string(inner.x + 1, inner.y, "select an exchange (↑↓)", t.dim());
        return;
    }
    let text = Rect {
        x: inner.x + 1,
        width: inner.width.saturating_sub(1),
        ..inner
    };
    // the scroll counts wrapped rows and never goes past the last page
    let rows = wrapped_rows(m.debug().detail(), text.width);
    let scroll = m
        .debug()
        .scroll()
        .min(rows.saturating_sub(usize::from(text.height)));
    let wrapped = m
        .debug()
        .detail()
        .iter()
        .flat_map(|l| wrap_line(l, text.width))
        .skip(scroll)
        .take(usize::from(text.height));
    for (i, line) in wrapped.enumerate() {
        line.render(
            Rect {
                y: text.y + i as u16,
                height: 1,
                ..text
            },
            buf,
        );
    }
}
