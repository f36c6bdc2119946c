//! The dashboard's bottom band: time to activate, poll lateness and (once terminals charge)
//! payments, side by side. Each panel says what it has in the width it gets: a title or row
//! that would be cut takes a shorter form (fewer percentiles, a shorter label, one figure a
//! line) instead ([`super::fitting`]).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Paragraph};
use ratatui::Frame;

use super::{block, fitting};
use crate::fleet::report::{fmt_ms, Percentiles};
use crate::fleet::stats::{Hist, Stats};

/// Rows the band needs at least: with payments, their five lines.
pub(super) fn min_height(s: &Stats) -> u16 {
    if s.pay.is_empty() {
        5
    } else {
        7
    }
}

/// The time-to-activate panel gets at least this many columns next to the others, when the
/// terminal has them (its title with p50, p90 and max in the short label).
const TTA_WIDE: u16 = 48;

pub(super) fn draw(f: &mut Frame, area: Rect, s: &Stats) {
    let late = Percentiles::of(&s.poll_lateness);
    let (wide, narrow) = (lateness_wide(&late), lateness_narrow(&late));
    let need = |lines: &[String]| needed_width(lines).max(title_width("Poll lateness"));
    if s.pay.is_empty() {
        let [tta, rest] =
            Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                .areas(area);
        draw_tta(f, tta, &s.time_to_activate);
        let lines = if rest.width >= needed_width(&wide) {
            wide
        } else {
            narrow
        };
        return draw_lines(f, rest, "Poll lateness", lines);
    }
    let pay = payments_lines(s);
    let pay_w = needed_width(&pay)
        .max(title_width("Payments"))
        .min(area.width / 2);
    let rest = area.width.saturating_sub(pay_w);
    let late_lines = if rest.saturating_sub(need(&wide)) >= TTA_WIDE {
        wide
    } else {
        narrow
    };
    let late_w = need(&late_lines).min(rest / 2);
    let [tta, late, payments] = Layout::horizontal([
        Constraint::Min(0),
        Constraint::Length(late_w),
        Constraint::Length(pay_w),
    ])
    .areas(area);
    draw_tta(f, tta, &s.time_to_activate);
    draw_lines(f, late, "Poll lateness", late_lines);
    let unknown = s.pay.outcomes.unknown > 0;
    let lines: Vec<Line> = pay
        .into_iter()
        .enumerate()
        .map(|(i, l)| match i {
            // the unknown outcomes in red: charges that may exist
            3 if unknown => Line::from(Span::styled(l, Style::default().fg(Color::Red))),
            _ => Line::from(l),
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(block("Payments")), payments);
}

fn draw_lines(f: &mut Frame, area: Rect, title: &str, lines: Vec<String>) {
    let lines: Vec<Line> = lines.into_iter().map(Line::from).collect();
    f.render_widget(Paragraph::new(lines).block(block(title)), area);
}

/// Columns a box needs for `lines`: their longest, a blank column before the right border
/// (so a full row does not read as cut) and the two borders.
fn needed_width(lines: &[String]) -> u16 {
    let longest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    u16::try_from(longest + 3).unwrap_or(u16::MAX)
}

/// Columns a box needs for its title ([`super::block`] pads it with a space each side).
fn title_width(title: &str) -> u16 {
    u16::try_from(title.chars().count() + 4).unwrap_or(u16::MAX)
}

/// `p50 1.50s     p90 2.70s` / `p99 2.97s     max 3.00s` / `polls 1000`.
fn lateness_wide(p: &Percentiles) -> Vec<String> {
    vec![
        format!("p50 {:<9} p90 {}", fmt_ms(p.p50_ms), fmt_ms(p.p90_ms)),
        format!("p99 {:<9} max {}", fmt_ms(p.p99_ms), fmt_ms(p.max_ms)),
        format!("polls {}", p.count),
    ]
}

/// One figure a line, for a narrow box.
fn lateness_narrow(p: &Percentiles) -> Vec<String> {
    vec![
        format!("p50 {}", fmt_ms(p.p50_ms)),
        format!("p90 {}", fmt_ms(p.p90_ms)),
        format!("p99 {}", fmt_ms(p.p99_ms)),
        format!("max {}", fmt_ms(p.max_ms)),
        format!("polls {}", p.count),
    ]
}

/// Payment outcomes so far (the fourth line, unknown outcomes, is drawn red when not 0).
fn payments_lines(s: &Stats) -> Vec<String> {
    let o = &s.pay.outcomes;
    vec![
        format!("charges   {:>8} of {}", o.charges, o.started),
        format!(
            "approved  {:>8}  partial {}",
            o.approved, o.partially_approved
        ),
        format!("declined  {:>8}", o.declined),
        format!(
            "unknown   {:>8}  errors {}",
            o.unknown,
            o.rejected + o.refused
        ),
        format!("refunded  {:>8}  cancelled {}", o.refunded, o.cancelled),
    ]
}

/// The time-to-activate panel's title, the longest that fits: every percentile, then without
/// p99 (near max in an activation storm), then under the short label with p90, then p50 and
/// max, then p50, then the label alone.
fn tta_title(p: &Percentiles, width: u16) -> String {
    let [p50, p90, p99, max] = [p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms].map(fmt_ms);
    let long = "Time to activate";
    let short = "Activation";
    fitting(
        width,
        [
            format!("{long} · p50 {p50} p90 {p90} p99 {p99} max {max}"),
            format!("{long} · p50 {p50} p90 {p90} max {max}"),
            format!("{short} · p50 {p50} p90 {p90} max {max}"),
            format!("{short} · p50 {p50} max {max}"),
            format!("{short} · p50 {p50}"),
            short.to_string(),
        ],
    )
}

/// The smallest of 1, 2, 5 × 10ⁿ at least `x` (µs): a bucket width that reads as a round number.
fn nice_width(x: u64) -> u64 {
    let mut decade = 1u64;
    loop {
        for m in [1, 2, 5] {
            let w = decade.saturating_mul(m);
            if w >= x || w == u64::MAX {
                return w;
            }
        }
        decade = decade.saturating_mul(10);
    }
}

/// Time to activate as a histogram of at most 8 equal buckets of a round width (1, 2 or 5 ×
/// 10ⁿ µs), up to the slowest device, so that the labels step evenly (2s 4s 6s…).
fn draw_tta(f: &mut Frame, area: Rect, h: &Hist) {
    let title = tta_title(&Percentiles::of(h), area.width);
    let Some(max) = h.max() else {
        f.render_widget(
            Paragraph::new("no device activated yet").block(block(&title)),
            area,
        );
        return;
    };
    const MAX_BUCKETS: u64 = 8;
    // buckets [i·width, (i+1)·width): the last one must hold `max`
    let width = nice_width((max / MAX_BUCKETS).saturating_add(1));
    let buckets = (max / width + 1).min(MAX_BUCKETS);
    let bar_width = (area.width.saturating_sub(2) / buckets as u16)
        .saturating_sub(1)
        .max(1);
    let bounds: Vec<u64> = (1..=buckets).map(|i| i.saturating_mul(width)).collect();
    let labels = bucket_labels(&bounds, bar_width);
    let bars: Vec<Bar> = (0..buckets)
        .zip(labels)
        .map(|(i, label)| {
            let (lo, hi) = (
                i * width,
                if i + 1 == buckets {
                    u64::MAX
                } else {
                    (i + 1) * width - 1
                },
            );
            let n = h.0.count_between(lo, hi.min(h.0.high()));
            Bar::default().value(n).label(Line::from(label))
        })
        .collect();
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

/// The upper bound of a time-to-activate bucket (µs) in its forms, most precise first:
/// `<2.5s`, `2.5s`, `2.5`, then rounded up to whole seconds, `<3s`, `3s`, `3` (still upper
/// bounds); whole seconds, and from 10 s on, without tenths (`<12s` in the first three).
fn bucket_forms(us: u64) -> [String; 6] {
    let s = us as f64 / 1e6;
    let up_tenths = (s * 10.0).ceil() / 10.0;
    let whole = format!("{:.0}", s.ceil());
    let tenths = if up_tenths < 10.0 && up_tenths.fract() != 0.0 {
        format!("{up_tenths:.1}")
    } else {
        whole.clone()
    };
    [
        format!("<{tenths}s"),
        format!("{tenths}s"),
        tenths,
        format!("<{whole}s"),
        format!("{whole}s"),
        whole,
    ]
}

/// The buckets' labels (upper bounds in µs) for bars `width` columns wide: all in the first
/// form ([`bucket_forms`]) that fits every one of them, else the shortest.
fn bucket_labels(bounds: &[u64], width: u16) -> Vec<String> {
    let forms: Vec<[String; 6]> = bounds.iter().map(|&b| bucket_forms(b)).collect();
    let fits = |k: usize| forms.iter().all(|f| f[k].chars().count() <= width as usize);
    let k = (0..6).find(|&k| fits(k)).unwrap_or(5);
    forms.into_iter().map(|f| f[k].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_widths_are_round_and_at_most_eight_hold_the_slowest() {
        assert_eq!(nice_width(1), 1);
        assert_eq!(nice_width(3), 5);
        assert_eq!(nice_width(1_250_001), 2_000_000);
        assert_eq!(nice_width(2_000_000), 2_000_000);
        assert_eq!(nice_width(u64::MAX), u64::MAX);
        for max in [
            1,
            7,
            999,
            10_000_000,
            20_000_000,
            86_400_000_000,
            u64::MAX / 2,
        ] {
            let width = nice_width((max / 8).saturating_add(1));
            let buckets = (max / width + 1).min(8);
            assert!(buckets <= 8 && buckets.saturating_mul(width) > max, "{max}");
        }
        // 10 s: five buckets of 2 s, labelled evenly
        let width = nice_width(10_000_000 / 8 + 1);
        let bounds: Vec<u64> = (1..=(10_000_000 / width + 1)).map(|i| i * width).collect();
        assert_eq!(
            bucket_labels(&bounds, 3),
            ["2s", "4s", "6s", "8s", "10s", "12s"]
        );
    }

    #[test]
    fn bucket_labels_are_upper_bounds_in_one_form_that_fits() {
        let bounds = [2_500_000, 5_000_000, 9_990_000, 12_400_000];
        assert_eq!(bucket_labels(&bounds, 8), ["<2.5s", "<5s", "<10s", "<13s"]);
        assert_eq!(bucket_labels(&bounds, 4), ["2.5s", "5s", "10s", "13s"]);
        assert_eq!(bucket_labels(&bounds, 3), ["2.5", "5", "10", "13"]);
        assert_eq!(bucket_labels(&bounds, 2), ["3", "5", "10", "13"]);
    }
}
