//! End to end, "What users hit" item 3: text `posemu activate` on a real terminal (tmux, 80×24
//! and 120×40) keeps its waiting line current: the poll count goes up at each poll, and between
//! polls the next-poll countdown and the code's time left move, so the line never looks stuck.
//!
//! Real time, as a person sees it: polls come every 3 s (the spec's shortest interval), so a
//! test watches two polls, about 7 s; the screen is sampled every 100 ms within a bound.

use std::time::{Duration, Instant};

use regex::Regex;

use crate::tmux_support::Tmux;

/// What the waiting line says: polls so far, seconds to the next poll, the code's time left.
#[derive(Debug, Clone, PartialEq)]
struct Waiting {
    polls: u32,
    next_poll_s: Option<u64>,
    /// `polling now` instead of the countdown (a redraw while a poll is out).
    polling_now: bool,
    expires: Option<String>,
}

fn waiting_line(screen: &str) -> Option<Waiting> {
    let polled = Regex::new(r"waiting for merchant \(polled (\d+)×").unwrap();
    let next = Regex::new(r"next (?:poll )?in (\d+) (m?s)").unwrap();
    let expires = Regex::new(r"expires (?:in )?(\d+:\d\d)").unwrap();
    let line = screen
        .lines()
        .rev()
        .find(|l| l.contains("waiting for merchant (polled "))?;
    Some(Waiting {
        polls: polled.captures(line)?[1].parse().ok()?,
        next_poll_s: next.captures(line).map(|c| {
            if &c[2] == "ms" {
                0
            } else {
                c[1].parse().unwrap()
            }
        }),
        polling_now: line.contains("polling now"),
        expires: expires.captures(line).map(|c| c[1].to_string()),
    })
}

fn the_waiting_line_keeps_moving(w: u16, h: u16) {
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::new(&format!("activate{w}"), "activate");
    tmux.start_posemu(home.path(), "activate", w, h);
    tmux.wait_text("✓ pairing code ", Duration::from_secs(20));

    // every different state of the waiting line, in order, until the second poll and a
    // little after it
    let mut seen: Vec<Waiting> = Vec::new();
    let start = Instant::now();
    loop {
        let screen = tmux.screen();
        if let Some(now) = waiting_line(&screen) {
            if seen.last() != Some(&now) {
                seen.push(now);
            }
        }
        let polls = seen.last().map_or(0, |s| s.polls);
        if polls >= 2
            && seen
                .last()
                .is_some_and(|s| s.next_poll_s.is_some_and(|n| n < 3))
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{w}x{h}: the waiting line did not move through two polls: {seen:?}\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let screen = tmux.screen();
    assert!(
        seen.iter()
            .all(|s| (s.next_poll_s.is_some() || s.polling_now) && s.expires.is_some()),
        "{w}x{h}: the line names the next poll and the code's expiry: {seen:?}\n{screen}"
    );
    // the count goes up one poll at a time
    let polls: Vec<u32> = seen.iter().map(|s| s.polls).collect();
    assert!(polls.windows(2).all(|p| p[1] == p[0] || p[1] == p[0] + 1));
    assert_eq!(polls.first(), Some(&1), "{w}x{h}: {seen:?}");
    // between two polls, the countdown to the next one goes down (it rounds up, and the
    // line is also redrawn when only the expiry moved, so a value may show twice)
    let first: Vec<u64> = seen
        .iter()
        .filter(|s| s.polls == 1)
        .filter_map(|s| s.next_poll_s)
        .collect();
    assert!(
        first.windows(2).all(|p| p[1] <= p[0]) && first.last() < first.first(),
        "{w}x{h}: the next-poll countdown: {seen:?}"
    );
    // and so does the code's time left
    let expiries: Vec<&String> = seen.iter().filter_map(|s| s.expires.as_ref()).collect();
    assert!(
        expiries.first() != expiries.last(),
        "{w}x{h}: the code's expiry: {seen:?}"
    );
    // one line, rewritten in place: no second waiting line
    assert_eq!(
        screen.matches("waiting for merchant").count(),
        1,
        "{w}x{h}:\n{screen}"
    );
    tmux.run(&["send-keys", "-t", tmux.session, "C-c"]);
    tmux.wait_text("posemu exited 130", Duration::from_secs(10));
}

#[test]
fn activate_on_a_terminal_keeps_the_waiting_line_current_at_80x24() {
    the_waiting_line_keeps_moving(80, 24);
}

#[test]
fn activate_on_a_terminal_keeps_the_waiting_line_current_at_120x40() {
    the_waiting_line_keeps_moving(120, 40);
}
