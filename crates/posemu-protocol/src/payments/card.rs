//! Cards: Luhn, the brand table, the masked PAN and the sandbox's test cards (spec 7.5, 7.7).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::wire::DeclineCode;

/// The Luhn check of a digit string (false for anything but ASCII digits, or empty).
pub fn luhn_ok(pan: &str) -> bool {
    if pan.is_empty() || !pan.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = pan
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 {
                    d2 - 9
                } else {
                    d2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `card.pan` syntax: 12–19 ASCII digits (spec 7.6).
pub fn is_valid_pan(pan: &str) -> bool {
    (12..=19).contains(&pan.len()) && pan.bytes().all(|b| b.is_ascii_digit())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Brand {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Jcb,
    Unionpay,
    Unknown,
}

impl Brand {
    pub fn as_str(self) -> &'static str {
        match self {
            Brand::Visa => "visa",
            Brand::Mastercard => "mastercard",
            Brand::Amex => "amex",
            Brand::Discover => "discover",
            Brand::Jcb => "jcb",
            Brand::Unionpay => "unionpay",
            Brand::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Brand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// [POSEMU] the brand table of spec 7.7, first match wins: (lowest prefix, highest prefix,
/// brand), prefixes compared on as many leading digits as they have.
const BRAND_RANGES: &[(&str, &str, Brand)] = &[
    ("34", "34", Brand::Amex),
    ("37", "37", Brand::Amex),
    ("4", "4", Brand::Visa),
    ("51", "55", Brand::Mastercard),
    ("2221", "2720", Brand::Mastercard),
    ("6011", "6011", Brand::Discover),
    ("644", "649", Brand::Discover),
    ("65", "65", Brand::Discover),
    ("3528", "3589", Brand::Jcb),
    ("62", "62", Brand::Unionpay),
];

/// The brand of a PAN by its leading digits (spec 7.7).
pub fn brand_of(pan: &str) -> Brand {
    for &(lo, hi, brand) in BRAND_RANGES {
        let n = lo.len();
        if let Some(head) = pan.get(..n) {
            if head.bytes().all(|b| b.is_ascii_digit()) && lo <= head && head <= hi {
                return brand;
            }
        }
    }
    Brand::Unknown
}

/// First 6 and last 4 digits with `*` between: `424242******4242`, `378282*****0005`. A PAN too
/// short to keep 10 digits is all `*` but its last 4 (never the whole PAN).
pub fn masked_pan(pan: &str) -> String {
    let chars: Vec<char> = pan.chars().collect();
    let n = chars.len();
    if n <= 10 {
        let tail: String = chars[n.saturating_sub(4)..].iter().collect();
        return format!("{}{tail}", "*".repeat(n.saturating_sub(4)));
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[n - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(n - 10))
}

/// The last 4 characters of a PAN.
pub fn last4(pan: &str) -> String {
    let chars: Vec<char> = pan.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// What a test card does in the sandbox (spec 7.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardBehaviour {
    /// Approved (unless the amount or the PIN rules say otherwise).
    Normal,
    /// Always declined with this code, whatever the amount or expiry.
    Declined(DeclineCode),
    /// A PIN is always required.
    AlwaysPin,
    /// Fails the Luhn check: declined `invalid_card_number`.
    FailsLuhn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestCard {
    pub pan: &'static str,
    pub brand: Brand,
    pub behaviour: CardBehaviour,
    /// The spec's words, for a device UI that lists the cards.
    pub text: &'static str,
}

/// [POSEMU] The PIN of every test card (spec 7.7).
pub const TEST_PIN: &str = "1234";

/// [POSEMU] the test cards of spec 7.7 (any future expiry works; the PIN is [`TEST_PIN`]).
pub const TEST_CARDS: &[TestCard] = &[
    TestCard {
        pan: "4242424242424242",
        brand: Brand::Visa,
        behaviour: CardBehaviour::Normal,
        text: "normal",
    },
    TestCard {
        pan: "5555555555554444",
        brand: Brand::Mastercard,
        behaviour: CardBehaviour::Normal,
        text: "normal",
    },
    TestCard {
        pan: "378282246310005",
        brand: Brand::Amex,
        behaviour: CardBehaviour::Normal,
        text: "normal",
    },
    TestCard {
        pan: "6011111111111117",
        brand: Brand::Discover,
        behaviour: CardBehaviour::Normal,
        text: "normal",
    },
    TestCard {
        pan: "4000000000000002",
        brand: Brand::Visa,
        behaviour: CardBehaviour::Declined(DeclineCode::DoNotHonor),
        text: "declined do_not_honor",
    },
    TestCard {
        pan: "4000000000009995",
        brand: Brand::Visa,
        behaviour: CardBehaviour::Declined(DeclineCode::InsufficientFunds),
        text: "declined insufficient_funds",
    },
    TestCard {
        pan: "4000000000000069",
        brand: Brand::Visa,
        behaviour: CardBehaviour::Declined(DeclineCode::ExpiredCard),
        text: "declined expired_card, whatever expiry is sent",
    },
    TestCard {
        pan: "4000000000000655",
        brand: Brand::Visa,
        behaviour: CardBehaviour::AlwaysPin,
        text: "always requires a PIN",
    },
    TestCard {
        pan: "4242424242424241",
        brand: Brand::Visa,
        behaviour: CardBehaviour::FailsLuhn,
        text: "fails Luhn: declined invalid_card_number",
    },
];

/// The test card with this PAN, if it is one.
pub fn test_card(pan: &str) -> Option<&'static TestCard> {
    TEST_CARDS.iter().find(|c| c.pan == pan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_of_the_test_cards() {
        for c in TEST_CARDS {
            assert_eq!(
                luhn_ok(c.pan),
                c.behaviour != CardBehaviour::FailsLuhn,
                "{}",
                c.pan
            );
            assert_eq!(brand_of(c.pan), c.brand, "{}", c.pan);
            assert!(is_valid_pan(c.pan));
        }
        assert!(!luhn_ok("") && !luhn_ok("42a2"));
    }

    #[test]
    fn brand_table() {
        for (pan, brand) in [
            ("340000000000009", Brand::Amex),
            ("371449635398431", Brand::Amex),
            ("5105105105105100", Brand::Mastercard),
            ("2221000000000009", Brand::Mastercard),
            ("2720990000000007", Brand::Mastercard),
            ("2721000000000000", Brand::Unknown),
            ("2220990000000000", Brand::Unknown),
            ("6440000000000000", Brand::Discover),
            ("6500000000000000", Brand::Discover),
            ("6012000000000000", Brand::Unknown),
            ("3528000000000000", Brand::Jcb),
            ("3589000000000000", Brand::Jcb),
            ("3590000000000000", Brand::Unknown),
            ("6200000000000000", Brand::Unionpay),
            ("5600000000000000", Brand::Unknown),
            ("", Brand::Unknown),
        ] {
            assert_eq!(brand_of(pan), brand, "{pan}");
        }
    }

    #[test]
    fn masking() {
        assert_eq!(masked_pan("4242424242424242"), "424242******4242");
        assert_eq!(masked_pan("378282246310005"), "378282*****0005");
        assert_eq!(masked_pan("123456789012"), "123456**9012");
        assert_eq!(masked_pan("1234567890"), "******7890");
        assert_eq!(masked_pan("12345"), "*2345");
        assert_eq!(masked_pan("1234"), "1234");
        assert_eq!(last4("378282246310005"), "0005");
        assert_eq!(last4("12"), "12");
    }
}
