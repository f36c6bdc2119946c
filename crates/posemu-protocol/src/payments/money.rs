//! Amounts as exact integer minor units (spec 7.3, 7.5): `{"value": "1500", "currency": "EUR"}`.
//!
//! Request amounts are `^[1-9][0-9]{0,9}$` strings; answers also carry `"0"` (a tip that was not
//! sent, nothing refunded yet). Arithmetic saturates, so no input can overflow.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount in minor units of `currency` (ISO 4217 alpha-3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "MoneyWire", into = "MoneyWire")]
pub struct Money {
    pub value: u64,
    pub currency: String,
}

#[derive(Serialize, Deserialize)]
struct MoneyWire {
    value: String,
    currency: String,
}

impl TryFrom<MoneyWire> for Money {
    type Error = String;

    fn try_from(w: MoneyWire) -> Result<Self, String> {
        let value = parse_minor_or_zero(&w.value)
            .ok_or_else(|| format!("amount value {:?} is not a minor-unit string", w.value))?;
        Ok(Money {
            value,
            currency: w.currency,
        })
    }
}

impl From<Money> for MoneyWire {
    fn from(m: Money) -> Self {
        MoneyWire {
            value: m.value.to_string(),
            currency: m.currency,
        }
    }
}

impl Money {
    pub fn new(value: u64, currency: impl Into<String>) -> Money {
        Money {
            value,
            currency: currency.into(),
        }
    }

    pub fn zero(currency: impl Into<String>) -> Money {
        Money::new(0, currency)
    }

    /// The same currency, `value + other` saturating at `u64::MAX`.
    pub fn saturating_add(&self, value: u64) -> Money {
        Money::new(self.value.saturating_add(value), self.currency.clone())
    }

    /// The same currency, `value - other` saturating at 0.
    pub fn saturating_sub(&self, value: u64) -> Money {
        Money::new(self.value.saturating_sub(value), self.currency.clone())
    }

    /// Major-unit text without the currency, e.g. `15.00`.
    pub fn major(&self) -> String {
        format_major(self.value, currency_decimals(&self.currency))
    }
}

/// `15.00 EUR`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.major(), self.currency)
    }
}

/// Largest request amount: 10 digits (spec 7.6).
pub const MAX_REQUEST_DIGITS: usize = 10;

/// `^[1-9][0-9]{0,9}$` (spec 7.6, 7.8): a request amount, never zero.
pub fn parse_minor(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let ok = (1..=MAX_REQUEST_DIGITS).contains(&b.len())
        && b[0] != b'0'
        && b.iter().all(u8::is_ascii_digit);
    if ok {
        s.parse().ok()
    } else {
        None
    }
}

/// `"0"` or [`parse_minor`]'s syntax (a tip, spec 7.6).
pub fn parse_tip(s: &str) -> Option<u64> {
    if s == "0" {
        Some(0)
    } else {
        parse_minor(s)
    }
}

/// An answer's amount: `"0"` or digits without a leading zero that fit a `u64` (sums of
/// request amounts may exceed 10 digits).
pub fn parse_minor_or_zero(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let ok = !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b.len() == 1 || b[0] != b'0');
    if ok {
        s.parse().ok()
    } else {
        None
    }
}

/// The minor-unit string of an amount (`0` → `"0"`).
pub fn format_minor(value: u64) -> String {
    value.to_string()
}

/// `^[A-Z]{3}$` (ISO 4217 alpha-3 syntax).
pub fn is_valid_currency(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// Decimals of a currency's minor unit (ISO 4217); 2 unless listed.
pub fn currency_decimals(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "ISK" | "CLP" | "VND" | "XOF" | "XAF" | "UGX" | "PYG" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
        _ => 2,
    }
}

/// Minor units as major-unit text: `format_major(1500, 2)` = `15.00`, `format_major(5, 2)` =
/// `0.05`, `format_major(1500, 0)` = `1500`.
pub fn format_major(minor: u64, decimals: u32) -> String {
    if decimals == 0 {
        return minor.to_string();
    }
    let unit = 10u64.pow(decimals);
    format!(
        "{}.{:0width$}",
        minor / unit,
        minor % unit,
        width = decimals as usize
    )
}

/// Major-unit text (as typed on a keypad) to minor units: `15`, `15.5`, `15.50` → 1550 with
/// 2 decimals. `None` for signs, blanks, more decimals than the currency has, or overflow.
pub fn parse_major(s: &str, decimals: u32) -> Option<u64> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || frac.len() > decimals as usize {
        return None;
    }
    if s.contains('.') && frac.is_empty() {
        return None;
    }
    let unit = 10u64.checked_pow(decimals)?;
    let int: u64 = int.parse().ok()?;
    let frac_value: u64 = if frac.is_empty() {
        0
    } else {
        let scale = 10u64.checked_pow(decimals - frac.len() as u32)?;
        frac.parse::<u64>().ok()?.checked_mul(scale)?
    };
    int.checked_mul(unit)?.checked_add(frac_value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_amount_syntax() {
        assert_eq!(parse_minor("1500"), Some(1500));
        assert_eq!(parse_minor("9999999999"), Some(9_999_999_999));
        for bad in [
            "",
            "0",
            "01",
            "-5",
            "+5",
            "12.0",
            "10000000000",
            " 1",
            "1e3",
            "١",
        ] {
            assert_eq!(parse_minor(bad), None, "{bad:?}");
        }
        assert_eq!(parse_tip("0"), Some(0));
        assert_eq!(parse_tip("00"), None);
        assert_eq!(parse_minor_or_zero("0"), Some(0));
        assert_eq!(parse_minor_or_zero("19999999998"), Some(19_999_999_998));
        assert_eq!(parse_minor_or_zero("99999999999999999999"), None);
    }

    #[test]
    fn major_units() {
        assert_eq!(format_major(1500, 2), "15.00");
        assert_eq!(format_major(5, 2), "0.05");
        assert_eq!(format_major(1500, 0), "1500");
        assert_eq!(format_major(1500, 3), "1.500");
        assert_eq!(parse_major("15.00", 2), Some(1500));
        assert_eq!(parse_major("15.5", 2), Some(1550));
        assert_eq!(parse_major("15", 2), Some(1500));
        assert_eq!(parse_major("0.05", 2), Some(5));
        for bad in [
            "",
            ".5",
            "15.",
            "15.001",
            "-1",
            "1,5",
            "99999999999999999999",
        ] {
            assert_eq!(parse_major(bad, 2), None, "{bad:?}");
        }
        let m = Money::new(1650, "EUR");
        assert_eq!(m.to_string(), "16.50 EUR");
        assert_eq!(Money::new(1500, "JPY").to_string(), "1500 JPY");
    }

    #[test]
    fn money_serde_and_saturation() {
        let m = Money::new(1500, "EUR");
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v, serde_json::json!({"value": "1500", "currency": "EUR"}));
        assert_eq!(serde_json::from_value::<Money>(v).unwrap(), m);
        assert!(serde_json::from_str::<Money>(r#"{"value":1500,"currency":"EUR"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"value":"015","currency":"EUR"}"#).is_err());
        assert_eq!(
            Money::new(u64::MAX, "EUR").saturating_add(5).value,
            u64::MAX
        );
        assert_eq!(Money::new(3, "EUR").saturating_sub(5).value, 0);
        assert!(
            is_valid_currency("EUR") && !is_valid_currency("eur") && !is_valid_currency("EURO")
        );
    }
}
