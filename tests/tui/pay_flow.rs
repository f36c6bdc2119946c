//! The sale flow on the real model against the in-process sandbox (paused time): every new
//! screen snapshotted at 80×24 and 120×40, and the payments really made (the transactions view
//! reads them back through the sandbox helper).

use crate::tui_support::*;
use crossterm::event::KeyCode;

/// A 20.00 sale, no tip, by the test card that always asks for a PIN (spec 7.7), chip or (with
/// `swipe`) swiped, to the PIN pad.
async fn to_the_pin_pad(h: &mut Harness, swipe: bool) {
    use posemu::tui::model::sale::Screen;
    typed(h, "2000");
    h.press(KeyCode::Enter);
    h.press(KeyCode::Enter);
    for _ in 0..7 {
        h.press(KeyCode::Down);
    }
    if swipe {
        h.press(KeyCode::Right);
    }
    h.press(KeyCode::Enter);
    h.until("the PIN pad", |m| m.sale().screen == Screen::Pin)
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_sale_from_the_amount_to_the_approval_and_the_receipt() {
    let mut h = ready_for_sales().await;
    snap(&mut h, "sale_ready");
    typed(&mut h, "1500");
    assert!(h.screen().contains("Ready for payments"));
    snap(&mut h, "sale_amount");
    h.press(KeyCode::Enter);
    snap(&mut h, "sale_tip");
    h.press(KeyCode::Enter);
    snap(&mut h, "sale_card");
    h.press(KeyCode::Enter);
    snap(&mut h, "sale_processing");
    h.until_screen("APPROVED").await;
    h.until("the spinner settled", |m| m.toast().is_none())
        .await;
    let screen = h.screen();
    assert!(screen.contains("EUR 15.00"), "{screen}");
    assert!(screen.contains("424242******4242 · chip"), "{screen}");
    snap(&mut h, "sale_approved");
    h.press(KeyCode::Enter);
    assert!(h.screen().contains("MERCHANT COPY"));
    snap(&mut h, "sale_receipt");
    h.press(KeyCode::Enter);
    assert!(h.screen().contains("Type the amount") || h.screen().contains("type the amount"));
}

#[tokio::test(start_paused = true)]
async fn a_pin_card_a_refused_pin_and_a_cancel() {
    let mut h = ready_for_sales().await;
    to_the_pin_pad(&mut h, true).await;
    typed(&mut h, "12");
    let screen = h.screen();
    let stars = screen
        .lines()
        .find(|l| l.contains("* *"))
        .expect("the PIN row");
    let on_device = stars.split('│').nth(1).unwrap_or_default();
    assert!(on_device.contains("* *"), "{screen}");
    assert!(!on_device.chars().any(|c| c.is_ascii_digit()), "{screen}");
    assert_eq!(h.model().sale().pin_len(), 2);
    snap(&mut h, "sale_pin");
    h.press(KeyCode::Esc);
    h.until_screen("DECLINED").await;
    assert!(h.screen().contains("PIN required"), "{}", h.screen());
    snap(&mut h, "sale_declined");
    h.press(KeyCode::Backspace);

    // a second sale, cancelled from the transactions view before settlement
    typed(&mut h, "1000");
    h.press(KeyCode::Enter);
    h.press(KeyCode::Enter);
    h.press(KeyCode::Enter);
    h.until_screen("APPROVED").await;
    h.press(KeyCode::Backspace);
    h.char('t');
    h.until("the list read", |m| m.sale().list_note.is_none())
        .await;
    h.char('v');
    h.until_screen("CANCELLED").await;
    snap(&mut h, "sale_cancelled");
}

/// The restart key works on every sale screen, and one restart ends both machines: the device
/// pairs again and the sale in progress (here on the PIN pad) is gone, not waiting for a PIN.
#[tokio::test(start_paused = true)]
async fn the_restart_key_mid_sale_restarts_the_device_and_ends_the_sale() {
    use posemu::tui::model::sale::Screen;
    use posemu_device::Phase;
    let mut h = ready_for_sales().await;
    to_the_pin_pad(&mut h, false).await;
    typed(&mut h, "12");
    assert!(h.model().paying());

    h.char('r');
    h.until("pairing again", |m| phase(m) == Some(Phase::Pairing))
        .await;
    let m = h.model();
    assert!(!m.paying(), "the payment ended with the device");
    assert_eq!(m.sale().screen, Screen::Amount);
    assert_eq!((m.sale().amount, m.sale().pin_len()), (0, 0));
    assert!(m.sale().charges().is_empty());
    assert!(m.device().unwrap().progress.terminal_id.is_none());
    assert!(
        m.timeline()
            .iter()
            .any(|t| t.text.contains("the terminal restarted")),
        "{:?}",
        m.timeline()
    );
    assert!(h.screen().contains("Pair this terminal"), "{}", h.screen());

    // activated again, a sale goes through from the first card
    h.char('c');
    h.until("ready", |m| phase(m) == Some(Phase::Ready)).await;
    assert_ne!(h.model().device().unwrap().progress.terminal_id, None);
    sell(&mut h, "1000").await;
}

/// A terminal that resumes as activated against a server that has forgotten it (the embedded
/// sandbox starts empty on every run) finds out at its first sale, while fetching its keys
/// again: the sale ends with a message, the pairing code is on screen, and once claimed the
/// terminal sells again.
#[tokio::test(start_paused = true)]
async fn a_sale_on_a_terminal_the_server_forgot_ends_and_shows_the_pairing_code() {
    use posemu::tui::model::sale::Screen;
    use posemu_device::Phase;
    let mut first = ready_for_sales().await;
    let home = std::mem::replace(&mut first.dir, tempfile::tempdir().unwrap());
    drop(first);
    let mut h = Harness::start(Setup {
        home: Some(home),
        ..Setup::default()
    })
    .await;
    h.until("resumed as activated", |m| phase(m) == Some(Phase::Ready))
        .await;
    typed(&mut h, "1500");
    h.press(KeyCode::Enter);
    h.press(KeyCode::Enter);
    h.press(KeyCode::Enter);
    h.until("pairing again", |m| phase(m) == Some(Phase::Pairing))
        .await;
    let m = h.model();
    assert!(!m.paying(), "the sale ended");
    assert_eq!(m.sale().screen, Screen::Amount);
    assert_eq!(m.sale().amount, 0);
    assert!(
        m.toast()
            .is_some_and(|t| t.text.contains("The server forgot this terminal")),
        "{:?}",
        m.toast()
    );
    let code = code(m);
    let screen = h.screen();
    assert!(screen.contains("Pair this terminal"), "{screen}");
    assert!(!screen.contains("Fetching the keys"), "{screen}");
    assert!(screen.contains(&code), "the code is on screen:\n{screen}");

    h.char('c');
    h.until("ready", |m| phase(m) == Some(Phase::Ready)).await;
    sell(&mut h, "1000").await;
}
