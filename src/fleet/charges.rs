//! The fleet's payments: how often each activated terminal charges (`--charges-per-minute`,
//! Poisson arrivals) and what kind of charge it makes (`--charge-mix`).
//!
//! ```text
//! MIX    := KIND=WEIGHT [, KIND=WEIGHT]...     weights are relative (they need not add up to 100)
//! KIND   := approve    an approved charge (an amount with no magic ending)
//!         | decline    declined by a magic amount (spec 7.7): ..05 do_not_honor,
//!                      ..51 insufficient_funds, ..54 expired_card, ..91 issuer_unavailable
//!         | partial    ..10 with allow_partial_approval: approved for half (partially approved)
//!         | late       ..68: approved, but answered 504; the retry with the same
//!                      Idempotency-Key gets the approved charge (never a second payment)
//!         | refund     an approved charge, settled through POST /sandbox/settle, refunded in full
//!                      (a server without that helper: counted as skipped, not failed)
//!         | cancel     an approved charge, cancelled at once
//! ```
//!
//! Example: `approve=90,decline=5,refund=3,cancel=2`. The default is `approve=100`.

use std::fmt;
use std::time::Duration;

use posemu_device::payment::{ChargeInput, PayOp};
use posemu_protocol::api::Secret;
use posemu_protocol::payments::wire::CardData;
use posemu_protocol::payments::EntryMode;

/// The kinds of charge of a mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChargeKind {
    Approve,
    Decline,
    Partial,
    Late,
    Refund,
    Cancel,
}

impl ChargeKind {
    pub const ALL: [ChargeKind; 6] = [
        ChargeKind::Approve,
        ChargeKind::Decline,
        ChargeKind::Partial,
        ChargeKind::Late,
        ChargeKind::Refund,
        ChargeKind::Cancel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ChargeKind::Approve => "approve",
            ChargeKind::Decline => "decline",
            ChargeKind::Partial => "partial",
            ChargeKind::Late => "late",
            ChargeKind::Refund => "refund",
            ChargeKind::Cancel => "cancel",
        }
    }

    fn from_name(s: &str) -> Option<ChargeKind> {
        ChargeKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// Endings of `amount.value` that the sandbox decides on (spec 7.7 rows 8–14 and the `65` PIN
/// rule); an approved charge avoids all of them.
const MAGIC_ENDINGS: [u64; 8] = [5, 10, 51, 54, 55, 65, 68, 91];
/// The declines a `decline` charge draws from: (ending, decline code).
pub const DECLINE_ENDINGS: [(u64, &str); 4] = [
    (5, "do_not_honor"),
    (51, "insufficient_funds"),
    (54, "expired_card"),
    (91, "issuer_unavailable"),
];
const PARTIAL_ENDING: u64 = 10;
const LATE_ENDING: u64 = 68;

/// A parsed `--charge-mix`: kinds with their shares (summing to 1).
#[derive(Debug, Clone, PartialEq)]
pub struct ChargeMix {
    shares: Vec<(ChargeKind, f64)>,
}

impl Default for ChargeMix {
    fn default() -> Self {
        ChargeMix {
            shares: vec![(ChargeKind::Approve, 1.0)],
        }
    }
}

const MIX_EXAMPLE: &str = "e.g. approve=90,decline=5,refund=3,cancel=2";

impl ChargeMix {
    pub fn parse(s: &str) -> Result<ChargeMix, String> {
        let kinds = || {
            ChargeKind::ALL
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut raw: Vec<(ChargeKind, f64)> = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let (k, w) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not KIND=WEIGHT; {MIX_EXAMPLE}"))?;
            let kind = ChargeKind::from_name(k.trim())
                .ok_or_else(|| format!("{:?} is not a kind of charge ({})", k.trim(), kinds()))?;
            let w: f64 = w
                .trim()
                .trim_end_matches('%')
                .parse()
                .ok()
                .filter(|w: &f64| w.is_finite() && *w >= 0.0 && *w <= 1e6)
                .ok_or_else(|| format!("{:?} is not a weight (a number from 0)", w.trim()))?;
            if raw.iter().any(|(x, _)| *x == kind) {
                return Err(format!("{} is given twice", kind.name()));
            }
            raw.push((kind, w));
        }
        let total: f64 = raw.iter().map(|(_, w)| w).sum();
        if total <= 0.0 {
            return Err(format!("the weights add up to 0; {MIX_EXAMPLE}"));
        }
        raw.retain(|(_, w)| *w > 0.0);
        raw.sort_by_key(|a| a.0);
        Ok(ChargeMix {
            shares: raw.into_iter().map(|(k, w)| (k, w / total)).collect(),
        })
    }

    /// The kind at `u` in [0, 1).
    pub fn pick(&self, u: f64) -> ChargeKind {
        let mut acc = 0.0;
        for (k, share) in &self.shares {
            acc += share;
            if u < acc {
                return *k;
            }
        }
        self.shares.last().map_or(ChargeKind::Approve, |(k, _)| *k)
    }
}

impl fmt::Display for ChargeMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .shares
            .iter()
            .map(|(k, s)| format!("{}={}", k.name(), (s * 1000.0).round() / 10.0))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// [POSEMU] the most a terminal may charge per minute (10 a second).
pub const MAX_CHARGES_PER_MINUTE: f64 = 600.0;

/// Parses `--charges-per-minute`: a positive number up to [`MAX_CHARGES_PER_MINUTE`].
pub fn parse_rate(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0 && *r <= MAX_CHARGES_PER_MINUTE)
        .ok_or_else(|| {
            format!("{s:?} is not a rate above 0 and at most {MAX_CHARGES_PER_MINUTE} per minute")
        })
}

/// What every terminal's charging follows.
#[derive(Debug, Clone, PartialEq)]
pub struct ChargePlan {
    /// Charges per minute per activated terminal.
    pub per_minute: f64,
    pub mix: ChargeMix,
}

impl ChargePlan {
    /// The gap to the next charge: exponential with mean 1/rate, from `u` in [0, 1); at most
    /// an hour so one unlucky draw cannot park a terminal.
    pub fn gap(&self, u: f64) -> Duration {
        let mean_ms = 60_000.0 / self.per_minute;
        let ms = -(1.0 - u.clamp(0.0, 0.999_999_999)).ln() * mean_ms;
        Duration::from_millis(ms.clamp(0.0, 3_600_000.0) as u64)
    }

    pub fn describe(&self) -> String {
        format!("{}/min per terminal, mix {}", self.per_minute, self.mix)
    }
}

/// The test card every fleet charge uses (spec 7.7): Visa `4242…`, PIN `1234`.
const CARD_PAN: &str = "4242424242424242";
const CARD_PIN: &str = "1234";

/// The charge a terminal makes for `kind`. `r1`, `r2` are random numbers; `exp_year` a year
/// in the future.
pub fn charge_for(kind: ChargeKind, r1: u64, r2: u64, exp_year: u32) -> PayOp {
    let units = 1 + r1 % 200; // 1.00 to 200.99
    let ending = match kind {
        ChargeKind::Decline => DECLINE_ENDINGS[(r2 % DECLINE_ENDINGS.len() as u64) as usize].0,
        ChargeKind::Partial => PARTIAL_ENDING,
        ChargeKind::Late => LATE_ENDING,
        ChargeKind::Approve | ChargeKind::Refund | ChargeKind::Cancel => {
            let mut e = r2 % 100;
            while MAGIC_ENDINGS.contains(&e) {
                e = (e + 1) % 100;
            }
            e
        }
    };
    PayOp::Charge(ChargeInput {
        amount: units * 100 + ending,
        tip: None,
        // swipe: no PIN asked for by the amount (spec 7.7); the PIN is given anyway
        entry_mode: EntryMode::Swipe,
        card: CardData {
            pan: CARD_PAN.into(),
            exp_month: 12,
            exp_year,
        },
        reference: None,
        allow_partial: kind == ChargeKind::Partial,
        pin: Some(Secret(CARD_PIN.into())),
        idempotency_key: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_normalize_and_pick() {
        let m = ChargeMix::parse("approve=90, decline=5,refund=3,cancel=2").unwrap();
        assert_eq!(m.pick(0.0), ChargeKind::Approve);
        assert_eq!(m.pick(0.899), ChargeKind::Approve);
        assert_eq!(m.pick(0.91), ChargeKind::Decline);
        assert_eq!(m.pick(0.96), ChargeKind::Refund);
        assert_eq!(m.pick(0.99), ChargeKind::Cancel);
        assert_eq!(m.to_string(), "approve=90,decline=5,refund=3,cancel=2");
        let m = ChargeMix::parse("decline=1,late=0").unwrap();
        assert_eq!(m.pick(0.5), ChargeKind::Decline);
        for (bad, why) in [
            ("approve", "KIND=WEIGHT"),
            ("buy=3", "not a kind"),
            ("approve=-1", "not a weight"),
            ("approve=x", "not a weight"),
            ("approve=1,approve=2", "twice"),
            ("approve=0", "add up to 0"),
            ("approve=inf", "not a weight"),
        ] {
            let e = ChargeMix::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn amounts_follow_the_magic_table() {
        let amount = |op: PayOp| match op {
            PayOp::Charge(c) => c.amount,
            _ => unreachable!(),
        };
        for r in 0..500u64 {
            let a = amount(charge_for(ChargeKind::Approve, r * 7, r, 2030));
            assert!(!MAGIC_ENDINGS.contains(&(a % 100)), "{a}");
            assert!((100..=20099).contains(&a));
            let d = amount(charge_for(ChargeKind::Decline, r, r, 2030));
            assert!(DECLINE_ENDINGS.iter().any(|(e, _)| *e == d % 100), "{d}");
        }
        assert_eq!(amount(charge_for(ChargeKind::Late, 0, 0, 2030)) % 100, 68);
        assert_eq!(
            amount(charge_for(ChargeKind::Partial, 0, 0, 2030)) % 100,
            10
        );
    }

    #[test]
    fn rates_and_gaps() {
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("601").is_err());
        assert!(parse_rate("NaN").is_err());
        let p = ChargePlan {
            per_minute: 60.0,
            mix: ChargeMix::default(),
        };
        // the mean gap of the exponential is one second at 60 a minute
        let n = 10_000;
        let mean: f64 = (0..n)
            .map(|i| p.gap((i as f64 + 0.5) / n as f64).as_secs_f64())
            .sum::<f64>()
            / n as f64;
        assert!((mean - 1.0).abs() < 0.02, "{mean}");
        assert!(p.gap(1.0) <= Duration::from_secs(3600));
    }
}
