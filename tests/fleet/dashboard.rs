//! 4: the live dashboard, rendered to ratatui's `TestBackend` at the smallest supported size
//! (80×24) and a roomy one (120×40): the totals that matter come first, long panels scroll to
//! every row, and a finished run waits for `q`.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use posemu::fleet::dashboard::{
    key_action, render, Fit, KeyAction, Panel, Scroll, View, STATE_ORDER,
};
use posemu::fleet::live::{Rates, StopReason};
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
    let mut rates = Rates::default();
    rates.tick(0);
    let view = View {
        title: "posemu fleet · 1000 devices · http://127.0.0.1:8765".into(),
        elapsed: Duration::from_secs(12),
        devices: 1000,
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
