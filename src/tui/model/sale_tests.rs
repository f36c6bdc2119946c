//! The sale flow through `update` alone: keys in, screens and commands out. The device is an
//! activated one resumed from saved progress (no keys in memory), so the first payment asks the
//! device machine to fetch its keys again: the commands show it.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;

use super::sale::Screen;
use super::*;
use posemu_device::payment::PayOutcome;
use posemu_device::progress::Progress;
use posemu_device::Effect;
use posemu_protocol::api::{ApiCall, CallError};
use posemu_protocol::payments::EntryMode;
use posemu_protocol::wire::DeviceStatus;

const GEN: u64 = 3;

fn ready(tips: bool) -> Model {
    let (m, _) = super::tests::attach(GEN, |device_id| {
        let mut p = Progress::new(device_id, "http://pos.example.test");
        p.status = DeviceStatus::Activated;
        p.terminal_id = Some("TID-004812".into());
        p.merchant_name = Some("Demo Merchant".into());
        p.config = Some(Box::new(json!({
            "terminal_id": "TID-004812",
            "merchant": {"tip_info": {"enabled": tips, "percentages": [10, 15, 20]}},
            "emv": {"currency": "EUR"},
        })));
        Some(p)
    });
    assert_eq!(m.device().map(|d| d.phase.clone()), Some(Phase::Ready));
    m
}

fn press(m: &mut Model, code: KeyCode) -> Vec<Cmd> {
    update(m, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn typed(m: &mut Model, s: &str) {
    for c in s.chars() {
        press(m, KeyCode::Char(c));
    }
}

#[test]
fn digits_grow_the_amount_from_the_right_and_clear_takes_the_last_one() {
    let mut m = ready(false);
    for (c, want) in [('1', 1), ('5', 15), ('0', 150), ('0', 1500)] {
        press(&mut m, KeyCode::Char(c));
        assert_eq!(m.sale().amount, want);
    }
    press(&mut m, KeyCode::Backspace);
    assert_eq!(m.sale().amount, 150);
    // ten digits at most (spec 7.6)
    typed(&mut m, "99999999999999");
    assert_eq!(m.sale().amount, 1_509_999_999);
    press(&mut m, KeyCode::Esc);
    assert_eq!(m.sale().amount, 0);
}

#[test]
fn a_zero_amount_cannot_go_on() {
    let mut m = ready(false);
    let cmds = press(&mut m, KeyCode::Enter);
    assert!(cmds.is_empty());
    assert_eq!(m.sale().screen, Screen::Amount);
    assert!(m.toast().is_some_and(|t| t.text.contains("amount")));
}

#[test]
fn enter_on_each_screen_charges_15_00_by_chip_with_no_tip() {
    let mut m = ready(true);
    typed(&mut m, "1500");
    press(&mut m, KeyCode::Enter);
    assert_eq!(m.sale().screen, Screen::Tip);
    assert_eq!(m.sale().tip_choice, 0, "no tip is selected first");
    assert_eq!(m.tip(), 0);
    press(&mut m, KeyCode::Enter);
    assert_eq!(m.sale().screen, Screen::Card);
    assert_eq!(m.sale().test_card().pan, "4242424242424242");
    assert_eq!(m.sale().entry_mode(), EntryMode::Chip);
    let cmds = press(&mut m, KeyCode::Enter);
    assert_eq!(m.sale().screen, Screen::Processing);
    // restarted from saved progress: the keys are fetched again first (bootstrap, attest, …)
    assert!(m.rekeying());
    let call = cmds.iter().any(|c| {
        matches!(
            c,
            Cmd::Device {
                generation: GEN,
                effect: Effect::Call {
                    call: ApiCall::Bootstrap,
                    ..
                }
            }
        )
    });
    assert!(call, "the device machine starts its re-key");
    // processing takes no keys: a stray Enter does not start a second payment
    assert!(press(&mut m, KeyCode::Enter).is_empty());
    assert!(
        m.sale_on_screen(),
        "the sale stays on screen while the keys come"
    );
}

#[test]
fn without_tips_the_card_comes_next_and_arrows_choose_card_and_entry() {
    let mut m = ready(false);
    typed(&mut m, "2000");
    press(&mut m, KeyCode::Enter);
    assert_eq!(m.sale().screen, Screen::Card);
    press(&mut m, KeyCode::Down);
    press(&mut m, KeyCode::Left);
    assert_eq!(m.sale().test_card().pan, "5555555555554444");
    assert_eq!(m.sale().entry_mode(), EntryMode::Contactless);
    press(&mut m, KeyCode::Backspace);
    assert_eq!(m.sale().screen, Screen::Amount);
    assert_eq!(m.sale().amount, 2000, "Clear goes back a screen");
    press(&mut m, KeyCode::Enter);
    press(&mut m, KeyCode::Esc);
    assert_eq!(
        (m.sale().screen, m.sale().amount),
        (Screen::Amount, 0),
        "Cancel abandons the sale"
    );
}

#[test]
fn a_tip_is_a_percentage_of_the_amount() {
    let mut m = ready(true);
    typed(&mut m, "1500");
    press(&mut m, KeyCode::Enter);
    press(&mut m, KeyCode::Down);
    assert_eq!(m.tip(), 150);
    press(&mut m, KeyCode::Right);
    assert_eq!(m.tip(), 225);
    for _ in 0..5 {
        press(&mut m, KeyCode::Down);
    }
    assert_eq!(m.tip(), 300, "20 % is the last choice");
}

#[test]
fn the_pin_pad_keeps_digits_to_itself_and_esc_refuses() {
    let mut m = ready(false);
    m.sale.screen = Screen::Pin;
    typed(&mut m, "1234567890123");
    assert_eq!(m.sale().pin_len(), 12, "12 digits at most");
    press(&mut m, KeyCode::Backspace);
    assert_eq!(m.sale().pin_len(), 11);
    // the digits are nowhere a view or log could read them
    let shown = format!("{:?}", m.timeline());
    assert!(!shown.contains("12345"));
    press(&mut m, KeyCode::Esc);
    assert_eq!(m.sale().pin_len(), 0);
    assert_ne!(m.sale().screen, Screen::Pin);
    // too short a PIN is refused
    m.sale.screen = Screen::Pin;
    typed(&mut m, "12");
    press(&mut m, KeyCode::Enter);
    assert_eq!(m.sale().screen, Screen::Pin);
}

#[test]
fn the_outcome_leads_to_the_receipt_then_a_new_sale() {
    let mut m = ready(false);
    typed(&mut m, "1500");
    m.sale.screen = Screen::Outcome;
    m.sale.outcome = Some(PayOutcome::Unknown {
        error: CallError::Timeout(std::time::Duration::from_secs(10)),
        charge_id: None,
    });
    // no slip for an unknown outcome: OK goes back to a new sale
    press(&mut m, KeyCode::Enter);
    assert_eq!((m.sale().screen, m.sale().amount), (Screen::Amount, 0));
}

#[test]
fn a_new_sale_presents_the_first_card_again() {
    let mut m = ready(false);
    typed(&mut m, "2000");
    press(&mut m, KeyCode::Enter);
    for _ in 0..7 {
        press(&mut m, KeyCode::Down);
    }
    press(&mut m, KeyCode::Right);
    assert_eq!(m.sale().test_card().pan, "4000000000000655");
    // the sale ends (here on an outcome without a slip): the next one starts afresh
    m.sale.screen = Screen::Outcome;
    m.sale.outcome = Some(PayOutcome::Unknown {
        error: CallError::Timeout(std::time::Duration::from_secs(10)),
        charge_id: None,
    });
    press(&mut m, KeyCode::Enter);
    typed(&mut m, "1000");
    press(&mut m, KeyCode::Enter);
    assert_eq!(m.sale().screen, Screen::Card);
    assert_eq!(m.sale().test_card().pan, "4242424242424242");
    assert_eq!(m.sale().entry_mode(), EntryMode::Chip);
    // and a sale abandoned on the card screen too
    press(&mut m, KeyCode::Down);
    press(&mut m, KeyCode::Esc);
    typed(&mut m, "1000");
    press(&mut m, KeyCode::Enter);
    assert_eq!(m.sale().test_card().pan, "4242424242424242");
}

#[test]
fn the_transactions_view_asks_the_sandbox_through_a_command() {
    let mut m = ready(false);
    let cmds = press(&mut m, KeyCode::Char('t'));
    assert_eq!(m.sale().screen, Screen::Transactions);
    assert!(cmds.iter().any(|c| matches!(
        c,
        Cmd::LoadCharges { generation: GEN, terminal_id } if terminal_id == "TID-004812"
    )));
    update(
        &mut m,
        Msg::Charges {
            generation: GEN,
            result: Err("this server is not a posemu sandbox".into()),
        },
    );
    assert!(m.sale().list_note.as_deref().unwrap().contains("session"));
    let cmds = press(&mut m, KeyCode::Char('b'));
    assert!(cmds.iter().any(|c| matches!(c, Cmd::Settle { .. })));
    press(&mut m, KeyCode::Esc);
    assert_eq!(m.sale().screen, Screen::Amount);
}
