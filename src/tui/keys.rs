//! Every key binding of the POS screen, with its description. The `?` help overlay and the
//! bottom hint bar are both generated from [`BINDINGS`], so they can never drift from what the
//! keys really do (yazi's habit).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks for; [`super::model::update`] carries it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Quit,
    Help,
    FocusNext,
    FocusPrev,
    Up,
    Down,
    PageUp,
    PageDown,
    /// The POS OK key: retry on the error screen, open an exchange's details in the list.
    Ok,
    /// The POS Cancel key: back to the device.
    Cancel,
    /// The POS Clear key: dismiss the message on screen.
    Clear,
    Restart,
    Claim,
    Expire,
    Profiles,
    Server,
    Export,
    CopyCurl,
    ToggleDebug,
    PollSlower,
    PollFaster,
    /// A digit: the sale's amount, the PIN, a refund amount.
    Digit,
    /// ← →: the card's entry mode, the tip.
    Left,
    Right,
    /// The transactions view.
    Transactions,
    /// Cancel (void) the selected charge, before settlement.
    Void,
    /// Refund the selected charge, after settlement.
    Refund,
    /// Settle the terminal's pending charges now (sandbox helper).
    Settle,
}

/// When a binding is worth showing in the hint bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    /// The device is showing a pairing code.
    Pairing,
    /// The device stopped (error or update required): OK retries.
    Stopped,
    /// The debug side is visible.
    Debug,
    /// An exchange is selected.
    Exchange,
    /// Only in the help (too common to spend hint-bar room on).
    HelpOnly,
    /// A screen of the sale flow ([`super::model::Model::pay_applies`]).
    Pay(PayWhen),
}

/// Where a payment key applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayWhen {
    /// Digits are typed: the sale's amount, the PIN, a refund amount.
    Typing,
    /// The sale screen is idle (the transactions view opens from it).
    Idle,
    /// A list to choose from with ← → (card entry mode, tip).
    Choosing,
    /// The transactions view is open.
    Charges,
    /// The selected transaction can be cancelled (approved, not settled).
    CanVoid,
    /// The selected transaction can be refunded (settled, something left).
    CanRefund,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    General,
    Device,
    Sandbox,
    Debug,
    Payments,
}

impl Section {
    pub fn title(self) -> &'static str {
        match self {
            Section::General => "General",
            Section::Device => "Device",
            Section::Sandbox => "Sandbox (embedded or a posemu sandbox server)",
            Section::Debug => "Debug side",
            Section::Payments => "Payments (the sale screen)",
        }
    }
}

pub struct Binding {
    pub keys: &'static [(KeyCode, KeyModifiers)],
    /// How the keys are written in the help and hint bar.
    pub shown: &'static str,
    /// A word or two for the hint bar.
    pub hint: &'static str,
    /// A sentence for the help.
    pub help: &'static str,
    pub action: Action,
    pub when: When,
    pub section: Section,
}

const NONE: KeyModifiers = KeyModifiers::NONE;
const SHIFT: KeyModifiers = KeyModifiers::SHIFT;
const CTRL: KeyModifiers = KeyModifiers::CONTROL;

/// In hint-bar priority order within each context.
pub const BINDINGS: &[Binding] = &[
    Binding {
        keys: &[(KeyCode::Enter, NONE)],
        shown: "Enter",
        hint: "OK",
        help: "POS OK (green): go on in a sale; retry after an error; an exchange's details",
        action: Action::Ok,
        when: When::Stopped,
        section: Section::Device,
    },
    Binding {
        keys: &[(KeyCode::Char('c'), NONE)],
        shown: "c",
        hint: "claim",
        help: "Claim the code now, as the merchant would in the portal",
        action: Action::Claim,
        when: When::Pairing,
        section: Section::Sandbox,
    },
    Binding {
        keys: &[(KeyCode::Char('x'), NONE)],
        shown: "x",
        hint: "expire",
        help: "Expire the code now (the device then gets a new one)",
        action: Action::Expire,
        when: When::Pairing,
        section: Section::Sandbox,
    },
    Binding {
        keys: &[(KeyCode::Char('r'), NONE)],
        shown: "r",
        hint: "restart",
        help: "Restart from scratch (the sandbox forgets the device too)",
        action: Action::Restart,
        when: When::Always,
        section: Section::Device,
    },
    Binding {
        keys: &[(KeyCode::Char('p'), NONE)],
        shown: "p",
        hint: "profile",
        help: "Pick another device profile",
        action: Action::Profiles,
        when: When::Always,
        section: Section::Device,
    },
    Binding {
        keys: &[(KeyCode::Char('s'), NONE)],
        shown: "s",
        hint: "server",
        help: "Set the server URL (empty: the embedded sandbox)",
        action: Action::Server,
        when: When::Always,
        section: Section::Device,
    },
    Binding {
        keys: &[
            (KeyCode::Char('+'), NONE),
            (KeyCode::Char('+'), SHIFT),
            (KeyCode::Char('='), NONE),
        ],
        shown: "+/-",
        hint: "poll",
        help: "Poll less or more often (3–5 s)",
        action: Action::PollSlower,
        when: When::Pairing,
        section: Section::Device,
    },
    Binding {
        keys: &[(KeyCode::Char('-'), NONE)],
        shown: "-",
        hint: "",
        help: "",
        action: Action::PollFaster,
        when: When::HelpOnly,
        section: Section::Device,
    },
    Binding {
        keys: &[(KeyCode::Esc, NONE)],
        shown: "Esc",
        hint: "cancel",
        help: "POS Cancel (red): abandon the sale, close a view or popup, focus the device",
        action: Action::Cancel,
        when: When::HelpOnly,
        section: Section::Device,
    },
    Binding {
        keys: &[(KeyCode::Backspace, NONE)],
        shown: "Backspace",
        hint: "clear",
        help: "POS Clear (yellow): delete the last digit, a screen back; dismiss the message",
        action: Action::Clear,
        when: When::HelpOnly,
        section: Section::Device,
    },
    Binding {
        keys: &[(KeyCode::Char('d'), NONE)],
        shown: "d",
        hint: "debug",
        help: "Show or hide the debug side (timeline, HTTP, details)",
        action: Action::ToggleDebug,
        when: When::Always,
        section: Section::Debug,
    },
    Binding {
        keys: &[(KeyCode::Tab, NONE)],
        shown: "Tab",
        hint: "focus",
        help: "Focus device → exchanges → details (Shift-Tab back)",
        action: Action::FocusNext,
        when: When::Debug,
        section: Section::Debug,
    },
    Binding {
        keys: &[(KeyCode::BackTab, SHIFT), (KeyCode::BackTab, NONE)],
        shown: "Shift-Tab",
        hint: "",
        help: "",
        action: Action::FocusPrev,
        when: When::HelpOnly,
        section: Section::Debug,
    },
    Binding {
        keys: &[(KeyCode::Up, NONE), (KeyCode::Char('k'), NONE)],
        shown: "↑↓ j k",
        hint: "",
        help: "Choose a card, tip or transaction; select an exchange, scroll the details",
        action: Action::Up,
        when: When::HelpOnly,
        section: Section::Debug,
    },
    Binding {
        keys: &[(KeyCode::Down, NONE), (KeyCode::Char('j'), NONE)],
        shown: "↓ j",
        hint: "",
        help: "",
        action: Action::Down,
        when: When::HelpOnly,
        section: Section::Debug,
    },
    Binding {
        keys: &[(KeyCode::PageUp, NONE)],
        shown: "PgUp PgDn",
        hint: "",
        help: "Scroll the details by a page",
        action: Action::PageUp,
        when: When::HelpOnly,
        section: Section::Debug,
    },
    Binding {
        keys: &[(KeyCode::PageDown, NONE), (KeyCode::Char(' '), NONE)],
        shown: "PgDn Space",
        hint: "",
        help: "",
        action: Action::PageDown,
        when: When::HelpOnly,
        section: Section::Debug,
    },
    Binding {
        keys: &[(KeyCode::Char('y'), NONE)],
        shown: "y",
        hint: "copy curl",
        help: "Copy the exchange as curl (OSC 52 clipboard), and show it",
        action: Action::CopyCurl,
        when: When::Exchange,
        section: Section::Debug,
    },
    Binding {
        keys: &[(KeyCode::Char('e'), NONE)],
        shown: "e",
        hint: "HAR",
        help: "Export the exchange log as HAR 1.2 (browser devtools)",
        action: Action::Export,
        when: When::Debug,
        section: Section::Debug,
    },
    Binding {
        keys: &[
            (KeyCode::Char('0'), NONE),
            (KeyCode::Char('1'), NONE),
            (KeyCode::Char('2'), NONE),
            (KeyCode::Char('3'), NONE),
            (KeyCode::Char('4'), NONE),
            (KeyCode::Char('5'), NONE),
            (KeyCode::Char('6'), NONE),
            (KeyCode::Char('7'), NONE),
            (KeyCode::Char('8'), NONE),
            (KeyCode::Char('9'), NONE),
        ],
        shown: "0-9",
        hint: "type",
        help: "Type the amount (it grows from the right), the PIN, a refund amount",
        action: Action::Digit,
        when: When::Pay(PayWhen::Typing),
        section: Section::Payments,
    },
    Binding {
        keys: &[(KeyCode::Left, NONE), (KeyCode::Char('h'), NONE)],
        shown: "← → h l",
        hint: "choose",
        help: "Card: tap, insert, swipe or manual entry; tip: the percentage",
        action: Action::Left,
        when: When::Pay(PayWhen::Choosing),
        section: Section::Payments,
    },
    Binding {
        keys: &[(KeyCode::Right, NONE), (KeyCode::Char('l'), NONE)],
        shown: "→ l",
        hint: "",
        help: "",
        action: Action::Right,
        when: When::HelpOnly,
        section: Section::Payments,
    },
    Binding {
        keys: &[(KeyCode::Char('t'), NONE)],
        shown: "t",
        hint: "transactions",
        help: "The terminal's transactions (the sandbox's list and this session's)",
        action: Action::Transactions,
        when: When::Pay(PayWhen::Idle),
        section: Section::Payments,
    },
    Binding {
        keys: &[(KeyCode::Char('v'), NONE)],
        shown: "v",
        hint: "cancel charge",
        help: "Transactions: cancel (void) the selected charge, before settlement",
        action: Action::Void,
        when: When::Pay(PayWhen::CanVoid),
        section: Section::Payments,
    },
    Binding {
        keys: &[(KeyCode::Char('f'), NONE)],
        shown: "f",
        hint: "refund",
        help: "Transactions: refund the selected charge (after settlement), with an amount",
        action: Action::Refund,
        when: When::Pay(PayWhen::CanRefund),
        section: Section::Payments,
    },
    Binding {
        keys: &[(KeyCode::Char('b'), NONE)],
        shown: "b",
        hint: "settle",
        help: "Settle the terminal's pending charges now (POST /sandbox/settle, batch close)",
        action: Action::Settle,
        when: When::Pay(PayWhen::Charges),
        section: Section::Sandbox,
    },
    Binding {
        keys: &[
            (KeyCode::Char('?'), NONE),
            (KeyCode::Char('?'), SHIFT),
            (KeyCode::F(1), NONE),
        ],
        shown: "?",
        hint: "help",
        help: "Show or hide this help",
        action: Action::Help,
        when: When::Always,
        section: Section::General,
    },
    Binding {
        keys: &[(KeyCode::Char('q'), NONE), (KeyCode::Char('c'), CTRL)],
        shown: "q Ctrl-C",
        hint: "quit",
        help: "Quit (progress is saved, except in a demo)",
        action: Action::Quit,
        when: When::Always,
        section: Section::General,
    },
];

/// Whether a key works in demo mode (`posemu demo`): switching profile or server would leave
/// the demo's sandbox, whose portal URL is on the banner.
pub fn in_demo(action: Action) -> bool {
    !matches!(action, Action::Profiles | Action::Server)
}

/// The binding a key press means, if any.
pub fn lookup(key: &KeyEvent) -> Option<&'static Binding> {
    // Terminals disagree on whether `?` and `+` carry SHIFT; compare without it for chars.
    let mods = match key.code {
        KeyCode::Char(_) => key.modifiers - KeyModifiers::SHIFT,
        _ => key.modifiers,
    };
    BINDINGS.iter().find(|b| {
        b.keys.iter().any(|(code, m)| {
            let m = match code {
                KeyCode::Char(_) => *m - KeyModifiers::SHIFT,
                _ => *m,
            };
            *code == key.code && m == mods
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn every_action_has_a_key_and_keys_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for b in BINDINGS {
            for k in b.keys {
                assert!(seen.insert(*k), "{k:?} is bound twice");
            }
        }
        assert_eq!(
            lookup(&key(KeyCode::Char('c'), CTRL)).unwrap().action,
            Action::Quit
        );
        assert_eq!(
            lookup(&key(KeyCode::Char('c'), NONE)).unwrap().action,
            Action::Claim
        );
        assert_eq!(
            lookup(&key(KeyCode::Char('?'), SHIFT)).unwrap().action,
            Action::Help
        );
        assert_eq!(
            lookup(&key(KeyCode::Char('+'), SHIFT)).unwrap().action,
            Action::PollSlower
        );
        assert!(lookup(&key(KeyCode::Char('Z'), SHIFT)).is_none());
    }
}
