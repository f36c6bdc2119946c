//! Whole-screen snapshots of every state of the POS screen, at 80×24 (compact) and 120×40,
//! with the real model driven against an in-process sandbox (paused tokio time, seeded
//! sandbox). Filters blank what differs between runs: ports, trace ids, latencies, dates.
//!
//! After an intended change: `INSTA_UPDATE=always cargo test -p posemu --test tui snapshots`, then
//! review `git diff tests/tui/snapshots` (masks keep widths: see `tui_support::snap`).

use crate::tui_support::*;
use crossterm::event::KeyCode;
use posemu_device::{Phase, Step};

/// At 80×24 the keys do not fit in the help: each description wraps under itself (no word
/// cut at the edge), and the help scrolls to its last section and back.
#[tokio::test(start_paused = true)]
async fn the_help_wraps_and_scrolls_on_a_short_screen() {
    let mut h = Harness::start(Setup {
        size: (80, 24),
        ..Setup::default()
    })
    .await;
    h.char('?');
    let top = h.render(80, 24);
    assert!(top.contains("↓ more · Esc close"), "{top}");
    let mut seen = top.clone();
    let mut last = top;
    for _ in 0..60 {
        h.press(KeyCode::Down);
        let now = h.render(80, 24);
        if now == last {
            break;
        }
        seen.push_str(&now);
        last = now;
    }
    assert!(last.contains("↑ more · Esc close"), "at the end:\n{last}");
    assert!(last.contains("Debug side"), "{last}");
    snap_at(&mut h, "help_end", 80, 24);
    let words: std::collections::HashSet<&str> = seen
        .split(|c: char| c.is_whitespace() || c == '│')
        .collect();
    for b in posemu::tui::keys::BINDINGS
        .iter()
        .filter(|b| !b.help.is_empty())
    {
        for word in b.help.split_whitespace() {
            assert!(
                words.contains(word),
                "{word:?} of {:?} is cut:\n{seen}",
                b.help
            );
        }
    }
    h.press(KeyCode::Home);
    assert_eq!(h.render(80, 24).lines().nth(1), seen.lines().nth(1));
    h.press(KeyCode::End);
    assert_eq!(h.render(80, 24), last);
    h.press(KeyCode::Esc);
    assert!(h.model().popup().is_none());
}

#[tokio::test(start_paused = true)]
async fn the_activation_flow_screen_by_screen() {
    let mut h = Harness::start(Setup::default()).await;
    snap(&mut h, "booting");

    h.until("polled twice", |m| m.device().is_some_and(|d| d.polls >= 2))
        .await;
    snap(&mut h, "pairing");

    h.char('?');
    snap(&mut h, "help");
    h.press(KeyCode::Esc);

    h.char('x');
    h.until("the code expired", |m| {
        m.expired_code().is_some() && phase(m) == Some(Phase::Step(Step::PairingCode))
    })
    .await;
    snap(&mut h, "code_expired");

    h.until("a new code", |m| phase(m) == Some(Phase::Pairing))
        .await;
    h.char('c');
    h.until("claimed, attesting", |m| {
        phase(m) == Some(Phase::Step(Step::Attest))
    })
    .await;
    snap(&mut h, "claimed");

    h.until("downloading the config", |m| {
        phase(m) == Some(Phase::Step(Step::Config))
    })
    .await;
    snap(&mut h, "setting_up");

    h.until("ready", |m| phase(m) == Some(Phase::Ready)).await;
    // let the "activated" message time out, as a merchant would see the screen
    h.until("the message gone", |m| m.toast().is_none()).await;
    snap(&mut h, "ready");
}

#[tokio::test(start_paused = true)]
async fn the_debug_side_and_popups() {
    let mut h = Harness::start(Setup::default()).await;
    h.until("polled once", |m| m.device().is_some_and(|d| d.polls >= 1))
        .await;
    // select the pairing-code exchange and show it in full
    h.press(KeyCode::Tab);
    h.press(KeyCode::Up);
    h.press(KeyCode::Enter);
    snap(&mut h, "exchange_details");

    h.char('y');
    snap(&mut h, "copy_as_curl");
    h.press(KeyCode::Esc);

    h.char('p');
    snap(&mut h, "profile_picker");
    h.press(KeyCode::Esc);

    h.char('s');
    for c in "http://pos.example.test".chars() {
        h.char(c);
    }
    snap(&mut h, "server_input");
    h.press(KeyCode::Esc);

    // narrow terminals show the debug side instead of the device
    h.app.model.set_size(80, 24);
    h.char('d');
    snap_at(&mut h, "debug_only", 80, 24);
}

#[tokio::test(start_paused = true)]
async fn the_error_screen_for_a_device_the_server_does_not_know() {
    let mut profile = posemu_profile::builtin_named("pax-a920").unwrap();
    profile.device_id = "POS-0000BAD0".into();
    let mut h = Harness::start(Setup {
        profile,
        ..Setup::default()
    })
    .await;
    h.until("stopped", |m| matches!(phase(m), Some(Phase::Failed(_))))
        .await;
    snap(&mut h, "failed");
}

#[tokio::test(start_paused = true)]
async fn update_required() {
    let mut h = Harness::start(Setup {
        min_version: Some("9.0.0".into()),
        ..Setup::default()
    })
    .await;
    h.until("update required", |m| {
        matches!(phase(m), Some(Phase::UpdateRequired { .. }))
    })
    .await;
    snap(&mut h, "update_required");
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_server() {
    let port = dead_port();
    let mut h = Harness::start(Setup {
        server: Some(format!("http://127.0.0.1:{port}")),
        ..Setup::default()
    })
    .await;
    h.until("backing off", |m| {
        m.trouble().is_some_and(|t| t.attempt >= 2)
    })
    .await;
    snap(&mut h, "unreachable");
}
