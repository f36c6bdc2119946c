//! The transactions view after real sales: the terminal's charges with status and settlement,
//! a cancel before settlement, a settlement, a refund with an amount typed; checked on the
//! rendered screen at both sizes and in the sandbox's own list
//! (`GET /sandbox/terminals/{tid}/charges`).

use crate::tui_support::*;
use crossterm::event::KeyCode;
use posemu::tui::model::sale::Screen;
use serde_json::Value;

/// The row of the charge of `total` (as shown, `EUR 15.00`) at `w` × `ht`, the device pane
/// only (the debug side is beside it on wide screens).
fn row_of(h: &mut Harness, w: u16, ht: u16, total: &str) -> String {
    let screen = h.render(w, ht);
    let row = screen
        .lines()
        .find(|l| l.contains(total) && (l.contains("4242")))
        .unwrap_or_else(|| panic!("no row of {total} at {w}x{ht}:\n{screen}"));
    // the device pane only (the debug side is beside it on wide screens)
    row.split('│').nth(1).unwrap_or(row).to_string()
}

/// Every size shows the charge of `total` with this status and settlement, in full.
fn shows(h: &mut Harness, total: &str, status: &str, settled: &str) {
    for (w, ht) in SIZES {
        let row = row_of(h, w, ht, total);
        let words: Vec<&str> = row.split_whitespace().collect();
        assert!(
            words.ends_with(&[status, settled]),
            "{total} at {w}x{ht}: {status} {settled} expected in {row:?}"
        );
    }
}

/// Back from an operation's outcome to the list, read again.
async fn back_to_the_list(h: &mut Harness) {
    h.press(KeyCode::Esc);
    assert_eq!(h.model().sale().screen, Screen::Transactions);
    h.until("the list read", |m| m.sale().list_note.is_none())
        .await;
}

async fn sandbox_charges(h: &Harness, tid: &str) -> Vec<Value> {
    let body: Value = reqwest::get(format!("{}/sandbox/terminals/{tid}/charges", h.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["charges"].as_array().cloned().unwrap_or_default()
}

fn charge_of<'a>(list: &'a [Value], minor: &str) -> &'a Value {
    list.iter()
        .find(|c| c["amount"]["value"] == minor)
        .unwrap_or_else(|| panic!("no charge of {minor}: {list:?}"))
}

#[tokio::test(start_paused = true)]
async fn charges_with_status_and_settlement_a_cancel_and_a_refund() {
    let mut h = ready_for_sales().await;
    let tid = h
        .model()
        .device()
        .and_then(|d| d.progress.terminal_id.clone())
        .unwrap();
    sell(&mut h, "1500").await;
    sell(&mut h, "1000").await;

    h.char('t');
    assert!(h.screen().contains("Loading the terminal's charges"));
    h.until("the list read", |m| m.sale().list_note.is_none())
        .await;
    let screen = h.screen();
    assert!(
        screen.contains(&format!("Transactions · {tid}")),
        "{screen}"
    );
    shows(&mut h, "EUR 15.00", "approved", "pending");
    shows(&mut h, "EUR 10.00", "approved", "pending");
    assert_eq!(h.model().sale().charges().len(), 2, "one row per charge");

    // the newest first: the 15.00 is the second row; cancel it before settlement
    h.press(KeyCode::Down);
    assert_eq!(
        h.model().sale().selected_charge().unwrap().total.value,
        1500
    );
    h.char('v');
    h.until("the cancel's outcome", |m| {
        m.sale().screen == Screen::Outcome
    })
    .await;
    assert!(h.screen().contains("CANCELLED"), "{}", h.screen());
    back_to_the_list(&mut h).await;
    shows(&mut h, "EUR 15.00", "cancelled", "—");
    shows(&mut h, "EUR 10.00", "approved", "pending");
    // a cancelled charge offers neither cancel nor refund
    let keys = h.render(80, 24);
    assert!(
        !keys.contains("v cancel") && !keys.contains("f refund"),
        "{keys}"
    );

    // a refund needs a settled charge: settle the terminal, the list follows
    h.char('b');
    h.until("settled", |m| {
        m.toast()
            .is_some_and(|t| t.text.starts_with("Settled 1 charge"))
    })
    .await;
    h.until("the list read", |m| m.sale().list_note.is_none())
        .await;
    shows(&mut h, "EUR 10.00", "approved", "settled");

    // refund 4.00 of the 10.00: the amount starts at what is left, typing starts it over
    h.press(KeyCode::Up);
    h.char('f');
    assert_eq!(h.model().sale().screen, Screen::RefundAmount);
    assert!(h.screen().contains("at most EUR 10.00"), "{}", h.screen());
    typed(&mut h, "400");
    assert_eq!(h.model().sale().refund_amount, 400);
    h.press(KeyCode::Enter);
    h.until("the refund's outcome", |m| {
        m.sale().screen == Screen::Outcome
    })
    .await;
    assert!(h.screen().contains("REFUNDED"), "{}", h.screen());
    back_to_the_list(&mut h).await;
    shows(&mut h, "EUR 10.00", "part.refund", "settled");
    shows(&mut h, "EUR 15.00", "cancelled", "—");

    // the sandbox holds the same
    let list = sandbox_charges(&h, &tid).await;
    assert_eq!(list.len(), 2, "{list:?}");
    let cancelled = charge_of(&list, "1500");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let refunded = charge_of(&list, "1000");
    assert_eq!(refunded["status"], "partially_refunded", "{refunded}");
    assert_eq!(refunded["refunded_amount"]["value"], "400", "{refunded}");
    assert_eq!(cancelled["settlement"]["status"], "none", "{cancelled}");
    assert_eq!(refunded["settlement"]["status"], "settled", "{refunded}");
}
