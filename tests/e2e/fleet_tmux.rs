//! End to end, "What users hit" item 4: the fleet dashboard on a real terminal (tmux, 80×24
//! and 120×40). The totals that matter (activated, failed, in progress) are on screen while it
//! runs; a panel too long for the screen scrolls with the keys its hint line names (`Tab` to
//! pick it, `↓`); after the run the dashboard stays (it says `finished … q: close`) until `q`,
//! and then the summary is printed.
//!
//! A short run: 5 devices, claimed at once, polling every 3 s, taking payments (their rows make
//! the latency panel too long even at 120×40) for 5 s in all.

use std::time::Duration;

use regex::Regex;

use crate::tmux_support::Tmux;

const WAIT: Duration = Duration::from_secs(30);

/// The panels that scroll, in `Tab` order, as their titles start.
const PANELS: [&str; 3] = ["Devices", "Errors by code", "Latency per endpoint"];

/// A scrolled panel's title: its index in [`PANELS`] and the first row shown (`· 3–8 of 12`).
fn scrolled_panel(screen: &str) -> Option<(usize, u32)> {
    let re = Regex::new(r"┌ ([A-Za-z ]+?)(?: \(\d+\))? · (\d+)–\d+ of \d+").unwrap();
    // the last panel that is long: the latency panel is that at both sizes
    re.captures_iter(screen)
        .filter_map(|c| Some((PANELS.iter().position(|p| *p == &c[1])?, c[2].parse().ok()?)))
        .last()
}

fn the_dashboard_shows_totals_scrolls_and_stays(w: u16, h: u16) {
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::new(&format!("fleet{w}"), "fleet");
    tmux.start_posemu(
        home.path(),
        "fleet --devices 5 --ramp 0 --claim-after 0 --poll 3-3 --duration 5s --charges-per-minute 120",
        w,
        h,
    );
    let totals = Regex::new(
        r"activated \d+ \(\d+\.\d%\) · failed \d+ · in progress \d+ · waiting \d+ · errors \d+",
    )
    .unwrap();
    // while it runs: the totals, on the second line, under the title
    let running = tmux.wait_for("the totals while running", WAIT, |s| {
        (s.contains("q: stop") && totals.is_match(s)).then(|| s.to_string())
    });
    let second = running.lines().nth(1).unwrap_or_default();
    assert!(totals.is_match(second), "{w}x{h}:\n{running}");

    // the run ends; the dashboard stays, and says how to close it
    let done = tmux.wait_text("finished (duration) · q: close", WAIT);
    assert!(totals.is_match(&done), "{w}x{h}:\n{done}");
    assert!(
        done.contains("Tab: next panel · ↑↓ PgUp PgDn: scroll"),
        "{w}x{h}:\n{done}"
    );
    let (panel, first) = scrolled_panel(&done)
        .unwrap_or_else(|| panic!("{w}x{h}: no panel too long for the screen:\n{done}"));
    assert_eq!(first, 1, "{w}x{h}: {}\n{done}", PANELS[panel]);
    for _ in 0..panel {
        tmux.keys(&["Tab"]);
    }
    tmux.keys(&["Down"]);
    let scrolled = tmux.wait_for("the panel scrolled by one row", WAIT, |s| {
        (scrolled_panel(s) == Some((panel, 2))).then(|| s.to_string())
    });
    // still there after the keys, and not gone by itself
    assert!(
        scrolled.contains("q: close") && !scrolled.contains("posemu exited"),
        "{w}x{h}:\n{scrolled}"
    );

    assert_eq!(tmux.quit(), "0", "{w}x{h}: exit status\n{}", tmux.screen());
    // at 80×24 the summary's first lines scrolled off the top
    let after = tmux.screen_and_history();
    assert!(
        after.contains("posemu fleet: 5 devices: ") && after.contains("  states: "),
        "{w}x{h}: the summary after the dashboard:\n{after}"
    );
    assert!(!after.contains("q: close"), "{w}x{h}:\n{after}");
    assert_eq!(tmux.format("#{alternate_on}"), "0", "{w}x{h}");
}

#[test]
fn the_fleet_dashboard_shows_totals_scrolls_and_stays_until_q_at_80x24() {
    the_dashboard_shows_totals_scrolls_and_stays(80, 24);
}

#[test]
fn the_fleet_dashboard_shows_totals_scrolls_and_stays_until_q_at_120x40() {
    the_dashboard_shows_totals_scrolls_and_stays(120, 40);
}

/// `--headless` on a terminal: no dashboard to close, the run ends by itself with the summary.
#[test]
fn the_fleet_with_headless_ends_by_itself_with_the_summary() {
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::new("fleet-headless", "fleet");
    tmux.start_posemu(
        home.path(),
        "fleet --devices 3 --ramp 0 --claim-after 0 --poll 3-3 --headless",
        80,
        24,
    );
    let screen = tmux.wait_text("posemu exited 0", WAIT);
    let all = tmux.screen_and_history();
    assert!(
        all.contains("posemu fleet: 3 devices: 3 activated, 0 failed"),
        "{all}"
    );
    assert!(
        !all.contains("q: close") && !all.contains("Tab: next panel"),
        "{screen}"
    );
}
