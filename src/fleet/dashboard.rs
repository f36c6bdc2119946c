//! The live fleet dashboard (ratatui): devices per state, requests per second, errors by code,
//! latency per endpoint, time to activate, poll lateness, and a throughput sparkline.
//!
//! The terminal is always restored: on the way out, on error, and on panic (ratatui's hook).
//! `q`, Esc or Ctrl-C stop the run; the report is still written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Block, Cell, Paragraph, Row, Sparkline, Table};
use ratatui::Frame;
use tokio::sync::mpsc;

use super::live::{LiveTally, Rates, StopReason};
use super::pay_stats::PayOp;
use super::report::{fmt_ms, Percentiles};
use super::stats::{Endpoint, Hist, State, Stats};

/// What one frame shows.
pub struct View<'a> {
    pub title: String,
    pub elapsed: Duration,
    pub devices: u64,
    pub stats: &'a Stats,
    pub rates: &'a Rates,
    pub stopping: bool,
}

/// Restores the terminal when dropped, whatever happened.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Runs the dashboard until the run finishes.
pub async fn run(live: Arc<LiveTally>) {
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            ratatui::restore();
            eprintln!("posemu fleet: cannot open the dashboard ({e}); running headless");
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
    loop {
        let stats = live.snapshot();
        let view = View {
            title: title.clone(),
            elapsed: live.epoch.elapsed(),
            devices: live.devices,
            stats: &stats,
            rates: &rates,
            stopping: live.stop_reason().is_some(),
        };
        if terminal.draw(|f| draw(f, &view)).is_err() {
            break;
        }
        tokio::select! {
            _ = tick.tick() => { rates.tick(stats.requests()); }
            k = keys.recv() => {
                if let Some(k) = k {
                    let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                    if ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
                        live.stop(StopReason::Interrupted);
                    }
                }
            }
            _ = done.changed() => break,
        }
        if live.is_finished() {
            break;
        }
    }
    quit.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
}

fn block(title: &str) -> Block<'_> {
    Block::bordered().title(Span::styled(
        format!(" {title} "),
        Style::default().add_modifier(Modifier::BOLD),
    ))
}

/// Draws one frame (also used by the snapshot test with a `TestBackend`).
pub fn draw(f: &mut Frame, v: &View) {
    let paying = !v.stats.pay.is_empty();
    let pay_rows = if paying { PayOp::ALL.len() as u16 } else { 0 };
    let [head, top, mid, bottom, spark] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(14),
        Constraint::Length(12 + pay_rows),
        Constraint::Length(8),
        Constraint::Min(4),
    ])
    .areas(f.area());
    let status = if v.stopping { "stopping…" } else { "q: stop" };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(
                v.title.clone(),
                Style::default().add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!(
                " · {:.0}s · {} req/s · {status}",
                v.elapsed.as_secs_f64(),
                v.rates.current()
            )),
        ])),
        head,
    );
    let [states, errors] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);
    draw_states(f, states, v);
    draw_errors(f, errors, v.stats);
    draw_latency(f, mid, v.stats);
    let (bottom, pay) = if paying {
        let [b, p] = Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)])
            .areas(bottom);
        (b, Some(p))
    } else {
        (bottom, None)
    };
    if let Some(area) = pay {
        draw_payments(f, area, v.stats);
    }
    let [tta, late] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(bottom);
    draw_tta(f, tta, &v.stats.time_to_activate);
    let p = Percentiles::of(&v.stats.poll_lateness);
    f.render_widget(
        Paragraph::new(vec![
            Line::from(format!("p50  {}", fmt_ms(p.p50_ms))),
            Line::from(format!("p90  {}", fmt_ms(p.p90_ms))),
            Line::from(format!("p99  {}", fmt_ms(p.p99_ms))),
            Line::from(format!("max  {}", fmt_ms(p.max_ms))),
            Line::from(format!("polls {}", p.count)),
        ])
        .block(block("Poll lateness")),
        late,
    );
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

fn draw_states(f: &mut Frame, area: Rect, v: &View) {
    let total = v.devices.max(1) as f64;
    let width = area.width.saturating_sub(34) as f64;
    let rows = State::ALL.iter().map(|s| {
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
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(20),
                Constraint::Length(9),
                Constraint::Min(1),
            ],
        )
        .block(block("Devices")),
        area,
    );
}

fn draw_errors(f: &mut Frame, area: Rect, s: &Stats) {
    let mut errs: Vec<(&String, &u64)> = s.errors.iter().collect();
    errs.sort_by(|a, b| b.1.cmp(a.1));
    let mut lines: Vec<Line> = errs
        .iter()
        .take(area.height.saturating_sub(2) as usize)
        .map(|(k, v)| Line::from(format!("{k:<12} {v:>8}")))
        .collect();
    if lines.is_empty() {
        lines.push(Line::from(Span::styled(
            "no errors",
            Style::default().fg(Color::Green),
        )));
    }
    f.render_widget(
        Paragraph::new(lines).block(block(&format!("Errors by code ({})", s.error_count()))),
        area,
    );
}

fn draw_latency(f: &mut Frame, area: Rect, s: &Stats) {
    let header = Row::new(["endpoint", "requests", "errors", "p50", "p90", "p99", "max"])
        .style(Style::default().add_modifier(Modifier::BOLD));
    let row = |name: &str, st: &super::stats::EndpointStats| {
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
    };
    let mut rows: Vec<Row> = Endpoint::all()
        .map(|e| row(e.name(), &s.endpoints[e.index()]))
        .collect();
    if !s.pay.is_empty() {
        rows.extend(
            PayOp::ALL
                .iter()
                .map(|o| row(o.name(), &s.pay.ops[*o as usize])),
        );
    }
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(20),
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Length(9),
                Constraint::Length(9),
                Constraint::Length(9),
                Constraint::Length(9),
            ],
        )
        .header(header)
        .block(block("Latency per endpoint")),
        area,
    );
}

/// Payment outcomes so far.
fn draw_payments(f: &mut Frame, area: Rect, s: &Stats) {
    let o = &s.pay.outcomes;
    let mut lines = vec![
        Line::from(format!("charges   {:>8} of {}", o.charges, o.started)),
        Line::from(format!(
            "approved  {:>8}  partial {}",
            o.approved, o.partially_approved
        )),
        Line::from(format!("declined  {:>8}", o.declined)),
    ];
    let unknown = format!(
        "unknown   {:>8}  errors {}",
        o.unknown,
        o.rejected + o.refused
    );
    lines.push(if o.unknown > 0 {
        Line::from(Span::styled(unknown, Style::default().fg(Color::Red)))
    } else {
        Line::from(unknown)
    });
    lines.push(Line::from(format!(
        "refunded  {:>8}  cancelled {}",
        o.refunded, o.cancelled
    )));
    f.render_widget(Paragraph::new(lines).block(block("Payments")), area);
}

/// Time to activate as a histogram of 8 equal buckets up to the slowest device.
fn draw_tta(f: &mut Frame, area: Rect, h: &Hist) {
    let p = Percentiles::of(h);
    let title = format!(
        "Time to activate · p50 {} p90 {} p99 {} max {}",
        fmt_ms(p.p50_ms),
        fmt_ms(p.p90_ms),
        fmt_ms(p.p99_ms),
        fmt_ms(p.max_ms)
    );
    let Some(max) = h.max() else {
        f.render_widget(
            Paragraph::new("no device activated yet").block(block(&title)),
            area,
        );
        return;
    };
    const BUCKETS: u64 = 8;
    let width = (max / BUCKETS).max(1);
    let bars: Vec<Bar> = (0..BUCKETS)
        .map(|i| {
            let (lo, hi) = (
                i * width,
                if i + 1 == BUCKETS {
                    u64::MAX
                } else {
                    (i + 1) * width - 1
                },
            );
            let n = h.0.count_between(lo, hi.min(h.0.high()));
            Bar::default()
                .value(n)
                .label(Line::from(bucket_label((i + 1) * width)))
        })
        .collect();
    let bar_width = (area.width.saturating_sub(2) / BUCKETS as u16)
        .saturating_sub(1)
        .max(1);
    f.render_widget(
        BarChart::default()
            .block(block(&title))
            .data(BarGroup::default().bars(&bars))
            .bar_width(bar_width)
            .bar_gap(1)
            .bar_style(Style::default().fg(Color::Green)),
        area,
    );
}

/// `<0.6s`, `<12s`: the upper bound of a time-to-activate bucket (µs).
fn bucket_label(us: u64) -> String {
    let s = us as f64 / 1e6;
    if s < 10.0 {
        format!("<{s:.1}s")
    } else {
        format!("<{s:.0}s")
    }
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
