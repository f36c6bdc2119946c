//! The POS screen driven by keys, as a person would use it: the real app model (device
//! machine, driver, HTTP client, exchange log) against an in-process sandbox on 127.0.0.1,
//! asserting on the rendered screen. tokio's clock is paused, so 3 s polls and 300 s codes
//! pass without sleeping.

use crate::tui_support::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use posemu::tui::{Cmd, Msg, Theme};
use posemu_device::{Phase, Step};
use ratatui::style::Color;

#[tokio::test(start_paused = true)]
async fn start_code_claim_ready() {
    let mut h = Harness::start(Setup::default()).await;
    let code = pairing(&mut h).await;
    let screen = h.screen();
    assert!(screen.contains("Pair this terminal"), "{screen}");
    assert!(
        screen.contains(&format!("{}/portal?code={code}", h.url)),
        "the portal link with the code: {screen}"
    );
    assert!(screen.contains("Waiting for merchant"), "{screen}");
    assert!(screen.contains("Code expires in 5:00"), "{screen}");
    assert!(
        screen.contains("c claim"),
        "the hint bar offers the claim: {screen}"
    );
    let wide = h.render(120, 40);
    let bar = wide.lines().last().unwrap();
    assert!(bar.contains("+/- poll"), "both poll keys: {bar}");
    let small = h.render(80, 24);
    let bar = small.lines().last().unwrap();
    assert!(
        bar.contains("d debug"),
        "the debug side's key at 80 columns: {bar}"
    );
    // below 80×24 the code is in plain blocks: sextants are missing from many fonts
    for (w, hgt) in [(60, 20), (79, 23), (70, 18)] {
        let tiny = h.render(w, hgt);
        let sextant = tiny
            .chars()
            .find(|c| ('\u{1FB00}'..='\u{1FB3B}').contains(c));
        assert_eq!(sextant, None, "{w}x{hgt}:\n{tiny}");
        assert!(tiny.contains('█'), "{w}x{hgt}: the code in blocks:\n{tiny}");
    }

    h.char('c');
    h.until_screen("Ready for payments").await;
    let screen = h.screen();
    for want in ["Demo Merchant", "TID-", "POS-8F3A2C91", "EUR"] {
        assert!(
            screen.contains(want),
            "{want} on the ready screen:\n{screen}"
        );
    }
    assert!(
        !screen.contains("c claim"),
        "nothing to claim any more:\n{screen}"
    );
    // every step of the flow was shown with its time, and the exchanges were listed
    let m = h.model();
    for s in [
        Step::Attest,
        Step::Keys,
        Step::Config,
        Step::TerminalParameters,
        Step::Activate,
    ] {
        assert!(m.step_time(s).is_some(), "{s:?} timed");
    }
    let paths: Vec<&str> = m.debug().exchanges().iter().map(|e| e.path()).collect();
    assert!(paths.contains(&"/sandbox/devices/POS-8F3A2C91/claim"));
    assert_eq!(paths.last(), Some(&"/pos/activate"));
    assert!(screen.contains("/pos/activate"), "{screen}");
}

#[tokio::test(start_paused = true)]
async fn expire_gives_a_new_code_then_restart_starts_over() {
    let mut h = Harness::start(Setup::default()).await;
    let first = pairing(&mut h).await;
    h.char('x');
    h.until("a new code", |m| {
        m.device()
            .and_then(|d| d.code.as_ref())
            .is_some_and(|c| c.code != first)
            && phase(m) == Some(Phase::Pairing)
    })
    .await;
    let second = code(h.model());
    let screen = h.screen();
    assert!(screen.contains(&format!("?code={second}")), "{screen}");
    assert!(
        screen.contains(&format!("code {first} expired")),
        "the timeline tells: {screen}"
    );

    // claim, then start from scratch: the sandbox forgets the device and a new code comes
    h.char('c');
    h.until("ready", |m| phase(m) == Some(Phase::Ready)).await;
    h.char('r');
    h.until("pairing again", |m| phase(m) == Some(Phase::Pairing))
        .await;
    let third = code(h.model());
    assert!(third != second);
    assert!(h.screen().contains("Pair this terminal"));
    let paths: Vec<&str> = h
        .model()
        .debug()
        .exchanges()
        .iter()
        .map(|e| e.path())
        .collect();
    assert!(paths.contains(&"/sandbox/devices/POS-8F3A2C91/reset"));
    // and it activates again
    h.char('c');
    h.until_screen("Ready for payments").await;
}

#[tokio::test(start_paused = true)]
async fn an_unknown_device_stops_on_the_error_screen_and_ok_retries() {
    let mut profile = posemu_profile::builtin_named("pax-a920").unwrap();
    profile.device_id = "POS-0000BAD0".into();
    let mut h = Harness::start(Setup {
        profile,
        ..Setup::default()
    })
    .await;
    h.until_screen("Activation stopped").await;
    let screen = h.screen();
    for want in [
        "4004 · HTTP 404",
        "Device not found",
        "not provisioned",
        "Trace id",
        "OK retry",
        "Enter OK",
    ] {
        assert!(screen.contains(want), "{want}:\n{screen}");
    }
    let trace = h.model().debug().exchanges()[0].trace_id.clone().unwrap();
    assert!(screen.contains(&trace), "the trace id in full:\n{screen}");
    let before = h.model().debug().exchanges().len();
    h.press(KeyCode::Enter);
    h.until("the retry answered", |m| {
        m.debug().exchanges().len() > before
    })
    .await;
    h.until("stopped again", |m| {
        matches!(phase(m), Some(Phase::Failed(_)))
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_dead_port_shows_the_retry_with_backoff() {
    let port = dead_port();
    let mut h = Harness::start(Setup {
        server: Some(format!("http://127.0.0.1:{port}")),
        size: (80, 24),
        ..Setup::default()
    })
    .await;
    h.until_screen("Cannot reach Viopay").await;
    let screen = h.screen();
    assert!(screen.contains("Connection refused"), "{screen}");
    assert!(screen.contains("retry 1 in"), "{screen}");
}

#[tokio::test(start_paused = true)]
async fn poll_interval_keys_stay_within_three_to_five_seconds() {
    let mut h = Harness::start(Setup::default()).await;
    pairing(&mut h).await;
    h.char('+');
    assert!(h.screen().contains("poll 4 s"), "{}", h.screen());
    h.char('+');
    h.char('+');
    let d = h.model().device().unwrap();
    assert_eq!(d.config.poll_interval.as_secs(), 5);
    assert!(h.screen().contains("stays 5 s"), "{}", h.screen());
    h.char('-');
    h.char('-');
    h.char('-');
    assert_eq!(
        h.model().device().unwrap().config.poll_interval.as_secs(),
        3
    );
}

#[tokio::test(start_paused = true)]
async fn copy_as_curl_and_export_har() {
    let mut h = Harness::start(Setup::default()).await;
    h.until("polled", |m| m.device().is_some_and(|d| d.polls >= 1))
        .await;
    let cmds = h.app.handle(Msg::Key(KeyEvent::new(
        KeyCode::Char('y'),
        KeyModifiers::NONE,
    )));
    let copied = cmds
        .iter()
        .find_map(|c| match c {
            Cmd::Clipboard(t) => Some(t.clone()),
            _ => None,
        })
        .expect("y puts the curl command on the clipboard");
    assert!(copied.starts_with("curl "), "{copied}");
    assert!(copied.contains("/pos/status") && copied.contains("X-Device-Id: POS-8F3A2C91"));
    assert!(h.screen().contains("Copied to the clipboard"), "shown too");
    h.press(KeyCode::Esc);

    h.char('e');
    h.until_screen("HAR written to").await;
    let dir = h.dir.path().join("exports");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .expect("a HAR file")
        .unwrap()
        .path();
    assert!(file.to_string_lossy().ends_with(".har"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a HAR holds device ids and bodies: owner only");
    }
    let har: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(har["log"]["version"], "1.2");
    assert!(har["log"]["entries"].as_array().unwrap().len() >= 3);
}

#[tokio::test(start_paused = true)]
async fn pick_another_profile_and_another_server() {
    let mut h = Harness::start(Setup::default()).await;
    h.app.exec.opener = opener(h.home.clone(), h.clock.clone());
    pairing(&mut h).await;

    h.char('p');
    let screen = h.screen();
    assert!(
        screen.contains("verifone-v400c") && screen.contains("sunmi-p2"),
        "{screen}"
    );
    // the list is sorted as Home lists it; pick the Verifone
    for _ in 0..5 {
        let at = match h.model().popup() {
            Some(posemu::tui::model::Popup::Profiles { items, selected }) => {
                items[*selected].name.clone()
            }
            _ => panic!("the picker is open"),
        };
        if at == "verifone-v400c" {
            break;
        }
        h.press(KeyCode::Down);
    }
    h.press(KeyCode::Enter);
    h.until("the Verifone paired", |m| {
        m.profile().is_some_and(|p| p.name == "verifone-v400c") && phase(m) == Some(Phase::Pairing)
    })
    .await;
    let screen = h.screen();
    assert!(
        screen.contains("VERIFONE V400C"),
        "the frame names the model:\n{screen}"
    );
    assert!(screen.contains("POS-3C7B19E4"), "{screen}");
    // the embedded sandbox stays: an open portal tab or a scanned QR code keeps working
    assert_eq!(h.model().server(), Some(h.url.as_str()), "the same sandbox");
    assert_eq!(
        h.model().portal_url(),
        Some(format!("{}/portal", h.url)),
        "still embedded"
    );
    assert!(screen.contains("embedded sandbox"), "{screen}");

    // a server that is not there: the device keeps retrying, and says so
    let port = dead_port();
    h.char('s');
    for c in format!("http://127.0.0.1:{port}").chars() {
        h.char(c);
    }
    h.press(KeyCode::Enter);
    h.until_screen("Cannot reach Viopay").await;
    assert_eq!(
        h.model().server(),
        Some(format!("http://127.0.0.1:{port}").as_str())
    );
    assert!(!h.model().embedded());
    // c is a sandbox helper: against this server there is no code to claim
    h.char('c');
    assert!(h.screen().contains("No pairing code on screen"));
}

#[tokio::test(start_paused = true)]
async fn no_color_draws_without_colours_and_help_lists_every_key() {
    let mut h = Harness::start(Setup {
        theme: Theme { color: false },
        ..Setup::default()
    })
    .await;
    pairing(&mut h).await;
    h.char('?');
    let buf = draw(h.model(), 120, 40);
    for cell in buf.content() {
        assert!(
            matches!(cell.fg, Color::Reset) && matches!(cell.bg, Color::Reset),
            "a coloured cell under NO_COLOR: {cell:?}"
        );
    }
    let text = buffer_text(&buf);
    for b in posemu::tui::keys::BINDINGS
        .iter()
        .filter(|b| !b.help.is_empty())
    {
        assert!(text.contains(b.help), "help lists {:?}:\n{text}", b.shown);
    }
    h.char('q');
    assert!(h.model().popup().is_none(), "q closes the help first");
    let cmds = h.app.handle(Msg::Key(KeyEvent::new(
        KeyCode::Char('q'),
        KeyModifiers::NONE,
    )));
    assert!(matches!(cmds.as_slice(), [Cmd::Quit]));
}

#[tokio::test(start_paused = true)]
async fn the_screen_sleeps_when_nothing_moves() {
    let mut h = Harness::start(Setup::default()).await;
    pairing(&mut h).await;
    assert_eq!(
        h.model().next_wake(),
        Some(std::time::Duration::from_secs(1)),
        "the countdown ticks once a second"
    );
    h.char('c');
    h.until("ready", |m| phase(m) == Some(Phase::Ready)).await;
    h.until("the message gone", |m| m.toast().is_none()).await;
    assert_eq!(
        h.model().next_wake(),
        None,
        "a settled screen never redraws by itself"
    );
}

#[tokio::test(start_paused = true)]
async fn any_terminal_size_draws_without_panicking() {
    let sizes = [
        (1, 1),
        (10, 5),
        (20, 8),
        (30, 10),
        (40, 12),
        (60, 20),
        (79, 23),
        (80, 24),
        (99, 30),
        (100, 30),
        (120, 40),
        (160, 50),
        (250, 80),
    ];
    let draw_all = |h: &mut Harness, what: &str| {
        for (w, ht) in sizes {
            let text = h.render(w, ht);
            assert_eq!(text.lines().count(), ht as usize, "{what} at {w}x{ht}");
        }
    };
    let mut h = Harness::start(Setup {
        profile: posemu_profile::builtin_named("verifone-v400c").unwrap(),
        ..Setup::default()
    })
    .await;
    draw_all(&mut h, "booting");
    pairing(&mut h).await;
    draw_all(&mut h, "pairing");
    for popup in ['?', 'p', 's'] {
        h.char(popup);
        draw_all(&mut h, "a popup");
        h.press(KeyCode::Esc);
    }
    h.char('y');
    draw_all(&mut h, "curl");
    h.press(KeyCode::Esc);
    h.char('d');
    draw_all(&mut h, "debug toggled");
    h.char('c');
    h.until("ready", |m| phase(m) == Some(Phase::Ready)).await;
    draw_all(&mut h, "ready");
}

#[tokio::test(start_paused = true)]
async fn the_details_wrap_long_values_and_stop_at_the_last_page() {
    let port = dead_port();
    let mut h = Harness::start(Setup {
        server: Some(format!("http://127.0.0.1:{port}")),
        ..Setup::default()
    })
    .await;
    h.until("a failed call", |m| !m.debug().exchanges().is_empty())
        .await;
    let screen = h.screen();
    assert!(
        screen.contains(&format!(":{port}/pos/")),
        "the network error's URL in full, wrapped:\n{screen}"
    );

    // PgDn stops at the last page instead of scrolling into a blank pane
    h.press(KeyCode::Tab);
    h.press(KeyCode::Tab);
    for _ in 0..50 {
        h.press(KeyCode::PageDown);
    }
    let m = h.model();
    let (w, rows) = posemu::tui::view::detail_page(m);
    let total = posemu::tui::view::wrapped_rows(m.debug().detail(), w);
    assert_eq!(
        m.debug().scroll(),
        total.saturating_sub(usize::from(rows)),
        "the last page, full"
    );
    for _ in 0..50 {
        h.press(KeyCode::PageUp);
    }
    assert_eq!(h.model().debug().scroll(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_exchange_list_follows_new_requests_again_after_esc() {
    let mut h = Harness::start(Setup::default()).await;
    h.until("polled", |m| m.device().is_some_and(|d| d.polls >= 1))
        .await;
    h.press(KeyCode::Tab);
    h.press(KeyCode::Up);
    let picked = h.model().debug().selected();
    assert!(picked < Some(h.model().debug().exchanges().len() - 1));
    h.press(KeyCode::Esc);
    let before = h.model().debug().exchanges().len();
    h.until("a new request", |m| m.debug().exchanges().len() > before)
        .await;
    let m = h.model();
    assert_eq!(
        m.debug().selected(),
        Some(m.debug().exchanges().len() - 1),
        "the newest is selected again"
    );
}

/// A loaded machine delivers loopback bytes late; tokio's paused clock cannot see that and
/// would jump to the request's 15 s timeout while the answer is a few milliseconds away (the
/// demo loop once stayed ready 45 s). The harness holds the clock while a call is on the wire.
#[tokio::test(start_paused = true)]
async fn late_bytes_on_the_wire_are_waited_for_not_timed_out() {
    let mut h = Harness::start(Setup {
        lag: Some(std::time::Duration::from_millis(5)),
        ..Setup::default()
    })
    .await;
    let started = tokio::time::Instant::now();
    pairing(&mut h).await;
    h.char('c');
    h.until("ready", |m| phase(m) == Some(Phase::Ready)).await;
    let failed: Vec<String> = h
        .model()
        .debug()
        .exchanges()
        .iter()
        .filter(|e| e.status.is_none() || e.error.is_some())
        .map(|e| format!("{} {:?}", e.path(), e.error))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    // no timer passed while a call was on the wire (not even a spinner tick)
    for step in [Step::Attest, Step::Keys, Step::Config, Step::Activate] {
        let took = h.model().step_time(step).unwrap();
        assert!(took.is_zero(), "{step:?} took {took:?} of paused time");
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "no timeout waited out: {:?}",
        started.elapsed()
    );
}

/// The sandbox closes a kept-alive connection idle for 30 s, the demo loop's default wait too:
/// a reset sent on it at that very moment loses its connection before any answer. It is sent
/// again (a reset is idempotent), or the sandbox would keep the old claim.
#[tokio::test(start_paused = true)]
async fn a_reset_whose_connection_is_lost_is_sent_again() {
    let mut h = Harness::start(Setup {
        drop_once: Some("/reset"),
        ..Setup::default()
    })
    .await;
    pairing(&mut h).await;
    h.char('c');
    h.until("ready", |m| phase(m) == Some(Phase::Ready)).await;
    h.char('r');
    h.until("pairing again", |m| phase(m) == Some(Phase::Pairing))
        .await;
    h.until("both resets listed", |m| {
        m.debug()
            .exchanges()
            .iter()
            .any(|e| e.path().ends_with("/reset") && e.status == Some(200))
    })
    .await;
    let resets: Vec<(Option<u16>, bool)> = h
        .model()
        .debug()
        .exchanges()
        .iter()
        .filter(|e| e.path().ends_with("/reset"))
        .map(|e| (e.status, e.error.is_some()))
        .collect();
    assert_eq!(resets, [(None, true), (Some(200), false)]);
    assert!(
        !h.model()
            .timeline()
            .iter()
            .any(|t| t.text.starts_with("sandbox reset:")),
        "{:?}",
        h.model().timeline()
    );
}
