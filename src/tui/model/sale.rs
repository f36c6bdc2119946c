//! The sale flow on the Ready screen (spec 7, `shared/design/payments-screens.md`): the amount
//! typed as real terminals do (it grows from the right), the tip, the card, processing, the PIN
//! pad, the outcome, the receipt, and the transactions view with cancel and refund.
//!
//! The payment machine ([`posemu_device::payment`]) is the running device's ([`super::Device`]),
//! beside its device machine, over the same [`posemu_device::DeviceState`] and stepped with the
//! device machine's clock and seeded randomness; its calls and retry timer leave as
//! [`Cmd::Pay`] and [`Cmd::After`], its re-key request is fed to the device machine, its notes
//! are shown ([`paying`]). This file keeps the screens' state ([`Sale`]) and their keys; the
//! transactions view is [`transactions`].

use chrono::Datelike;
use crossterm::event::{KeyCode, KeyEvent};

use super::{Cmd, Focus, Model, Msg};
use crate::tui::cmd::Slot;
use crate::tui::keys::{Action, PayWhen};
use crate::tui::theme::Level;
use posemu_device::payment::{
    self, ChargeInput, PayEffect, PayEvent, PayNote, PayOp, PayOutcome, PayPhase,
};
use posemu_device::{DeviceEvent, DeviceState, Phase};
use posemu_protocol::api::Secret;
use posemu_protocol::payments::money::MAX_REQUEST_DIGITS;
use posemu_protocol::payments::wire::CardData;
use posemu_protocol::payments::wire::SettlementStatus;
use posemu_protocol::payments::{Charge, ChargeStatus, EntryMode, Money, TestCard, TEST_CARDS};

mod paying;
mod transactions;

pub use transactions::{can_void, refundable};

/// PIN length on the pad (ISO 9564 format 4, spec 7.6).
pub const PIN_MIN: usize = 4;
pub const PIN_MAX: usize = 12;
/// How many charges the transactions view asks the sandbox for.
pub const LIST_LIMIT: usize = 50;
/// Charges this session keeps (newest first).
const SESSION_MAX: usize = 200;
/// Tip choices kept from the config (besides "no tip").
const TIP_CHOICES_MAX: usize = 6;

/// The card screen's ways in, in the order a terminal names them: tap, insert, swipe, manual.
pub const ENTRY_ORDER: [EntryMode; 4] = [
    EntryMode::Contactless,
    EntryMode::Chip,
    EntryMode::Swipe,
    EntryMode::Manual,
];
/// Insert (chip) is selected first.
const ENTRY_DEFAULT: usize = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Amount,
    Tip,
    Card,
    Processing,
    Pin,
    Outcome,
    Receipt,
    Transactions,
    RefundAmount,
}

/// The sale on screen and the payment machine behind it.
pub struct Sale {
    pub screen: Screen,
    /// The amount typed, in minor units of the terminal's currency.
    pub amount: u64,
    /// 0: no tip; `i`: the config's `i`-th percentage.
    pub tip_choice: usize,
    /// Index into [`TEST_CARDS`].
    pub card: usize,
    /// Index into [`ENTRY_ORDER`].
    pub entry: usize,
    /// The PIN typed so far (shown only as `*`).
    pin: Secret<String>,
    /// `charge`, `refund`, `cancel`.
    pub operation: &'static str,
    /// When the operation began (device machine ms).
    pub started_ms: u64,
    /// The step in words, while processing.
    pub step: String,
    pub outcome: Option<PayOutcome>,
    /// Charges this session made or changed, newest first.
    session: Vec<Charge>,
    /// The sandbox's list, as last read.
    listed: Vec<Charge>,
    /// Why the sandbox's list is missing, or that it is loading.
    pub list_note: Option<String>,
    /// The selected row of the transactions view.
    pub selected: usize,
    /// The charge being refunded and what is left of it.
    pub refund: Option<(String, Money)>,
    pub refund_amount: u64,
    /// The next digit starts the refund amount over (it shows what is left at first).
    refund_fresh: bool,
    /// Where the outcome and the receipt lead back to.
    back: Screen,
    /// The slip shown by the receipt view, when it is one of the list's charges.
    pub receipt_of: Option<Charge>,
}

impl Default for Sale {
    fn default() -> Self {
        Sale {
            screen: Screen::Amount,
            amount: 0,
            tip_choice: 0,
            card: 0,
            entry: ENTRY_DEFAULT,
            pin: Secret(String::new()),
            operation: "charge",
            started_ms: 0,
            step: String::new(),
            outcome: None,
            session: Vec::new(),
            listed: Vec::new(),
            list_note: None,
            selected: 0,
            refund: None,
            refund_amount: 0,
            refund_fresh: true,
            back: Screen::Amount,
            receipt_of: None,
        }
    }
}

impl Sale {
    /// How many PIN digits are typed (the digits themselves never leave the model).
    pub fn pin_len(&self) -> usize {
        self.pin.expose().len()
    }

    pub fn test_card(&self) -> &'static TestCard {
        &TEST_CARDS[self.card.min(TEST_CARDS.len() - 1)]
    }

    pub fn entry_mode(&self) -> EntryMode {
        ENTRY_ORDER[self.entry.min(ENTRY_ORDER.len() - 1)]
    }

    /// A new sale: no amount, no tip, and the card list back at its first card (Visa 4242)
    /// and way in (chip). The customer presents a card anew each time; the last sale's card
    /// (say the one that always asks for a PIN) must not carry over.
    fn new_sale(&mut self) {
        self.amount = 0;
        self.tip_choice = 0;
        self.card = 0;
        self.entry = ENTRY_DEFAULT;
        self.screen = Screen::Amount;
    }
}

/// The tip percentages of config `merchant.tip_info` when tips are enabled (each 1–100, at
/// most six); empty otherwise.
pub fn tip_percentages(d: &DeviceState) -> Vec<u64> {
    let Some(info) = d
        .progress
        .config
        .as_ref()
        .and_then(|c| c.get("merchant")?.get("tip_info"))
    else {
        return Vec::new();
    };
    if info.get("enabled").and_then(|e| e.as_bool()) != Some(true) {
        return Vec::new();
    }
    let list = info.get("percentages").and_then(|p| p.as_array());
    list.into_iter()
        .flatten()
        .filter_map(|p| p.as_u64())
        .filter(|p| (1..=100).contains(p))
        .take(TIP_CHOICES_MAX)
        .collect()
}

/// `pct` % of `amount`, rounded half up, saturating.
pub fn tip_of(amount: u64, pct: u64) -> u64 {
    amount.saturating_mul(pct).saturating_add(50) / 100
}

/// Appends a digit the way a terminal's keypad does (the amount grows from the right).
fn push_digit(v: u64, d: u64) -> u64 {
    let max = 10u64.pow(MAX_REQUEST_DIGITS as u32) - 1;
    let next = v.saturating_mul(10).saturating_add(d);
    if next > max {
        v
    } else {
        next
    }
}

impl Model {
    pub fn sale(&self) -> &Sale {
        &self.sale
    }

    /// The payment machine's phase (`Idle` without a device).
    fn pay_phase(&self) -> Option<&PayPhase> {
        self.device.as_ref().map(|d| &d.pay.phase)
    }

    /// A payment operation is under way (a call, a retry wait, the re-key, the PIN).
    pub fn paying(&self) -> bool {
        self.device.as_ref().is_some_and(|d| !d.pay.is_free())
    }

    /// The device fetches its keys again for this payment.
    pub fn rekeying(&self) -> bool {
        self.pay_phase() == Some(&PayPhase::NeedKeys)
    }

    /// A call or a retry is under way (the spinner turns).
    pub fn pay_busy(&self) -> bool {
        matches!(
            self.pay_phase(),
            Some(PayPhase::NeedKeys | PayPhase::Sending | PayPhase::Backoff { .. })
        )
    }

    /// The terminal's currency (config `emv.currency`).
    pub fn currency(&self) -> Option<String> {
        payment::terminal_currency(self.device()?)
    }

    /// The tip choices of the config (empty: no tip screen).
    pub fn tips(&self) -> Vec<u64> {
        self.device().map(tip_percentages).unwrap_or_default()
    }

    /// The tip of the sale as chosen (0: no tip).
    pub fn tip(&self) -> u64 {
        let tips = self.tips();
        match self.sale.tip_choice.checked_sub(1) {
            Some(i) => tips.get(i).map_or(0, |p| tip_of(self.sale.amount, *p)),
            None => 0,
        }
    }

    /// Where the screen shows the sale: the device is ready, or fetches its keys for it.
    pub fn sale_on_screen(&self) -> bool {
        self.device().is_some_and(|d| d.phase == Phase::Ready) || self.rekeying()
    }

    /// Whether a payment key applies now (the hint bar).
    pub fn pay_applies(&self, w: PayWhen) -> bool {
        if !self.sale_on_screen() {
            return false;
        }
        let s = &self.sale;
        let selected = || s.selected_charge();
        match w {
            PayWhen::Typing => matches!(
                s.screen,
                Screen::Amount | Screen::Pin | Screen::RefundAmount
            ),
            PayWhen::Idle => matches!(s.screen, Screen::Amount | Screen::Outcome | Screen::Receipt),
            PayWhen::Choosing => matches!(s.screen, Screen::Tip | Screen::Card),
            PayWhen::Charges => s.screen == Screen::Transactions,
            PayWhen::CanVoid => {
                s.screen == Screen::Transactions && selected().is_some_and(|c| can_void(&c))
            }
            PayWhen::CanRefund => {
                s.screen == Screen::Transactions
                    && selected().and_then(|c| refundable(&c)).is_some()
            }
        }
    }

    /// A key on the sale screens; `None` when the sale does not take it (the usual meaning
    /// applies then).
    pub(super) fn sale_key(&mut self, action: Action, k: &KeyEvent) -> Option<Vec<Cmd>> {
        use Action as A;
        let own = matches!(
            action,
            A::Digit | A::Left | A::Right | A::Transactions | A::Void | A::Refund | A::Settle
        );
        let on_device = self.focus == Focus::Device && self.device_visible();
        if !self.sale_on_screen() {
            if own {
                self.toast_(Level::Info, "Not ready for payments yet");
                return Some(Vec::new());
            }
            return None;
        }
        // quitting and the help work on every sale screen, as the hint bar says
        if (!own && !on_device) || matches!(action, A::Quit | A::Help) {
            return None;
        }
        let digit = match k.code {
            KeyCode::Char(c) => c.to_digit(10).map(u64::from),
            _ => None,
        };
        if action == A::Settle {
            return Some(self.settle());
        }
        let tips = self.tips().len();
        let s = &mut self.sale;
        match (s.screen, action) {
            (Screen::Amount, A::Digit) => s.amount = push_digit(s.amount, digit.unwrap_or(0)),
            (Screen::Amount, A::Clear) if s.amount > 0 => s.amount /= 10,
            (Screen::Amount, A::Cancel) if s.amount > 0 => s.amount = 0,
            (Screen::Amount, A::Ok) => {
                if s.amount == 0 {
                    self.toast_(Level::Info, "Type the amount first");
                } else if tips == 0 {
                    self.sale.screen = Screen::Card;
                } else {
                    self.sale.screen = Screen::Tip;
                }
            }
            (Screen::Amount | Screen::Outcome | Screen::Receipt, A::Transactions) => {
                return Some(self.open_transactions());
            }
            (Screen::Tip, A::Up | A::Left) => s.tip_choice = s.tip_choice.saturating_sub(1),
            (Screen::Tip, A::Down | A::Right) => s.tip_choice = (s.tip_choice + 1).min(tips),
            (Screen::Tip, A::Ok) => s.screen = Screen::Card,
            (Screen::Tip, A::Clear) => s.screen = Screen::Amount,
            (Screen::Card, A::Up) => s.card = s.card.saturating_sub(1),
            (Screen::Card, A::Down) => s.card = (s.card + 1).min(TEST_CARDS.len() - 1),
            (Screen::Card, A::Left) => s.entry = s.entry.saturating_sub(1),
            (Screen::Card, A::Right) => s.entry = (s.entry + 1).min(ENTRY_ORDER.len() - 1),
            (Screen::Card, A::Clear) => {
                s.screen = if tips == 0 {
                    Screen::Amount
                } else {
                    Screen::Tip
                }
            }
            (Screen::Card, A::Ok) => return Some(self.charge()),
            (Screen::Tip | Screen::Card, A::Cancel) => s.new_sale(),
            (Screen::Pin, A::Digit) if s.pin.0.len() < PIN_MAX => {
                s.pin.0.push(char::from(b'0' + digit.unwrap_or(0) as u8));
            }
            (Screen::Pin, A::Clear) => {
                s.pin.0.pop();
            }
            (Screen::Pin, A::Ok) => {
                if s.pin.0.len() < PIN_MIN {
                    self.toast_(Level::Info, "The PIN has 4 to 12 digits");
                } else {
                    let pin = std::mem::replace(&mut s.pin, Secret(String::new()));
                    s.screen = Screen::Processing;
                    self.pay_event(PayEvent::Pin(pin));
                }
            }
            (Screen::Pin, A::Cancel) => {
                s.pin = Secret(String::new());
                s.screen = Screen::Processing;
                self.pay_event(PayEvent::NoPin);
            }
            (Screen::Outcome, A::Ok) => {
                let cancel_late = match &s.outcome {
                    Some(PayOutcome::Unknown {
                        charge_id: Some(id),
                        ..
                    }) => Some(id.clone()),
                    _ => None,
                };
                if let Some(charge_id) = cancel_late {
                    return Some(self.begin(PayOp::Cancel {
                        charge_id,
                        reverse: false,
                    }));
                }
                if s.outcome.as_ref().is_some_and(has_slip) {
                    s.receipt_of = None;
                    s.screen = Screen::Receipt;
                } else {
                    return Some(self.leave_outcome());
                }
            }
            (Screen::Outcome | Screen::Receipt, A::Ok | A::Clear | A::Cancel) => {
                return Some(self.leave_outcome());
            }
            (Screen::Transactions, A::Up) => s.selected = s.selected.saturating_sub(1),
            (Screen::Transactions, A::Down) => {
                let n = s.charges().len();
                s.selected = (s.selected + 1).min(n.saturating_sub(1));
            }
            (Screen::Transactions, A::Ok) => {
                if let Some(c) = s.selected_charge() {
                    s.receipt_of = Some(c);
                    s.back = Screen::Transactions;
                    s.screen = Screen::Receipt;
                }
            }
            (Screen::Transactions, A::Void) => match s.selected_charge() {
                Some(c) if can_void(&c) => {
                    return Some(self.begin(PayOp::Cancel {
                        charge_id: c.charge_id,
                        reverse: false,
                    }))
                }
                Some(_) => self.toast_(
                    Level::Info,
                    "Only an approved charge not settled yet can be cancelled (settled: refund)",
                ),
                None => self.toast_(Level::Info, "No transaction selected"),
            },
            (Screen::Transactions, A::Refund) => match s.selected_charge() {
                Some(c) => match refundable(&c) {
                    Some(left) => {
                        s.refund_amount = left.value;
                        s.refund = Some((c.charge_id, left));
                        s.refund_fresh = true;
                        s.screen = Screen::RefundAmount;
                    }
                    None => self.toast_(
                        Level::Info,
                        "Only a settled charge with something left can be refunded (not settled: cancel; b settles)",
                    ),
                },
                None => self.toast_(Level::Info, "No transaction selected"),
            },
            (Screen::Transactions, A::Cancel | A::Clear | A::Transactions) => {
                s.screen = Screen::Amount;
            }
            (Screen::RefundAmount, A::Digit) => {
                let d = digit.unwrap_or(0);
                s.refund_amount = if s.refund_fresh {
                    d
                } else {
                    push_digit(s.refund_amount, d)
                };
                s.refund_fresh = false;
            }
            (Screen::RefundAmount, A::Clear) => {
                s.refund_amount /= 10;
                s.refund_fresh = false;
            }
            (Screen::RefundAmount, A::Cancel) => s.screen = Screen::Transactions,
            (Screen::RefundAmount, A::Ok) => {
                let Some((charge_id, left)) = s.refund.clone() else {
                    return Some(Vec::new());
                };
                if s.refund_amount == 0 || s.refund_amount > left.value {
                    self.toast_(
                        Level::Info,
                        format!("Refund 0.01 up to {} {}", left.major(), left.currency),
                    );
                } else {
                    let amount = s.refund_amount;
                    return Some(self.begin(PayOp::Refund {
                        charge_id,
                        amount,
                        reason: None,
                        idempotency_key: None,
                    }));
                }
            }
            (Screen::Processing, A::Up | A::Down) => return None,
            // what is not the terminal's keypad (restart, quit, help, focus, debug, …) keeps
            // its usual meaning on every sale screen: a restart mid-sale ends the sale too
            (_, a) if !own && !keypad(a) => return None,
            (_, A::Void | A::Refund) => {
                self.toast_(Level::Info, "Open the transactions (t) and select a charge")
            }
            (_, A::Transactions) => {
                self.toast_(Level::Info, "Finish or cancel this sale first")
            }
            // the amount screen leaves ↑↓, Esc and ⌫ to their usual meaning
            (Screen::Amount, _) => {
                if own {
                    return Some(Vec::new());
                }
                return None;
            }
            _ => {}
        }
        Some(Vec::new())
    }

    fn leave_outcome(&mut self) -> Vec<Cmd> {
        let s = &mut self.sale;
        s.outcome = None;
        s.receipt_of = None;
        if s.back == Screen::Transactions {
            return self.open_transactions();
        }
        s.new_sale();
        Vec::new()
    }
}

/// The terminal's own keys: a sale screen takes them, whatever they do there.
fn keypad(a: Action) -> bool {
    matches!(
        a,
        Action::Digit
            | Action::Up
            | Action::Down
            | Action::Left
            | Action::Right
            | Action::Ok
            | Action::Clear
            | Action::Cancel
    )
}

/// Whether an outcome has a printed slip.
pub fn has_slip(o: &PayOutcome) -> bool {
    matches!(
        o,
        PayOutcome::Approved(_)
            | PayOutcome::Declined(_)
            | PayOutcome::Cancelled(_)
            | PayOutcome::Refunded(_)
    )
}
