//! `posemu demo` on the real app model: the demo opened by its own code (`cli::demo::Args::open`,
//! which starts the embedded sandbox on 127.0.0.1) in a temporary home, tokio's clock paused so
//! auto-claims, slow steps and kiosk loops pass without sleeping; assertions read the rendered
//! TestBackend buffer. Listens on port 0 (never the real default 8765).

use std::sync::Arc;
use std::time::Duration;

use crate::tui_support::*;
use clap::Parser;
use crossterm::event::KeyCode;
use posemu::cli::demo::{Args, SLOW_PACE};
use posemu::tui::theme::Level;
use posemu::tui::{App, Model, Theme};
use posemu_device::{Phase, Step};
use posemu_protocol::clock::ManualClock;
use posemu_runtime::Home;
use tokio::time::Instant;

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    demo: Args,
}

fn demo_args(flags: &[&str]) -> Args {
    let mut all = vec!["posemu-demo", "--seed", "4"];
    if !flags.contains(&"--listen") {
        all.extend(["--listen", "127.0.0.1:0"]);
    }
    all.extend_from_slice(flags);
    Flags::parse_from(all).demo
}

/// A demo opened as `posemu demo FLAGS` would open it, in `home` (a new temp dir if `None`).
async fn start_in(flags: &[&str], size: (u16, u16), dir: Option<tempfile::TempDir>) -> Harness {
    let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
    let home = Home::at(dir.path());
    let clock = ManualClock::at_spec_example();
    let opened = demo_args(flags)
        .open(&home, Arc::new(clock.clone()))
        .await
        .unwrap();
    let url = opened.open.server.clone();
    let mut app = App::new(
        opened.options,
        Arc::new(clock.clone()),
        Theme { color: true },
    );
    app.model.set_demo(Some(opened.mode));
    app.exec.home = Some(home.clone());
    app.model.set_size(size.0, size.1);
    app.attach(opened.open);
    Harness {
        app,
        clock,
        url,
        home,
        dir,
    }
}

async fn start(flags: &[&str]) -> Harness {
    start_in(flags, (120, 40), None).await
}

/// The code on screen, if any.
fn shown_code(m: &Model) -> Option<String> {
    m.device()
        .and_then(|d| d.code.as_ref())
        .map(|c| c.code.clone())
}

/// The banner row at `w` × `h`.
fn banner(h: &mut Harness, w: u16, ht: u16) -> String {
    h.render(w, ht)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn assert_banner(h: &mut Harness, what: &str) {
    let portal = format!("{}/portal", h.url);
    for (w, ht) in [(80, 24), (120, 40)] {
        let top = banner(h, w, ht);
        assert!(
            top.contains(&portal) && top.contains("demo-merchant / demo-secret"),
            "{what} at {w}x{ht}: the banner shows {portal} and the sign-in:\n{}",
            h.render(w, ht)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_portal_banner_is_on_every_screen_at_every_size() {
    let mut h = start(&[]).await;
    assert_banner(&mut h, "booting");
    let top = banner(&mut h, 120, 40);
    assert!(
        top.contains(&format!(
            "Merchant portal: {}/portal — sign in as demo-merchant / demo-secret",
            h.url
        )),
        "the whole sentence when there is room: {top}"
    );
    h.until("a code", |m| phase(m) == Some(Phase::Pairing))
        .await;
    h.until("polled", |m| m.device().is_some_and(|d| d.polls >= 2))
        .await;
    snap(&mut h, "demo_pairing");
    assert_banner(&mut h, "pairing");
    // popups sit below the banner
    h.char('?');
    assert_banner(&mut h, "help");
    let help = h.render(120, 40);
    assert!(
        !help.contains("Pick another device profile") && !help.contains("Set the server URL"),
        "the help leaves out what a demo cannot do:\n{help}"
    );
    h.press(KeyCode::Esc);
    // a sales demo starts with the device alone, even on a wide terminal
    let alone = h.render(120, 40);
    assert!(
        !alone.contains("HTTP exchanges") && alone.contains("Pair this terminal"),
        "{alone}"
    );
    h.char('d');
    assert_banner(&mut h, "debug toggled");
    let both = h.render(120, 40);
    assert!(
        both.contains("HTTP exchanges") && both.contains("Pair this terminal"),
        "d shows the debug side beside the device:\n{both}"
    );
    h.char('d');
    // the demo keeps its sandbox: no profile or server switch
    let hints = h.render(120, 40);
    let bar = hints.lines().last().unwrap();
    assert!(
        !bar.contains("p profile") && !bar.contains("s server"),
        "{bar}"
    );
    h.char('s');
    assert!(h.model().popup().is_none());
    assert!(
        h.screen().contains("embedded sandbox only"),
        "{}",
        h.screen()
    );
    h.char('c');
    h.until("ready", |m| phase(m) == Some(Phase::Ready)).await;
    h.until("the message gone", |m| m.toast().is_none()).await;
    snap(&mut h, "demo_ready");
    assert_banner(&mut h, "ready");
    assert_eq!(
        h.model().next_wake(),
        None,
        "without --loop a ready demo never redraws by itself"
    );
    // a narrow terminal still shows the URL
    let top = banner(&mut h, 40, 12);
    assert!(top.contains(&format!("{}/portal", h.url)), "{top}");
}

#[tokio::test(start_paused = true)]
async fn auto_claim_reaches_the_ready_screen_with_no_key_pressed() {
    let mut h = start(&["--auto-claim", "20s"]).await;
    h.until("a code", |m| phase(m) == Some(Phase::Pairing))
        .await;
    let shown = Instant::now();
    let first = shown_code(h.model()).unwrap();
    let top = banner(&mut h, 120, 40);
    assert!(top.contains("auto-claim in 0:20"), "the countdown: {top}");
    h.until(
        "claimed",
        |m| matches!(phase(m), Some(Phase::Step(s)) if s != Step::Status),
    )
    .await;
    let waited = shown.elapsed();
    assert!(
        waited >= Duration::from_secs(20) && waited < Duration::from_secs(25),
        "claimed {waited:?} after the code showed"
    );
    h.until_screen("Ready for payments").await;
    let m = h.model();
    let claim = m
        .debug()
        .exchanges()
        .iter()
        .find(|e| e.path() == "/sandbox/devices/POS-8F3A2C91/claim")
        .expect("claimed through the sandbox helper");
    let body = &claim.response_body.as_ref().unwrap().text;
    assert!(body.contains(&first), "the code shown was claimed: {body}");
    assert!(
        m.timeline()
            .iter()
            .any(|t| t.text == "auto-claim after 20 s"),
        "the timeline says why"
    );
}

#[tokio::test(start_paused = true)]
async fn auto_claim_waits_for_each_new_code() {
    let mut h = start(&["--auto-claim", "20s"]).await;
    h.until("a code", |m| phase(m) == Some(Phase::Pairing))
        .await;
    let first = shown_code(h.model()).unwrap();
    h.char('x'); // expire it on the sandbox before the auto-claim
    h.until("a new code", |m| {
        phase(m) == Some(Phase::Pairing) && shown_code(m).is_some_and(|c| c != first)
    })
    .await;
    let shown = Instant::now();
    h.until("ready", |m| phase(m) == Some(Phase::Ready)).await;
    assert!(
        shown.elapsed() >= Duration::from_secs(20),
        "the new code got its 20 s too"
    );
}

#[tokio::test(start_paused = true)]
async fn a_merchant_quicker_than_the_auto_claim_is_no_error() {
    let mut h = start(&["--auto-claim", "1s"]).await;
    h.until("a code", |m| phase(m) == Some(Phase::Pairing))
        .await;
    // the merchant claims in the portal first; the device notices only at its next poll
    let resp = reqwest::Client::new()
        .post(format!("{}/sandbox/devices/POS-8F3A2C91/claim", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    h.until("the auto-claim answered", |m| {
        m.timeline()
            .iter()
            .any(|t| t.text.contains("is no longer pending on the server"))
    })
    .await;
    let entry = h
        .model()
        .timeline()
        .iter()
        .find(|t| t.text.contains("no longer pending"))
        .unwrap();
    assert_eq!(entry.level, Level::Info, "information, not an error");
    assert!(
        !entry.text.contains("Code  "),
        "the code is named: {}",
        entry.text
    );
    assert!(
        h.model().toast().is_none_or(|t| t.level != Level::Bad),
        "no error on the demo screen:\n{}",
        h.screen()
    );
    h.until_screen("Ready for payments").await;
}

#[tokio::test(start_paused = true)]
async fn any_terminal_size_draws_the_demo_without_panicking() {
    let mut h = start(&["--auto-claim", "5s", "--loop", "5s"]).await;
    let sizes = [
        (1, 1),
        (10, 3),
        (20, 8),
        (40, 12),
        (79, 23),
        (80, 24),
        (120, 40),
        (250, 80),
    ];
    for round in 0..3 {
        for (w, ht) in sizes {
            let text = h.render(w, ht);
            assert_eq!(
                text.lines().count(),
                ht as usize,
                "round {round} at {w}x{ht}"
            );
        }
        let want = if round % 2 == 0 {
            Phase::Pairing
        } else {
            Phase::Ready
        };
        h.until("the next screen", |m| phase(m).as_ref() == Some(&want))
            .await;
    }
}

/// How long each setup step was the current one, and how many frames (messages handled, each
/// followed by a draw in the real loop) showed it.
async fn step_times(h: &mut Harness) -> Vec<(Step, Duration, usize, String)> {
    let steps = [
        Step::Attest,
        Step::Keys,
        Step::Config,
        Step::TerminalParameters,
        Step::Activate,
    ];
    let mut out: Vec<(Step, Duration, usize, String)> = Vec::new();
    let mut current: Option<(Step, Instant, usize, String)> = None;
    for _ in 0..20_000 {
        let now = phase(h.model());
        if now == Some(Phase::Ready) {
            break;
        }
        let step = match now {
            Some(Phase::Step(s)) if steps.contains(&s) => Some(s),
            _ => None,
        };
        if current.as_ref().map(|c| c.0) != step {
            if let Some((s, at, frames, screen)) = current.take() {
                out.push((s, at.elapsed(), frames, screen));
            }
            current = step.map(|s| (s, Instant::now(), 0, h.screen()));
        }
        if let Some(c) = current.as_mut() {
            c.2 += 1;
        }
        h.step().await;
    }
    if let Some((s, at, frames, screen)) = current.take() {
        out.push((s, at.elapsed(), frames, screen));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn slow_pace_keeps_each_step_on_screen_long_enough_to_explain() {
    let mut h = start(&["--pace", "slow", "--auto-claim", "1s"]).await;
    let t0 = Instant::now();
    assert!(
        h.screen().contains("Connecting to Viopay"),
        "{}",
        h.screen()
    );
    h.until("a code", |m| phase(m) == Some(Phase::Pairing))
        .await;
    // bootstrap and the pairing code are held too
    assert!(t0.elapsed() >= SLOW_PACE * 2, "{:?}", t0.elapsed());
    let times = step_times(&mut h).await;
    assert_eq!(times.len(), 5, "every setup step: {times:?}");
    for (step, took, frames, screen) in &times {
        assert!(
            *took >= SLOW_PACE && *took < SLOW_PACE + Duration::from_secs(1),
            "{step:?} stayed {took:?}"
        );
        // the spinner turns every 125 ms: many frames show the step
        assert!(*frames >= 10, "{step:?} was drawn {frames} times");
        assert!(screen.contains(step.title()), "{step:?}:\n{screen}");
    }
    let keys = &times.iter().find(|t| t.0 == Step::Keys).unwrap().3;
    assert!(
        keys.lines().any(|l| l.contains("Installing keys")
            && !l.contains("✓ Installing")
            && !l.contains("· Installing"))
            && keys.contains("✓ Proving device identity"),
        "Installing keys is the step on screen:\n{keys}"
    );
    h.until_screen("Ready for payments").await;

    // and at normal pace the same steps pass in a blink
    let mut h = start(&["--auto-claim", "1s"]).await;
    h.until("a code", |m| phase(m) == Some(Phase::Pairing))
        .await;
    let times = step_times(&mut h).await;
    for (step, took, ..) in &times {
        assert!(*took < Duration::from_millis(500), "{step:?} took {took:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn loop_starts_over_with_a_fresh_code_after_the_ready_screen() {
    let mut h = start(&["--auto-claim", "2s", "--loop", "30s"]).await;
    let mut codes = Vec::new();
    for round in 0..3 {
        h.until("a code", |m| phase(m) == Some(Phase::Pairing))
            .await;
        let c = shown_code(h.model()).unwrap();
        assert!(
            !codes.contains(&c),
            "round {round}: a fresh code, not {codes:?}"
        );
        assert!(h.screen().contains("Pair this terminal"));
        codes.push(c);
        h.until("ready", |m| phase(m) == Some(Phase::Ready)).await;
        let ready = Instant::now();
        let top = banner(&mut h, 120, 40);
        assert!(top.contains("starts over in 0:30"), "{top}");
        h.until("starting over", |m| phase(m) != Some(Phase::Ready))
            .await;
        let stayed = ready.elapsed();
        assert!(
            stayed >= Duration::from_secs(30) && stayed < Duration::from_secs(32),
            "round {round}: ready for {stayed:?}"
        );
        assert!(
            h.screen().contains("Connecting to Viopay"),
            "back to power-on:\n{}",
            h.screen()
        );
    }
    // the sandbox forgot the device each round
    h.until("three resets logged", |m| {
        let resets = m
            .debug()
            .exchanges()
            .iter()
            .filter(|e| e.path() == "/sandbox/devices/POS-8F3A2C91/reset");
        resets.count() == 3
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_busy_port_falls_back_to_a_free_one_and_says_so() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut h = start(&["--listen", &addr]).await;
    assert!(h.url.starts_with("http://127.0.0.1:"), "{}", h.url);
    assert!(
        !h.url.ends_with(&format!(":{port}")),
        "not the busy port: {}",
        h.url
    );
    let screen = h.screen();
    assert!(
        screen.contains(&format!("Port {port} is busy")),
        "said on screen:\n{screen}"
    );
    assert!(h
        .model()
        .timeline()
        .iter()
        .any(|t| t.text.contains(&format!("Port {port} is busy"))
            && t.text.contains(&format!("{}/portal", h.url))));
    assert_banner(&mut h, "after the fallback");
    // and the demo works on the new port
    h.until("a code", |m| phase(m) == Some(Phase::Pairing))
        .await;
    h.char('c');
    h.until_screen("Ready for payments").await;
    drop(busy);
}

#[tokio::test(start_paused = true)]
async fn a_demo_always_starts_fresh() {
    let mut h = start(&["--auto-claim", "1s"]).await;
    h.until("ready", |m| phase(m) == Some(Phase::Ready)).await;
    let dir = std::mem::replace(&mut h.dir, tempfile::tempdir().unwrap());
    drop(h);
    // the same home: the saved "activated" progress must not be resumed
    let mut h = start_in(&[], (120, 40), Some(dir)).await;
    h.until("a code", |m| phase(m) == Some(Phase::Pairing))
        .await;
    let m = h.model();
    assert!(
        !m.timeline()
            .iter()
            .any(|t| t.text.contains("activated earlier")),
        "{:?}",
        m.timeline()
    );
    assert!(h.screen().contains("Pair this terminal"));
}

#[tokio::test(start_paused = true)]
async fn the_portal_session_lasts_the_demo_but_attestation_tokens_keep_300_s() {
    let mut h = start(&["--auto-claim", "1s"]).await;
    h.until("ready", |m| phase(m) == Some(Phase::Ready)).await;
    let attest = h
        .model()
        .debug()
        .exchanges()
        .iter()
        .find(|e| e.path() == "/pos/attest")
        .cloned()
        .expect("an attest exchange");
    let body: serde_json::Value =
        serde_json::from_str(&attest.response_body.as_ref().expect("answered").text).unwrap();
    assert_eq!(body["expires_in_sec"], 300);
    let resp = reqwest::Client::new()
        .post(format!("{}/client/session", h.url))
        .json(&serde_json::json!({"client_id": "demo-merchant", "client_secret": "demo-secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 8 * 3600);
}

#[tokio::test(start_paused = true)]
async fn bad_flags_are_plain_errors() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    let clock = Arc::new(ManualClock::at_spec_example());
    let e = demo_args(&["--profile", "no-such-terminal"])
        .open(&home, clock.clone())
        .await
        .err()
        .unwrap();
    assert!(e.starts_with("--profile:"), "{e}");
    assert!(Flags::try_parse_from(["d", "--pace", "fast"]).is_err());
    assert!(Flags::try_parse_from(["d", "--auto-claim", "soon"]).is_err());
    assert!(Flags::try_parse_from(["d", "--server", "http://x"]).is_err());
}
