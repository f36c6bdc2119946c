//! The live fleet dashboard (ratatui): the totals that matter first (activated, failed, in
//! progress), then devices per state, errors by code, latency per endpoint, time to activate,
//! poll lateness, and a throughput sparkline. It works from 80×24 up: panels get the rows
//! there are (in that order of importance) and the long ones scroll (`Tab` picks one, `↑↓`,
//! `PgUp`/`PgDn`, `Home`/`End` scroll it); the hint line at the bottom says so.
//!
//! `q`, Esc or Ctrl-C stop the run; the report is still written. A run that ends by itself
//! (every device settled, or `--duration`) keeps the dashboard open on its final numbers until
//! `q`; the summary is printed after. The terminal is always restored: on the way out, on
//! error, and on panic (ratatui's hook).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{self, Event, KeyEventKind};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Sparkline, Table};
use ratatui::Frame;
use tokio::sync::mpsc;

mod bottom;
mod scroll;

pub use scroll::{key_action, Fit, KeyAction, Panel, Scroll};
use scroll::{position, share};

use super::live::{LiveTally, Rates, StopReason, Totals};
use super::pay_stats::PayOp;
use super::report::{fmt_ms, Percentiles};
use super::stats::{Endpoint, State, Stats};

/// What one frame shows.
pub struct View<'a> {
    pub title: String,
    pub elapsed: Duration,
    pub devices: u64,
    pub stats: &'a Stats,
    pub rates: &'a Rates,
    pub stopping: bool,
    /// The run is over (and why): the dashboard stays until `q`.
    pub finished: Option<StopReason>,
    pub scroll: Scroll,
}

/// Restores the terminal when dropped, whatever happened.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Runs the dashboard until the run finishes and, if it finished by itself, until `q`.
pub async fn run(live: Arc<LiveTally>) {
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            ratatui::restore();
            crate::cli::warning(format!("cannot open the dashboard ({e}); running headless"));
            return;
        }
    };
    let _restore = Restore;
    let (keys_tx, mut keys) = mpsc::unbounded_channel();
    let quit = Arc::new(AtomicBool::new(false));
    let reader = {
        let quit = quit.clone();
        std::thread::spawn(move || {
            while !quit.load(Ordering::Relaxed) {
                if event::poll(Duration::from_millis(100)).unwrap_or(false) {
                    if let Ok(Event::Key(k)) = event::read() {
                        if k.kind == KeyEventKind::Press && keys_tx.send(k).is_err() {
                            return;
                        }
                    }
                }
            }
        })
    };
    let mut done = live.finished();
    let mut rates = Rates::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let title = format!(
        "posemu fleet · {} devices · {}",
        live.devices, live.config.server
    );
    let mut scroll = Scroll::default();
    // when the run ended: the clock stops there
    let mut ended_at: Option<Duration> = None;
    let mut keys_live = true;
    loop {
        let finished = live.is_finished();
        if finished && ended_at.is_none() {
            ended_at = Some(live.epoch.elapsed());
            // stopped by the user: they asked to leave, so leave
            if live.stop_reason() == Some(StopReason::Interrupted) {
                break;
            }
        }
        let stats = live.snapshot();
        let view = View {
            title: title.clone(),
            elapsed: ended_at.unwrap_or_else(|| live.epoch.elapsed()),
            devices: live.devices,
            stats: &stats,
            rates: &rates,
            stopping: live.stop_reason().is_some(),
            finished: finished.then(|| live.stop_reason().unwrap_or(StopReason::Settled)),
            scroll,
        };
        let mut fit = Fit::default();
        if terminal.draw(|f| fit = render(f, &view)).is_err() {
            break;
        }
        scroll.fit(&fit);
        tokio::select! {
            _ = tick.tick() => {
                if !finished {
                    rates.tick(stats.requests());
                }
            }
            k = keys.recv(), if keys_live => match k {
                Some(k) => match key_action(k, finished, &mut scroll) {
                    KeyAction::Stop => live.stop(StopReason::Interrupted),
                    KeyAction::Close => break,
                    KeyAction::Scrolled | KeyAction::Nothing => {}
                },
                // no keyboard: nobody could close the final view
                None if finished => break,
                None => keys_live = false,
            },
            _ = done.changed(), if !finished => {}
        }
    }
    quit.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
}

/// The first of `forms` that fits a box `width` columns wide as its title (padded with a space
/// each side, between the corners), else the last (the shortest).
fn fitting(width: u16, forms: impl IntoIterator<Item = String>) -> String {
    let room = inner_width_of(width).saturating_sub(2) as usize;
    let mut last = String::new();
    for form in forms {
        if form.chars().count() <= room {
            return form;
        }
        last = form;
    }
    last
}

/// Columns inside a box `width` wide.
fn inner_width_of(width: u16) -> u16 {
    width.saturating_sub(2)
}

fn block(title: &str) -> Block<'_> {
    Block::bordered().title(Span::styled(
        format!(" {title} "),
        Style::default().add_modifier(Modifier::BOLD),
    ))
}

/// The order the Devices panel lists states in: settled first (what a run is judged by), then
/// the steps in flow order, then the devices not started yet.
pub const STATE_ORDER: [State; 12] = [
    State::Ready,
    State::Failed,
    State::UpdateRequired,
    State::Bootstrap,
    State::PairingCode,
    State::Polling,
    State::Attest,
    State::Keys,
    State::Config,
    State::TerminalParameters,
    State::Activate,
    State::Waiting,
];

/// Draws one frame (also used by tests with a `TestBackend`).
pub fn draw(f: &mut Frame, v: &View) {
    render(f, v);
}

/// Draws one frame and answers what did not fit (the scroll limits).
pub fn render(f: &mut Frame, v: &View) -> Fit {
    let mut fit = Fit::default();
    let [head, totals, body, hint] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let clock = format!(
        " · {:.0}s · {} req/s",
        v.elapsed.as_secs_f64(),
        v.rates.current()
    );
    // a long server address gives way (cut with …) to the clock and the rate, leaving the
    // last column blank as every full line does
    let room = (head.width as usize).saturating_sub(clock.chars().count() + 1);
    let title = if v.title.chars().count() <= room {
        v.title.clone()
    } else {
        let mut t: String = v.title.chars().take(room.saturating_sub(1)).collect();
        t.push('…');
        t
    };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(title, Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(clock),
        ])),
        head,
    );
    draw_totals(f, totals, v);
    draw_hint(f, hint, v);
    // panel rows: devices|errors, latency, time to activate|poll lateness, requests/s
    let latency_rows = latency_rows(v.stats).len() as u16;
    let heights = share(
        body.height,
        &[6, 6, bottom::min_height(v.stats), 0],
        // the sparkline takes what the others leave
        &[2 + STATE_ORDER.len() as u16, 3 + latency_rows, 8, 0],
    );
    let [top, mid, bottom, spark] =
        Layout::vertical(heights.into_iter().map(Constraint::Length)).areas(body);
    let [states, errors] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);
    draw_states(f, states, v, &mut fit);
    draw_errors(f, errors, v, &mut fit);
    draw_latency(f, mid, v, &mut fit);
    bottom::draw(f, bottom, v.stats);
    if spark.height >= 3 {
        let data: Vec<u64> = {
            let w = spark.width.saturating_sub(2) as usize;
            let all = &v.rates.per_second;
            all.iter()
                .skip(all.len().saturating_sub(w))
                .copied()
                .collect()
        };
        let peak = data.iter().max().copied().unwrap_or(0);
        f.render_widget(
            Sparkline::default()
                .block(block(&format!("Requests/s (peak {peak})")))
                .data(&data)
                .style(Style::default().fg(Color::Cyan)),
            spark,
        );
    }
    fit
}

/// `activated 9 (90.0%) · failed 1 · in progress 0 · waiting 0`: what a run is judged by.
fn draw_totals(f: &mut Frame, area: Rect, v: &View) {
    let t = Totals::of(v.stats);
    let pct = |n: u64| n as f64 * 100.0 / v.devices.max(1) as f64;
    let bold = |c: Color| Style::default().fg(c).add_modifier(Modifier::BOLD);
    let failed = if t.failed > 0 {
        Color::Red
    } else {
        Color::Reset
    };
    let mut parts = vec![
        vec![
            Span::styled(format!("activated {}", t.activated), bold(Color::Green)),
            Span::raw(format!(" ({:.1}%)", pct(t.activated))),
        ],
        vec![Span::styled(format!("failed {}", t.failed), bold(failed))],
        vec![Span::styled(
            format!("in progress {}", t.in_progress),
            bold(Color::Yellow),
        )],
        vec![Span::raw(format!("waiting {}", t.waiting))],
        vec![Span::raw(format!("errors {}", v.stats.error_count()))],
    ];
    // too narrow (a large fleet on 80 columns): errors, then waiting (both have a panel),
    // then the share go before anything is cut
    let width = |parts: &[Vec<Span>]| -> usize {
        let spans: usize = parts.iter().flatten().map(|s| s.width()).sum();
        spans + 3 * parts.len().saturating_sub(1)
    };
    while parts.len() > 3 && width(&parts) > area.width as usize {
        parts.pop();
    }
    if width(&parts) > area.width as usize {
        parts[0].truncate(1);
    }
    let mut spans = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw(" · "));
        }
        spans.extend(part);
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The keys, and where the run is.
fn draw_hint(f: &mut Frame, area: Rect, v: &View) {
    let keys = "Tab: next panel · ↑↓ PgUp PgDn: scroll";
    let (state, style) = match (v.finished, v.stopping) {
        (Some(why), _) => (
            format!("finished ({}) · q: close", why.name()),
            Style::default()
                .fg(Color::Green)
                .add_modifier(Modifier::BOLD),
        ),
        (None, true) => ("stopping…".to_string(), Style::default().fg(Color::Yellow)),
        (None, false) => ("q: stop".to_string(), Style::default()),
    };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(state, style),
            Span::styled(format!(" · {keys}"), Style::default().fg(Color::DarkGray)),
        ])),
        area,
    );
}

/// A panel's box: its title with the rows shown (if not all), highlighted with the focus.
fn panel_block(title: &str, v: &View, p: Panel, pos: &str) -> Block<'static> {
    let focused = v.scroll.focused() == p;
    let b = Block::bordered().title(Span::styled(
        format!(" {title}{pos} "),
        Style::default().add_modifier(Modifier::BOLD),
    ));
    if focused {
        b.border_style(Style::default().fg(Color::Cyan))
    } else {
        b
    }
}

fn draw_states(f: &mut Frame, area: Rect, v: &View, fit: &mut Fit) {
    let total = v.devices.max(1) as f64;
    let width = area.width.saturating_sub(34) as f64;
    let shown = area.height.saturating_sub(2) as usize;
    let max = STATE_ORDER.len().saturating_sub(shown);
    fit.max[Panel::Devices.index()] = max;
    let offset = v.scroll.offset(Panel::Devices).min(max);
    let rows = STATE_ORDER.iter().skip(offset).take(shown).map(|s| {
        let n = v.stats.count(*s).max(0) as u64;
        let bar = "█".repeat(((n as f64 / total) * width).round() as usize);
        let color = match s {
            State::Ready => Color::Green,
            State::Failed | State::UpdateRequired => Color::Red,
            State::Waiting => Color::DarkGray,
            _ => Color::Yellow,
        };
        Row::new(vec![
            Cell::from(s.name()),
            Cell::from(format!("{n:>8}")),
            Cell::from(Span::styled(bar, Style::default().fg(color))),
        ])
    });
    let pos = position(offset, shown, STATE_ORDER.len());
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(20),
                Constraint::Length(9),
                Constraint::Min(1),
            ],
        )
        .block(panel_block("Devices", v, Panel::Devices, &pos)),
        area,
    );
}

fn draw_errors(f: &mut Frame, area: Rect, v: &View, fit: &mut Fit) {
    let s = v.stats;
    let mut errs: Vec<(&String, &u64)> = s.errors.iter().collect();
    errs.sort_by(|a, b| b.1.cmp(a.1));
    let shown = area.height.saturating_sub(2) as usize;
    let max = errs.len().saturating_sub(shown);
    fit.max[Panel::Errors.index()] = max;
    let offset = v.scroll.offset(Panel::Errors).min(max);
    let mut lines: Vec<Line> = errs
        .iter()
        .skip(offset)
        .take(shown)
        .map(|(k, v)| Line::from(format!("{k:<12} {v:>8}")))
        .collect();
    if lines.is_empty() {
        lines.push(Line::from(Span::styled(
            "no errors",
            Style::default().fg(Color::Green),
        )));
    }
    let (n, pos) = (s.error_count(), position(offset, shown, errs.len()));
    let title = fitting(
        area.width,
        [
            format!("Errors by code ({n}){pos}"),
            format!("Errors ({n}){pos}"),
            format!("Errors{pos}"),
        ],
    );
    f.render_widget(
        Paragraph::new(lines).block(panel_block(&title, v, Panel::Errors, "")),
        area,
    );
}

fn draw_latency(f: &mut Frame, area: Rect, v: &View, fit: &mut Fit) {
    let s = v.stats;
    let header = Row::new(["endpoint", "requests", "errors", "p50", "p90", "p99", "max"])
        .style(Style::default().add_modifier(Modifier::BOLD));
    let all = latency_rows(s);
    let total = all.len();
    let shown = area.height.saturating_sub(3) as usize;
    let max = total.saturating_sub(shown);
    fit.max[Panel::Latency.index()] = max;
    let offset = v.scroll.offset(Panel::Latency).min(max);
    let rows = all.into_iter().skip(offset).take(shown).map(|(name, st)| {
        let p = Percentiles::of(&st.latency);
        Row::new(vec![
            name.to_string(),
            p.count.to_string(),
            st.errors.to_string(),
            fmt_ms(p.p50_ms),
            fmt_ms(p.p90_ms),
            fmt_ms(p.p99_ms),
            fmt_ms(p.max_ms),
        ])
    });
    let pos = position(offset, shown, total);
    f.render_widget(
        Table::new(
            rows,
            [
                // fits 80 columns: names up to 20, durations as fmt_ms writes them (≤ 7)
                Constraint::Length(20),
                Constraint::Length(9),
                Constraint::Length(7),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Length(8),
            ],
        )
        .header(header)
        .block(panel_block("Latency per endpoint", v, Panel::Latency, &pos)),
        area,
    );
}

/// The latency table's rows: every endpoint, then the payment requests once terminals charge.
fn latency_rows(s: &Stats) -> Vec<(&'static str, &super::stats::EndpointStats)> {
    let mut rows: Vec<_> = Endpoint::all()
        .map(|e| (e.name(), &s.endpoints[e.index()]))
        .collect();
    if !s.pay.is_empty() {
        rows.extend(
            PayOp::ALL
                .iter()
                .map(|o| (o.name(), &s.pay.ops[*o as usize])),
        );
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    #[test]
    fn a_frame_shows_states_endpoints_and_errors() {
        let mut s = Stats::default();
        s.states[State::Waiting as usize] = 10;
        s.moved(State::Waiting, State::Ready);
        s.moved(State::Waiting, State::Polling);
        s.request(Endpoint::Step(posemu_device::Step::Status), 1500, None);
        s.request(
            Endpoint::Step(posemu_device::Step::Status),
            2500,
            Some("4029".into()),
        );
        s.time_to_activate.record(4_000_000);
        s.pay.request(PayOp::Charge, 4_200, None);
        s.pay.outcomes.started = 1;
        s.pay.outcomes.charges = 1;
        s.pay.outcomes.approved = 1;
        let mut rates = Rates::default();
        rates.tick(0);
        let view = View {
            title: "posemu fleet · 10 devices".into(),
            elapsed: Duration::from_secs(3),
            devices: 10,
            stats: &s,
            rates: &rates,
            stopping: false,
            finished: None,
            scroll: Scroll::default(),
        };
        let mut t = Terminal::new(TestBackend::new(110, 45)).unwrap();
        t.draw(|f| draw(f, &view)).unwrap();
        let text: String = t
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        for want in [
            "posemu fleet · 10 devices",
            "activated",
            "polling",
            "status",
            "4029",
            "Time to activate",
            "Poll lateness",
            "Requests/s",
            "charge",
            "Payments",
            "approved         1",
        ] {
            assert!(text.contains(want), "{want} missing");
        }
    }
}
