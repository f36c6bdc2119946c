//! Walks the tests share: to the pairing code, to the ready screen, through a sale.

use crossterm::event::KeyCode;
use posemu::tui::model::sale::Screen;
use posemu::tui::Model;
use posemu_device::payment::PayOutcome;
use posemu_device::Phase;

use super::{Harness, Setup};

/// The device's phase, if a device runs.
pub fn phase(m: &Model) -> Option<Phase> {
    m.device().map(|d| d.phase.clone())
}

/// The pairing code on screen.
pub fn code(m: &Model) -> String {
    m.device()
        .and_then(|d| d.code.as_ref())
        .map(|c| c.code.clone())
        .expect("a code on screen")
}

/// Steps until a pairing code is on screen; answers it.
pub async fn pairing(h: &mut Harness) -> String {
    h.until("a code on screen", |m| phase(m) == Some(Phase::Pairing))
        .await;
    code(h.model())
}

/// Types `s` key by key.
pub fn typed(h: &mut Harness, s: &str) {
    for c in s.chars() {
        h.char(c);
    }
}

/// Claimed and activated, the "activated" message gone; the debug side kept on the first
/// exchange (the payment exchanges' nonces and signatures differ on every run).
pub async fn ready_for_sales() -> Harness {
    let mut h = Harness::start(Setup::default()).await;
    pairing(&mut h).await;
    h.char('c');
    h.until("ready", |m| phase(m) == Some(Phase::Ready)).await;
    h.until("the message gone", |m| m.toast().is_none()).await;
    h.press(KeyCode::Tab);
    for _ in 0..40 {
        h.press(KeyCode::Up);
    }
    h.press(KeyCode::Tab);
    h.press(KeyCode::Tab);
    h
}

/// A sale of `amount` (digits as typed) with no tip, by the first card and way in, to its
/// approval; back on the amount screen after.
pub async fn sell(h: &mut Harness, amount: &str) {
    typed(h, amount);
    h.press(KeyCode::Enter);
    if h.model().sale().screen == Screen::Tip {
        h.press(KeyCode::Enter);
    }
    h.press(KeyCode::Enter);
    h.until("the outcome", |m| m.sale().screen == Screen::Outcome)
        .await;
    let outcome = h.model().sale().outcome.clone();
    assert!(
        matches!(outcome, Some(PayOutcome::Approved(_))),
        "{outcome:?}:\n{}",
        h.screen()
    );
    h.press(KeyCode::Backspace);
}

/// A 127.0.0.1 port nothing listens on (bound, then let go).
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
