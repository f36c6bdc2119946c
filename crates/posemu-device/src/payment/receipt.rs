//! The receipt of a payment as a printed slip (narrow, centred header, dotted rules), for
//! `posemu pay` and the POS screen. Pure formatting; text from the server (merchant name,
//! location) has its control characters replaced, so it cannot drive a terminal.

use serde_json::Value;

use posemu_protocol::payments::{Charge, ChargeStatus, Money, Refund};

/// Characters per line of the slip.
pub const WIDTH: usize = 32;
const RULE: &str = "································";

/// Control characters (and other invisible formatting) replaced by `?`, and cut to `max`.
pub fn printable(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(max)
        .collect()
}

fn center(s: &str) -> String {
    let s = printable(s, WIDTH);
    let pad = WIDTH.saturating_sub(s.chars().count()) / 2;
    format!("{}{s}", " ".repeat(pad))
}

/// `left` and `right` on one line, right-aligned to the width (at least one space between).
fn lr(left: &str, right: &str) -> String {
    let (l, r) = (printable(left, WIDTH), printable(right, WIDTH));
    let gap = WIDTH
        .saturating_sub(l.chars().count() + r.chars().count())
        .max(1);
    format!("{l}{}{r}", " ".repeat(gap))
}

fn money(m: &Money) -> String {
    format!("{} {}", m.currency, m.major())
}

fn brand(c: &Charge) -> String {
    let b = c.card.brand.as_str();
    let mut chars = b.chars();
    match chars.next() {
        Some(f) => f.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn header(config: Option<&Value>, kind: &str, at: &str) -> Vec<String> {
    let text = |path: &[&str]| -> Option<String> {
        let mut v = config?;
        for p in path {
            v = v.get(p)?;
        }
        v.as_str().map(str::to_string)
    };
    let mut lines = Vec::new();
    let merchant = text(&["merchant", "name"]).unwrap_or_else(|| "MERCHANT".into());
    lines.push(center(&merchant.to_uppercase()));
    let place: Vec<String> = [text(&["location", "name"]), text(&["location", "city"])]
        .into_iter()
        .flatten()
        .collect();
    if !place.is_empty() {
        lines.push(center(&place.join(" · ")));
    }
    lines.push(RULE.into());
    lines.push(lr(kind, "MERCHANT COPY"));
    // RFC 3339 UTC from the server: date and time as printed, in UTC
    let (date, time) = at.split_once('T').unwrap_or((at, ""));
    let time = time.trim_end_matches('Z');
    lines.push(lr(date, &format!("{time} UTC")));
    lines
}

/// The slip of a charge (approved, declined or cancelled).
pub fn charge(c: &Charge, config: Option<&Value>) -> Vec<String> {
    let kind = if c.status == ChargeStatus::Cancelled {
        "VOID"
    } else {
        "SALE"
    };
    let mut l = header(
        config,
        kind,
        c.cancelled_at.as_deref().unwrap_or(&c.created_at),
    );
    l.push(lr(
        &format!("Terminal {}", c.terminal_id),
        &format!("STAN {}", c.gateway.stan),
    ));
    l.push(lr(
        &format!("{}  {}", brand(c), c.card.masked_pan),
        &c.entry_mode.as_str().to_uppercase(),
    ));
    l.push(lr(
        &format!("Auth {}", c.auth_code.as_deref().unwrap_or("------")),
        &format!("RRN {}", c.gateway.rrn),
    ));
    l.push(RULE.into());
    l.push(lr("Amount", &money(&c.amount)));
    if c.tip.value > 0 {
        l.push(lr("Tip", &money(&c.tip)));
    }
    l.push(lr("TOTAL", &money(&c.total)));
    if c.partial_approval {
        if let Some(a) = &c.approved_amount {
            l.push(lr("APPROVED (PARTIAL)", &money(a)));
        }
    }
    l.push(RULE.into());
    let verdict = match (c.status, c.decline_code) {
        (ChargeStatus::Declined, Some(d)) => {
            l.push(center(&format!("DECLINED · {}", c.gateway.response_code)));
            d.words().to_string()
        }
        (ChargeStatus::Declined, None) => {
            l.push(center(&format!("DECLINED · {}", c.gateway.response_code)));
            String::new()
        }
        (ChargeStatus::Cancelled, _) => {
            l.push(center("CANCELLED"));
            "The cardholder is not charged".into()
        }
        _ => {
            l.push(center(&format!("APPROVED · {}", c.gateway.response_code)));
            if c.cvm == posemu_protocol::payments::wire::Cvm::OnlinePin {
                "PIN verified".into()
            } else {
                "No cardholder signature".into()
            }
        }
    };
    if !verdict.is_empty() {
        l.push(center(&verdict));
    }
    l.push(center(&c.charge_id));
    l
}

/// The slip of a refund.
pub fn refund(r: &Refund, config: Option<&Value>) -> Vec<String> {
    let mut l = header(config, "REFUND", &r.created_at);
    if let Some(c) = &r.charge {
        l.push(lr(
            &format!("Terminal {}", c.terminal_id),
            &format!("RRN {}", c.gateway.rrn),
        ));
        l.push(lr(
            &format!("{}  {}", brand(c), c.card.masked_pan),
            &c.entry_mode.as_str().to_uppercase(),
        ));
    }
    l.push(RULE.into());
    l.push(lr("REFUND", &money(&r.amount)));
    if let Some(c) = &r.charge {
        l.push(lr("Refunded so far", &money(&c.refunded_amount)));
    }
    l.push(RULE.into());
    l.push(center(&format!("REFUND {}", r.status.to_uppercase())));
    l.push(center(&r.refund_id));
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fit_and_control_characters_never_pass() {
        assert_eq!(lr("Amount", "EUR 15.00").chars().count(), WIDTH);
        assert!(lr(&"x".repeat(40), "y").chars().count() <= 2 * WIDTH + 1);
        assert_eq!(printable("A\x1b[2JB\n", 10), "A?[2JB?");
        let cfg = serde_json::json!({"merchant": {"name": "Evil\x1b]52;c;AAAA\x07"}});
        let h = header(Some(&cfg), "SALE", "2025-12-13T14:30:00Z");
        assert!(h.iter().all(|l| !l.chars().any(char::is_control)), "{h:?}");
        assert!(h[3].starts_with("2025-12-13") && h[3].ends_with("14:30:00 UTC"));
    }
}
