//! The payment commands' flags: checked as clap parses them, with errors that say what is
//! wrong; amounts once the terminal's currency is known.

use posemu_client::payments::is_safe_charge_id;
use posemu_protocol::payments::money::{currency_decimals, MAX_REQUEST_DIGITS};
use posemu_protocol::payments::{is_valid_idempotency_key, parse_major, EntryMode, RefundReason};

pub(super) fn parse_amount_syntax(s: &str) -> Result<String, String> {
    // the currency (and so its decimals) is known once the device is activated; 3 is the most
    parse_major(s, 3)
        .map(|_| s.to_string())
        .ok_or_else(|| format!("{s:?} is not an amount in major units such as 15.00 or 0.68"))
}

pub(super) fn parse_pan(s: &str) -> Result<String, String> {
    if !(12..=19).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a card number is 12 to 19 digits, nothing else".into());
    }
    Ok(s.to_string())
}

pub(super) fn parse_expiry(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?} is not an expiry MM/YY or MM/YYYY, e.g. 12/30");
    let (m, y) = s.split_once('/').ok_or_else(bad)?;
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(m) || !digits(y) || m.len() > 2 || !(y.len() == 2 || y.len() == 4) {
        return Err(bad());
    }
    let month: u32 = m.parse().map_err(|_| bad())?;
    let mut year: u32 = y.parse().map_err(|_| bad())?;
    if y.len() == 2 {
        year += 2000;
    }
    if !(1..=12).contains(&month) || !(2000..=2099).contains(&year) {
        return Err(bad());
    }
    Ok((month, year))
}

pub(super) fn parse_entry(s: &str) -> Result<EntryMode, String> {
    EntryMode::parse(s).ok_or_else(|| format!("{s:?} is not chip, contactless, swipe or manual"))
}

pub(super) fn parse_pin(s: &str) -> Result<String, String> {
    if !(4..=12).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a PIN is 4 to 12 digits".into());
    }
    Ok(s.to_string())
}

pub(super) fn parse_reference(s: &str) -> Result<String, String> {
    if !(1..=64).contains(&s.len()) || !s.bytes().all(|b| (0x20..=0x7E).contains(&b)) {
        return Err("a reference is 1 to 64 printable ASCII characters".into());
    }
    Ok(s.to_string())
}

pub(super) fn parse_key(s: &str) -> Result<String, String> {
    if !is_valid_idempotency_key(s) {
        return Err("an Idempotency-Key is 1 to 255 visible ASCII characters".into());
    }
    Ok(s.to_string())
}

pub(super) fn parse_charge_id(s: &str) -> Result<String, String> {
    if !is_safe_charge_id(s) {
        return Err(format!(
            "{s:?} is not a charge id such as ch_4fR9kT2mXq7LbN3vZp8sWc1D"
        ));
    }
    Ok(s.to_string())
}

pub(super) fn parse_reason(s: &str) -> Result<RefundReason, String> {
    RefundReason::parse(s).ok_or_else(|| {
        "a reason is requested_by_customer, duplicate, fraudulent or other".to_string()
    })
}

/// `s` in minor units of `currency`: its decimals, more than 0, at most 10 digits.
pub(super) fn minor_units(
    flag: &str,
    s: &str,
    currency: &str,
    zero_ok: bool,
) -> Result<u64, String> {
    let decimals = currency_decimals(currency);
    let v = parse_major(s, decimals).ok_or_else(|| {
        format!("{flag} {s}: the terminal's currency {currency} has {decimals} decimals")
    })?;
    let max = 10u64.pow(MAX_REQUEST_DIGITS as u32) - 1;
    if (v == 0 && !zero_ok) || v > max {
        return Err(format!(
            "{flag} {s}: must be more than 0 and at most {max} minor units"
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked_with_clear_errors() {
        assert!(parse_amount_syntax("15.00").is_ok() && parse_amount_syntax("0.68").is_ok());
        for bad in ["", "15,00", "-1", "1.2345", "abc", ".5"] {
            assert!(
                parse_amount_syntax(bad).unwrap_err().contains("15.00"),
                "{bad:?}"
            );
        }
        assert_eq!(minor_units("--amount", "15.00", "EUR", false), Ok(1500));
        assert_eq!(minor_units("--amount", "0.68", "EUR", false), Ok(68));
        assert!(minor_units("--amount", "1.005", "EUR", false)
            .unwrap_err()
            .contains("2 decimals"));
        assert!(minor_units("--amount", "0", "EUR", false).is_err());
        assert_eq!(minor_units("--tip", "0", "EUR", true), Ok(0));
        assert!(minor_units("--amount", "100000000.00", "EUR", false).is_err());
        assert_eq!(parse_expiry("12/30"), Ok((12, 2030)));
        assert_eq!(parse_expiry("1/2031"), Ok((1, 2031)));
        for bad in ["13/30", "00/30", "12-30", "12/3", "12/20301", "a/30"] {
            assert!(parse_expiry(bad).is_err(), "{bad:?}");
        }
        assert!(parse_pan("4242 4242 4242 4242").is_err());
        assert!(parse_pan("42424242424").is_err());
        assert!(parse_pin("12a4").is_err() && parse_pin("123").is_err());
        assert!(parse_charge_id("ch_../x").is_err());
        assert!(parse_reference("a\nb").is_err());
        assert!(parse_key("").is_err());
        assert_eq!(parse_reason("duplicate"), Ok(RefundReason::Duplicate));
    }
}
