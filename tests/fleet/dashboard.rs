//! 4: the live dashboard, rendered to ratatui's `TestBackend` at the smallest supported size
//! (80×24) and a roomy one (120×40): the totals that matter come first, long panels scroll to
//! every row, and a finished run waits for `q`.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use posemu::fleet::dashboard::{
    key_action, render, Fit, KeyAction, Panel, Scroll, View, STATE_ORDER,
};
use posemu::fleet::live::{Rates, StopReason};
use posemu::fleet::pay_stats::PayOp;
use posemu::fleet::stats::{Endpoint, State, Stats};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// A fleet of 1000 with devices in every state, requests on every endpoint, and 8 error codes.
fn busy() -> Stats {
    let mut s = Stats::default();
    s.states[State::Waiting as usize] = 1000;
    for (i, st) in State::ALL.into_iter().enumerate() {
        if st != State::Waiting {
            for _ in 0..(10 + i) {
                s.moved(State::Waiting, st);
            }
        }
    }
    for (i, e) in Endpoint::all().enumerate() {
        s.request(e, 1000 * (i as u64 + 1), None);
    }
    for code in [
        "4004", "4009", "4010", "4022", "4026", "4029", "5000", "5003",
    ] {
        s.request(
            Endpoint::Step(posemu_device::Step::Status),
            500,
            Some(code.into()),
        );
    }
    s
}

/// The screen as lines, and what did not fit.
fn screen(
    s: &Stats,
    w: u16,
    h: u16,
    scroll: Scroll,
    finished: Option<StopReason>,
) -> (Vec<String>, Fit) {
    screen_titled(
        "posemu fleet · 1000 devices · http://127.0.0.1:8765",
        s,
        (w, h),
        scroll,
        finished,
    )
}

fn screen_titled(
    title: &str,
    s: &Stats,
    (w, h): (u16, u16),
    scroll: Scroll,
    finished: Option<StopReason>,
) -> (Vec<String>, Fit) {
    let mut rates = Rates::default();
    rates.tick(0);
    let view = View {
        title: title.into(),
        elapsed: Duration::from_secs(12),
        devices: s.states.iter().sum::<i64>().max(0) as u64,
        stats: s,
        rates: &rates,
        stopping: false,
        finished,
        scroll,
    };
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    let mut fit = Fit::default();
    t.draw(|f| fit = render(f, &view)).unwrap();
    let buf = t.backend().buffer();
    let lines = (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect())
        .collect();
    (lines, fit)
}

/// A row of the panel at the left edge (Devices, latency) that starts with `name`.
fn left_row(lines: &[String], name: &str) -> bool {
    lines.iter().any(|l| l.starts_with(&format!("│{name} ")))
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

#[test]
fn the_totals_that_matter_come_first_at_any_size() {
    let s = busy();
    let failed = s.count(State::Failed) + s.count(State::UpdateRequired);
    let in_progress: i64 = State::ALL
        .into_iter()
        .filter(|st| !st.is_settled() && *st != State::Waiting)
        .map(|st| s.count(st))
        .sum();
    for (w, h) in [(80, 24), (120, 40)] {
        let (lines, _) = screen(&s, w, h, Scroll::default(), None);
        let all = lines.join("\n");
        let totals = &lines[1];
        for want in [
            format!("activated {}", s.count(State::Ready)),
            format!("failed {failed}"),
            format!("in progress {in_progress}"),
        ] {
            assert!(
                totals.contains(&want),
                "{w}×{h}: {want:?} not in {totals:?}\n{all}"
            );
        }
        // the Devices box lists the settled states first
        assert!(left_row(&lines, "activated"), "{w}×{h}\n{all}");
        assert!(left_row(&lines, "failed"), "{w}×{h}\n{all}");
        // the keys are on screen
        let hint = &lines[h as usize - 1];
        assert!(
            hint.contains("q: stop") && hint.contains("Tab") && hint.contains("scroll"),
            "{hint:?}"
        );
        assert!(
            all.contains("Time to activate") && all.contains("Poll lateness"),
            "{w}×{h}\n{all}"
        );
    }
}

#[test]
fn at_80x24_long_panels_scroll_to_every_row() {
    let s = busy();
    let (lines, fit) = screen(&s, 80, 24, Scroll::default(), None);
    let all = lines.join("\n");
    assert!(
        !left_row(&lines, "waiting"),
        "not all states fit 80×24:\n{all}"
    );
    assert!(
        !left_row(&lines, "claim"),
        "not all endpoints fit 80×24:\n{all}"
    );
    assert!(
        all.contains("Devices · 1–"),
        "the box says it holds more:\n{all}"
    );

    // Devices has the focus first: scroll it one row at a time, see every state
    let mut scroll = Scroll::default();
    scroll.fit(&fit);
    let mut seen_states = std::collections::BTreeSet::new();
    let mut seen_endpoints = std::collections::BTreeSet::new();
    let look = |scroll: Scroll,
                seen: &mut std::collections::BTreeSet<&'static str>,
                names: &[&'static str]| {
        let (lines, fit) = screen(&s, 80, 24, scroll, None);
        for n in names {
            if left_row(&lines, n) {
                seen.insert(*n);
            }
        }
        fit
    };
    let state_names: Vec<&'static str> = STATE_ORDER.iter().map(|s| s.name()).collect();
    let endpoint_names: Vec<&'static str> = Endpoint::all().map(|e| e.name()).collect();
    assert_eq!(scroll.focused(), Panel::Devices);
    for _ in 0..STATE_ORDER.len() {
        let fit = look(scroll, &mut seen_states, &state_names);
        scroll.fit(&fit);
        assert_eq!(
            key_action(key(KeyCode::Down), false, &mut scroll),
            KeyAction::Scrolled
        );
    }
    assert_eq!(seen_states.len(), STATE_ORDER.len(), "{seen_states:?}");
    let (lines, _) = screen(&s, 80, 24, scroll, None);
    assert!(left_row(&lines, "waiting"), "{}", lines.join("\n"));

    // Tab to the latency table (past the errors), End shows the last endpoint
    key_action(key(KeyCode::Tab), false, &mut scroll);
    key_action(key(KeyCode::Tab), false, &mut scroll);
    assert_eq!(scroll.focused(), Panel::Latency);
    for _ in 0..endpoint_names.len() {
        let fit = look(scroll, &mut seen_endpoints, &endpoint_names);
        scroll.fit(&fit);
        key_action(key(KeyCode::Down), false, &mut scroll);
    }
    assert_eq!(
        seen_endpoints.len(),
        endpoint_names.len(),
        "{seen_endpoints:?}"
    );
    key_action(key(KeyCode::Home), false, &mut scroll);
    key_action(key(KeyCode::End), false, &mut scroll);
    let (lines, _) = screen(&s, 80, 24, scroll, None);
    assert!(left_row(&lines, "claim"), "{}", lines.join("\n"));
    // the table fits 80 columns: no name is cut
    assert!(
        left_row(&lines, "terminal-parameters"),
        "{}",
        lines.join("\n")
    );
    // scrolling never runs past the end
    assert!(scroll.offset(Panel::Latency) <= fit.max[Panel::Latency as usize]);
}

#[test]
fn at_120x40_everything_fits_without_scrolling() {
    let s = busy();
    let (lines, fit) = screen(&s, 120, 40, Scroll::default(), None);
    let all = lines.join("\n");
    assert_eq!(fit.max[Panel::Devices as usize], 0, "{all}");
    assert_eq!(fit.max[Panel::Latency as usize], 0, "{all}");
    for st in STATE_ORDER {
        assert!(left_row(&lines, st.name()), "{}\n{all}", st.name());
    }
    for e in Endpoint::all() {
        assert!(left_row(&lines, e.name()), "{}\n{all}", e.name());
    }
    assert!(all.contains("Requests/s"), "{all}");
}

#[test]
fn a_finished_run_stays_on_screen_until_q() {
    let s = busy();
    let (lines, _) = screen(&s, 80, 24, Scroll::default(), Some(StopReason::Settled));
    let hint = &lines[23];
    assert!(
        hint.contains("finished (settled)") && hint.contains("q: close"),
        "{hint:?}"
    );
    let mut scroll = Scroll::default();
    // while it runs, q stops the run; once it is over, q closes the dashboard
    assert_eq!(
        key_action(key(KeyCode::Char('q')), false, &mut scroll),
        KeyAction::Stop
    );
    assert_eq!(
        key_action(key(KeyCode::Char('q')), true, &mut scroll),
        KeyAction::Close
    );
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(key_action(ctrl_c, true, &mut scroll), KeyAction::Close);
    // other keys do not close it
    assert_eq!(
        key_action(key(KeyCode::Char('x')), true, &mut scroll),
        KeyAction::Nothing
    );
    assert_eq!(
        key_action(key(KeyCode::Down), true, &mut scroll),
        KeyAction::Scrolled
    );
}

/// [`busy`] with activation times and poll lateness, and with payments when `paying`.
fn with_times(mut s: Stats, paying: bool) -> Stats {
    for i in 0..1000u64 {
        s.time_to_activate.record(1_000_000 + i * 19_000);
        s.poll_lateness.record(1_000 + i * 3_000);
    }
    if paying {
        s.pay.request(PayOp::Charge, 4_200, None);
        let o = &mut s.pay.outcomes;
        (o.started, o.charges, o.approved, o.partially_approved) =
            (123_456, 123_000, 100_000, 1234);
        (o.declined, o.unknown, o.rejected) = (20_000, 12, 3);
        (o.refunded, o.cancelled) = (4567, 890);
    }
    s
}

/// A fleet of 100,000 with six-digit counts everywhere: the longest numbers a panel shows.
fn large() -> Stats {
    let mut s = with_times(busy(), true);
    s.states[State::Waiting as usize] = 0;
    for st in [
        State::Ready,
        State::Failed,
        State::Polling,
        State::UpdateRequired,
    ] {
        s.states[st as usize] += 24_990;
    }
    for _ in 0..123_456 {
        s.request(
            Endpoint::Step(posemu_device::Step::Status),
            500,
            Some("5003".into()),
        );
    }
    s
}

/// What was cut at the right edge of a box or of the screen: a box's title that does not end
/// in its padding space (every title is drawn ` like this `), a row inside a box that runs
/// into its right border (but bars), a line of the screen that runs into its last column.
fn cuts(lines: &[String]) -> Vec<String> {
    let bar = |c: char| ('\u{2580}'..='\u{259f}').contains(&c);
    let mut found = Vec::new();
    for (y, line) in lines.iter().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        if !chars.iter().any(|c| matches!(c, '│' | '┌' | '└')) {
            if chars.last().is_some_and(|c| *c != ' ') {
                found.push(format!("line {y} fills the width: {line}"));
            }
            continue;
        }
        let mut start = None;
        for (x, &c) in chars.iter().enumerate() {
            match (c, start) {
                ('┌', _) | ('│', None) => start = Some(x),
                ('┐', Some(s)) => {
                    let title: String = chars[s + 1..x].iter().collect();
                    let title = title.trim_end_matches('─');
                    if !title.is_empty() && !title.ends_with(' ') {
                        found.push(format!("title cut: {title:?}"));
                    }
                    start = None;
                }
                ('│', Some(s)) => {
                    let before = chars[x - 1];
                    if x > s + 1 && before != ' ' && !bar(before) {
                        let row: String = chars[s + 1..x].iter().collect();
                        found.push(format!("row cut: {row:?}"));
                    }
                    start = None;
                }
                _ => {}
            }
        }
    }
    found
}

/// 2: no panel title and no row is cut at 80×24 or 120×40, with and without payments and with
/// six-digit counts; at 80×24 the panels say less instead (the time to activate keeps p50,
/// p90 and max under a shorter label), at 120×40 they say it all.
#[test]
fn no_title_or_row_is_cut_at_80x24_or_120x40() {
    for (name, s) in [
        ("busy", with_times(busy(), false)),
        ("paying", with_times(busy(), true)),
        ("large", large()),
    ] {
        for (w, h) in [(80, 24), (120, 40)] {
            let (lines, _) = screen(&s, w, h, Scroll::default(), None);
            let all = lines.join("\n");
            let cut = cuts(&lines);
            assert!(cut.is_empty(), "{name} {w}×{h}: {cut:#?}\n{all}");
            for panel in ["Devices", "Errors", "Latency per endpoint", "Poll lateness"] {
                assert!(
                    all.contains(&format!("┌ {panel}")),
                    "{name} {w}×{h}: {panel}\n{all}"
                );
            }
            if name != "busy" {
                assert!(all.contains("┌ Payments ─"), "{name} {w}×{h}\n{all}");
                assert!(all.contains("cancelled 890"), "{name} {w}×{h}\n{all}");
            }
        }
    }
    let (lines, _) = screen(&with_times(busy(), false), 80, 24, Scroll::default(), None);
    let all = lines.join("\n");
    assert!(
        all.contains("┌ Activation · p50 10.5s p90 18.1s max 20.0s ─"),
        "{all}"
    );
    let (lines, _) = screen(&with_times(busy(), false), 120, 40, Scroll::default(), None);
    let all = lines.join("\n");
    assert!(
        all.contains("┌ Time to activate · p50 10.5s p90 18.1s p99 19.8s max 20.0s ─"),
        "{all}"
    );
    // a long server address gives way to the clock and the rate
    let title = "posemu fleet · 100000 devices · http://fleet-sandbox.staging.example.com:8765";
    let (lines, _) = screen_titled(title, &large(), (80, 24), Scroll::default(), None);
    assert!(cuts(&lines).is_empty(), "{}", lines.join("\n"));
    assert!(
        lines[0].starts_with("posemu fleet · 100000 devices · http://fleet-sandbox.")
            && lines[0].ends_with("… · 12s · 0 req/s "),
        "{}",
        lines[0]
    );
    // the check finds a cut: the old title on a box too narrow for it
    let cut = cuts(&["┌ Time to activate · p50 10.5s p90 18.1s p9┐".to_string()]);
    assert_eq!(cut.len(), 1, "{cut:?}");
}
