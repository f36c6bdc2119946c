//! [POSEMU] The outcome table of spec 7.7, in one place: the first row that matches wins.

use chrono::{DateTime, Datelike, Utc};

use posemu_protocol::payments::card::{luhn_ok, test_card, CardBehaviour, TEST_PIN};
use posemu_protocol::payments::wire::{
    DeclineCode, EntryMode, RESPONSE_APPROVED, RESPONSE_PARTIAL,
};

/// What the table looks at.
pub struct Input<'a> {
    pub pan: &'a str,
    pub exp_month: u32,
    pub exp_year: u32,
    /// The PIN of a `pin_block` that deciphered.
    pub pin: Option<&'a str>,
    pub amount: u64,
    /// `amount + tip`, saturating.
    pub total: u64,
    pub entry_mode: EntryMode,
    pub allow_partial_approval: bool,
    pub now: DateTime<Utc>,
    /// Rows 8–14 and the `65` PIN rule (off with `--no-magic-amounts`).
    pub magic_amounts: bool,
    /// Config `security.pin_required_above_minor` and `security.contactless_limit_minor`.
    pub pin_required_above: u64,
    pub contactless_limit: u64,
}

impl Input<'_> {
    /// "Ends in" is `amount.value` mod 100 (spec 7.14).
    fn ends_in(&self, n: u64) -> bool {
        self.amount % 100 == n
    }

    /// `exp_year`·12 + `exp_month` < the same sum for the server's current UTC date.
    fn expired(&self) -> bool {
        let card = u64::from(self.exp_year) * 12 + u64::from(self.exp_month);
        let now = u64::try_from(self.now.year()).unwrap_or(0) * 12 + u64::from(self.now.month());
        card < now
    }

    fn card_is(&self, b: CardBehaviour) -> bool {
        test_card(self.pan).is_some_and(|c| c.behaviour == b)
    }

    /// Spec 7.7: the `…0655` card; an amount ending in `65` (a soft decline); chip above
    /// `pin_required_above_minor`; contactless above `contactless_limit_minor` (both strict).
    fn pin_required(&self) -> bool {
        self.card_is(CardBehaviour::AlwaysPin)
            || (self.magic_amounts && self.ends_in(65))
            || (self.entry_mode == EntryMode::Chip && self.total > self.pin_required_above)
            || (self.entry_mode == EntryMode::Contactless && self.total > self.contactless_limit)
    }
}

/// The result of a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Approved {
        approved_amount: u64,
        response_code: &'static str,
        /// Row 13: stored approved, answered `504`.
        late: bool,
    },
    Declined(DeclineCode),
}

impl Outcome {
    pub fn response_code(&self) -> &'static str {
        match self {
            Outcome::Approved { response_code, .. } => response_code,
            Outcome::Declined(d) => d.response_code(),
        }
    }
}

enum Then {
    Decline(DeclineCode),
    ApproveHalf,
    ApproveLate,
    Approve,
}

struct Row {
    /// The row number of spec 7.7.
    #[allow(dead_code)]
    n: u8,
    /// A magic-amount row, off with `--no-magic-amounts`.
    magic: bool,
    when: fn(&Input) -> bool,
    then: Then,
}

use DeclineCode::*;

/// [POSEMU] spec 7.7, rows 1–15 in order.
const TABLE: &[Row] = &[
    Row {
        n: 1,
        magic: false,
        when: |i| !luhn_ok(i.pan),
        then: Then::Decline(InvalidCardNumber),
    },
    Row {
        n: 2,
        magic: false,
        when: |i| i.expired(),
        then: Then::Decline(ExpiredCard),
    },
    Row {
        n: 3,
        magic: false,
        when: |i| i.pin.is_some_and(|p| p != TEST_PIN),
        then: Then::Decline(IncorrectPin),
    },
    Row {
        n: 4,
        magic: false,
        when: |i| i.pin_required() && i.pin.is_none(),
        then: Then::Decline(PinRequired),
    },
    Row {
        n: 5,
        magic: false,
        when: |i| i.card_is(CardBehaviour::Declined(DoNotHonor)),
        then: Then::Decline(DoNotHonor),
    },
    Row {
        n: 6,
        magic: false,
        when: |i| i.card_is(CardBehaviour::Declined(InsufficientFunds)),
        then: Then::Decline(InsufficientFunds),
    },
    Row {
        n: 7,
        magic: false,
        when: |i| i.card_is(CardBehaviour::Declined(ExpiredCard)),
        then: Then::Decline(ExpiredCard),
    },
    Row {
        n: 8,
        magic: true,
        when: |i| i.ends_in(5),
        then: Then::Decline(DoNotHonor),
    },
    Row {
        n: 9,
        magic: true,
        when: |i| i.ends_in(10) && i.allow_partial_approval,
        then: Then::ApproveHalf,
    },
    Row {
        n: 10,
        magic: true,
        when: |i| i.ends_in(10) || i.ends_in(51),
        then: Then::Decline(InsufficientFunds),
    },
    Row {
        n: 11,
        magic: true,
        when: |i| i.ends_in(54),
        then: Then::Decline(ExpiredCard),
    },
    Row {
        n: 12,
        magic: true,
        when: |i| i.ends_in(55),
        then: Then::Decline(IncorrectPin),
    },
    Row {
        n: 13,
        magic: true,
        when: |i| i.ends_in(68),
        then: Then::ApproveLate,
    },
    Row {
        n: 14,
        magic: true,
        when: |i| i.ends_in(91),
        then: Then::Decline(IssuerUnavailable),
    },
    Row {
        n: 15,
        magic: false,
        when: |_| true,
        then: Then::Approve,
    },
];

/// Decides a charge: the first row of [`TABLE`] that matches.
pub fn decide(i: &Input) -> Outcome {
    let row = TABLE
        .iter()
        .filter(|r| i.magic_amounts || !r.magic)
        .find(|r| (r.when)(i));
    match row.map(|r| &r.then) {
        Some(Then::Decline(d)) => Outcome::Declined(*d),
        Some(Then::ApproveHalf) => Outcome::Approved {
            approved_amount: i.total / 2,
            response_code: RESPONSE_PARTIAL,
            late: false,
        },
        Some(Then::ApproveLate) => Outcome::Approved {
            approved_amount: i.total,
            response_code: RESPONSE_APPROVED,
            late: true,
        },
        Some(Then::Approve) | None => Outcome::Approved {
            approved_amount: i.total,
            response_code: RESPONSE_APPROVED,
            late: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(pan: &str, amount: u64) -> Input<'_> {
        Input {
            pan,
            exp_month: 12,
            exp_year: 2030,
            pin: None,
            amount,
            total: amount,
            entry_mode: EntryMode::Swipe,
            allow_partial_approval: false,
            now: DateTime::parse_from_rfc3339("2025-12-13T14:30:00Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            magic_amounts: true,
            pin_required_above: 5000,
            contactless_limit: 5000,
        }
    }

    const OK: &str = "4242424242424242";

    fn declined(d: DeclineCode) -> Outcome {
        Outcome::Declined(d)
    }

    fn approved(a: u64) -> Outcome {
        Outcome::Approved {
            approved_amount: a,
            response_code: "00",
            late: false,
        }
    }

    #[test]
    fn every_row() {
        assert_eq!(
            decide(&input("4242424242424241", 1500)),
            declined(InvalidCardNumber)
        );
        let mut i = input(OK, 1500);
        i.exp_year = 2025;
        i.exp_month = 11;
        assert_eq!(decide(&i), declined(ExpiredCard));
        i.exp_month = 12; // this month is not expired
        assert_eq!(decide(&i), approved(1500));
        let mut i = input(OK, 1555);
        i.pin = Some("9999");
        assert_eq!(decide(&i), declined(IncorrectPin));
        assert_eq!(
            decide(&input("4000000000000655", 1500)),
            declined(PinRequired)
        );
        assert_eq!(decide(&input(OK, 1565)), declined(PinRequired));
        let mut i = input(OK, 5001);
        i.entry_mode = EntryMode::Chip;
        assert_eq!(decide(&i), declined(PinRequired));
        i.amount = 5000;
        i.total = 5000;
        assert_eq!(decide(&i), approved(5000), "the limit is strict");
        let mut i = input(OK, 4000);
        i.entry_mode = EntryMode::Contactless;
        i.total = 5001;
        assert_eq!(
            decide(&i),
            declined(PinRequired),
            "the total counts, tip included"
        );
        assert_eq!(
            decide(&input("4000000000000002", 1500)),
            declined(DoNotHonor)
        );
        assert_eq!(
            decide(&input("4000000000009995", 1500)),
            declined(InsufficientFunds)
        );
        assert_eq!(
            decide(&input("4000000000000069", 1500)),
            declined(ExpiredCard)
        );
        assert_eq!(decide(&input(OK, 5)), declined(DoNotHonor));
        let mut i = input(OK, 1010);
        i.total = 1111;
        i.allow_partial_approval = true;
        assert_eq!(
            decide(&i),
            Outcome::Approved {
                approved_amount: 555,
                response_code: "10",
                late: false
            }
        );
        assert_eq!(decide(&input(OK, 1010)), declined(InsufficientFunds));
        assert_eq!(decide(&input(OK, 1051)), declined(InsufficientFunds));
        assert_eq!(decide(&input(OK, 1054)), declined(ExpiredCard));
        let mut i = input(OK, 1055);
        i.pin = Some("1234");
        assert_eq!(decide(&i), declined(IncorrectPin), "whatever the PIN");
        assert_eq!(
            decide(&input(OK, 1068)),
            Outcome::Approved {
                approved_amount: 1068,
                response_code: "00",
                late: true
            }
        );
        assert_eq!(decide(&input(OK, 1091)), declined(IssuerUnavailable));
        assert_eq!(decide(&input(OK, 1500)), approved(1500));
    }

    #[test]
    fn no_magic_amounts_keeps_test_cards() {
        for amount in [5, 1010, 1051, 1054, 1055, 1065, 1068, 1091] {
            let mut i = input(OK, amount);
            i.magic_amounts = false;
            assert_eq!(decide(&i), approved(amount), "{amount}");
        }
        let mut i = input("4000000000009995", 1500);
        i.magic_amounts = false;
        assert_eq!(decide(&i), declined(InsufficientFunds));
        let mut i = input("4000000000000655", 1500);
        i.magic_amounts = false;
        assert_eq!(decide(&i), declined(PinRequired));
    }
}
