//! `--threshold` expressions: pass/fail checks on a report that set the exit code for CI.
//!
//! ```text
//! THRESHOLD := METRIC OP VALUE
//! OP        := <  <=  >  >=  ==  !=
//! METRIC    := activated | failed | unsettled          devices (count, or % of devices)
//!            | requests [ (ENDPOINT) ]                 requests (count)
//!            | errors [ (CODE | ENDPOINT) ]            error answers (count, or % of requests)
//!            | pNN (SERIES) | max (SERIES) | mean (SERIES)   latency (needs ms, s or m)
//!            | OUTCOME | declined (DECLINE)          payments (count, or % of charges ended)
//! SERIES    := ENDPOINT | PAYREQ | time-to-activate | tta | lateness
//!            | charge-activated                     charges sent once every device had settled
//! ENDPOINT  := bootstrap | pairing-code | status | attest | keys | config
//!            | terminal-parameters | activate | claim
//! PAYREQ    := charge | refund | cancel | settle     payment requests: also in requests(…)
//!                                                   and errors(…) (% of that request kind)
//! OUTCOME   := charges | approved | partially-approved | declined | unknown
//!            | rejected | refunded | cancelled | refunds-skipped
//! DECLINE   := a decline code: do_not_honor, insufficient_funds, expired_card, …
//! CODE      := a Viopay code like 4029, or HTTP 502 | network | timeout | decode
//! VALUE     := NUMBER [ % | ms | s | m ]
//! ```
//!
//! Examples: `p99(status)<200ms`, `activated>=99.9%`, `errors(4029)<10`, `errors<0.1%`,
//! `p99(lateness)<250ms`, `max(time-to-activate)<=60s`, `p99(charge)<300ms`, `declined<=5%`,
//! `unknown==0`, `declined(do_not_honor)>0`. A metric with no data (no requests to that
//! endpoint; a payment metric of a run without `--charges-per-minute`) fails its threshold.

use std::fmt;

use super::pay_stats::PayOp;
use super::report::Report;
use super::stats::Endpoint;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Series {
    Endpoint(Endpoint),
    Pay(PayOp),
    /// Charges sent once the whole fleet had settled.
    ChargeActivated,
    TimeToActivate,
    Lateness,
}

#[derive(Debug, Clone, PartialEq)]
enum Stat {
    Quantile(f64),
    Max,
    Mean,
}

#[derive(Debug, Clone, PartialEq)]
enum Metric {
    Devices(&'static str),
    Requests(Option<Endpoint>),
    Errors(Option<ErrorScope>),
    Latency(Stat, Series),
    PayRequests(PayOp),
    PayErrors(PayOp),
    /// A payment outcome; `declined(CODE)` is `Outcome(Declined, Some(code))`.
    Outcome(PayCount, Option<String>),
}

/// The payment outcomes a threshold can count.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PayCount {
    Charges,
    Approved,
    PartiallyApproved,
    Declined,
    Unknown,
    Rejected,
    Refunded,
    Cancelled,
    RefundsSkipped,
}

impl PayCount {
    const ALL: [(&'static str, PayCount); 9] = [
        ("charges", PayCount::Charges),
        ("approved", PayCount::Approved),
        ("partially-approved", PayCount::PartiallyApproved),
        ("declined", PayCount::Declined),
        ("unknown", PayCount::Unknown),
        ("rejected", PayCount::Rejected),
        ("refunded", PayCount::Refunded),
        ("cancelled", PayCount::Cancelled),
        ("refunds-skipped", PayCount::RefundsSkipped),
    ];

    fn from_name(s: &str) -> Option<PayCount> {
        PayCount::ALL.iter().find(|(n, _)| *n == s).map(|(_, o)| *o)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum ErrorScope {
    Endpoint(Endpoint),
    Code(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Count,
    Percent,
    Ms,
}

/// A parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    text: String,
    metric: Metric,
    op: Op,
    value: f64,
    unit: Unit,
}

/// How one threshold came out.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub threshold: String,
    /// The measured value, as shown to people (`12.3ms`, `99.95%`, `3`, `no data`).
    pub actual: String,
    pub pass: bool,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.pass { "pass" } else { "FAIL" };
        write!(f, "{mark}  {}  (actual {})", self.threshold, self.actual)
    }
}

/// The checks of a run given no `--threshold`: no device failed, and at least one reached the
/// run's goal (activated; with `--no-claim`, which never activates anyone, a status poll
/// answered), so that a fleet where nothing works never passes.
pub fn implicit_outcomes(r: &Report) -> Vec<Outcome> {
    let d = &r.devices;
    let failed = Outcome {
        threshold: "failed==0".into(),
        actual: d.failed.to_string(),
        pass: d.failed == 0,
    };
    let goal = if r.config.claim.is_some() {
        Outcome {
            threshold: "activated>0".into(),
            actual: format!("{} of {}", d.activated, d.total),
            pass: d.activated > 0,
        }
    } else {
        let answered = r
            .endpoints
            .get(posemu_device::Step::Status.name())
            .map_or(0, |e| e.requests.saturating_sub(e.errors));
        Outcome {
            threshold: "a status poll answered (--no-claim)".into(),
            actual: answered.to_string(),
            pass: answered > 0,
        }
    };
    vec![failed, goal]
}

const EXAMPLES: &str =
    "expected METRIC OP VALUE, e.g. p99(status)<200ms, activated>=99.9%, errors(4029)<10";

fn series(arg: &str) -> Result<Series, String> {
    match arg {
        "time-to-activate" | "tta" => Ok(Series::TimeToActivate),
        "lateness" | "poll-lateness" => Ok(Series::Lateness),
        "charge-activated" => Ok(Series::ChargeActivated),
        _ => Endpoint::from_name(arg)
            .map(Series::Endpoint)
            .or_else(|| PayOp::from_name(arg).map(Series::Pay))
            .ok_or_else(|| {
                format!(
                    "{arg:?} is not an endpoint ({}), a payment request ({}) nor time-to-activate, lateness or charge-activated",
                    Endpoint::all()
                        .map(|e| e.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                    PayOp::ALL.map(|o| o.name()).join(", ")
                )
            }),
    }
}

impl Threshold {
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let fail = |why: String| format!("threshold {text:?}: {why}; {EXAMPLES}");
        let t = text.trim();
        let at = t
            .find(['<', '>', '=', '!'])
            .ok_or_else(|| fail("no comparison (<, <=, >, >=, ==, !=)".into()))?;
        let (lhs, rest) = t.split_at(at);
        let (op, rhs) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .iter()
        .find_map(|(s, op)| rest.strip_prefix(s).map(|r| (*op, r)))
        .ok_or_else(|| fail(format!("{rest:?} does not start with a comparison")))?;
        let metric = Self::metric(lhs.trim()).map_err(&fail)?;
        let (value, unit) = Self::value(rhs.trim()).map_err(&fail)?;
        match (&metric, unit) {
            (Metric::Latency(..), Unit::Ms) => {}
            (Metric::Latency(..), _) => {
                return Err(fail("a latency needs a time unit (ms, s or m)".into()))
            }
            (_, Unit::Ms) => return Err(fail("a count takes no time unit".into())),
            (Metric::Requests(_) | Metric::PayRequests(_), Unit::Percent) => {
                return Err(fail("requests are a count, not a percentage".into()))
            }
            (Metric::Outcome(PayCount::Charges, _), Unit::Percent) => {
                return Err(fail("charges are a count, not a percentage".into()))
            }
            _ => {}
        }
        Ok(Threshold {
            text: t.to_string(),
            metric,
            op,
            value,
            unit,
        })
    }

    fn metric(s: &str) -> Result<Metric, String> {
        let (name, arg) = match s.split_once('(') {
            Some((n, a)) => {
                let a = a
                    .strip_suffix(')')
                    .ok_or_else(|| format!("{s:?} lacks its closing parenthesis"))?;
                (n.trim(), Some(a.trim()))
            }
            None => (s, None),
        };
        match (name, arg) {
            ("activated" | "failed" | "unsettled", None) => Ok(Metric::Devices(match name {
                "activated" => "activated",
                "failed" => "failed",
                _ => "unsettled",
            })),
            ("requests", None) => Ok(Metric::Requests(None)),
            ("requests", Some(a)) => match PayOp::from_name(a) {
                Some(op) => Ok(Metric::PayRequests(op)),
                None => Endpoint::from_name(a)
                    .map(|e| Metric::Requests(Some(e)))
                    .ok_or_else(|| format!("{a:?} is not an endpoint")),
            },
            ("errors", None) => Ok(Metric::Errors(None)),
            ("errors", Some("")) => Err("errors() needs a code or an endpoint".into()),
            ("errors", Some(a)) if PayOp::from_name(a).is_some() => Ok(Metric::PayErrors(
                PayOp::from_name(a).unwrap_or(PayOp::Charge),
            )),
            ("declined", Some(code)) => {
                if code.is_empty()
                    || code.len() > 64
                    || !code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                {
                    return Err(format!("{code:?} is not a decline code like do_not_honor"));
                }
                Ok(Metric::Outcome(PayCount::Declined, Some(code.to_string())))
            }
            (o, None) if PayCount::from_name(o).is_some() => Ok(Metric::Outcome(
                PayCount::from_name(o).unwrap_or(PayCount::Charges),
                None,
            )),
            ("errors", Some(a)) => Ok(Metric::Errors(Some(match Endpoint::from_name(a) {
                Some(e) => ErrorScope::Endpoint(e),
                None => ErrorScope::Code(a.to_string()),
            }))),
            ("max" | "mean", Some(a)) => {
                let stat = if name == "max" { Stat::Max } else { Stat::Mean };
                Ok(Metric::Latency(stat, series(a)?))
            }
            (p, Some(a)) if p.starts_with('p') => {
                let q: f64 = p[1..]
                    .parse()
                    .ok()
                    .filter(|q: &f64| *q > 0.0 && *q <= 100.0)
                    .ok_or_else(|| format!("{p:?} is not a percentile like p50, p99 or p99.9"))?;
                Ok(Metric::Latency(Stat::Quantile(q / 100.0), series(a)?))
            }
            _ => Err(format!("unknown metric {s:?}")),
        }
    }

    fn value(s: &str) -> Result<(f64, Unit), String> {
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a number with an optional unit"))?;
        let (scale, unit) = match unit.trim() {
            "" => (1.0, Unit::Count),
            "%" => (1.0, Unit::Percent),
            "ms" => (1.0, Unit::Ms),
            "s" => (1000.0, Unit::Ms),
            "m" => (60_000.0, Unit::Ms),
            u => return Err(format!("unknown unit {u:?} (use %, ms, s or m)")),
        };
        Ok((n * scale, unit))
    }

    /// Checks the threshold against a report.
    pub fn check(&self, r: &Report) -> Outcome {
        let measured: Option<(f64, String)> = match &self.metric {
            Metric::Devices(which) => {
                let n = match *which {
                    "activated" => r.devices.activated,
                    "failed" => r.devices.failed,
                    _ => r.devices.unsettled,
                };
                self.count_or_share(n, r.devices.total)
            }
            Metric::Requests(e) => {
                let n = match e {
                    None => r.requests,
                    Some(e) => r.endpoints.get(e.name()).map_or(0, |x| x.requests),
                };
                Some((n as f64, n.to_string()))
            }
            Metric::Errors(scope) => {
                let (n, of) = match scope {
                    None => (r.errors, r.requests),
                    Some(ErrorScope::Endpoint(e)) => r
                        .endpoints
                        .get(e.name())
                        .map_or((0, 0), |x| (x.errors, x.requests)),
                    Some(ErrorScope::Code(c)) => {
                        (r.errors_by_code.get(c).copied().unwrap_or(0), r.requests)
                    }
                };
                self.count_or_share(n, of)
            }
            Metric::Latency(stat, series) => {
                let dist = match series {
                    Series::Endpoint(e) => r.endpoints.get(e.name()).map(|x| &x.latency),
                    Series::Pay(op) => r
                        .payments
                        .as_ref()
                        .and_then(|p| p.requests_by_kind.get(op.name()))
                        .map(|x| &x.latency),
                    Series::ChargeActivated => {
                        r.payments.as_ref().map(|p| &p.charge_after_activation)
                    }
                    Series::TimeToActivate => Some(&r.time_to_activate),
                    Series::Lateness => Some(&r.poll_lateness),
                };
                dist.and_then(|d| {
                    let h = &d.histogram_us;
                    let us = match stat {
                        Stat::Quantile(q) => h.quantile(*q).map(|v| v as f64),
                        Stat::Max => h.max().map(|v| v as f64),
                        Stat::Mean => h.mean(),
                    }?;
                    let ms = us / 1000.0;
                    Some((ms, super::report::fmt_ms(Some(ms))))
                })
            }
            Metric::PayRequests(op) => r.payments.as_ref().map(|p| {
                let n = p.requests_by_kind.get(op.name()).map_or(0, |x| x.requests);
                (n as f64, n.to_string())
            }),
            Metric::PayErrors(op) => r.payments.as_ref().and_then(|p| {
                let (n, of) = p
                    .requests_by_kind
                    .get(op.name())
                    .map_or((0, 0), |x| (x.errors, x.requests));
                self.count_or_share(n, of)
            }),
            Metric::Outcome(which, code) => r.payments.as_ref().and_then(|p| {
                let o = &p.outcomes;
                let n = match which {
                    PayCount::Charges => o.charges,
                    PayCount::Approved => o.approved,
                    PayCount::PartiallyApproved => o.partially_approved,
                    PayCount::Declined => match code {
                        None => o.declined,
                        Some(c) => o.declined_by_code.get(c).copied().unwrap_or(0),
                    },
                    PayCount::Unknown => o.unknown,
                    PayCount::Rejected => o.rejected,
                    PayCount::Refunded => o.refunded,
                    PayCount::Cancelled => o.cancelled,
                    PayCount::RefundsSkipped => o.refunds_skipped,
                };
                self.count_or_share(n, o.charges)
            }),
        };
        match measured {
            Some((v, shown)) => Outcome {
                threshold: self.text.clone(),
                actual: shown,
                pass: self.op.holds(v, self.value),
            },
            None => Outcome {
                threshold: self.text.clone(),
                actual: "no data".into(),
                pass: false,
            },
        }
    }

    fn count_or_share(&self, n: u64, of: u64) -> Option<(f64, String)> {
        if self.unit == Unit::Percent {
            if of == 0 {
                return None;
            }
            let p = n as f64 * 100.0 / of as f64;
            Some((p, format!("{p:.3}% ({n} of {of})")))
        } else {
            Some((n as f64, n.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_parses_what_the_docs_show() {
        for ok in [
            "p99(status)<200ms",
            "activated>=99.9%",
            "errors(4029)<10",
            "errors<0.1%",
            "errors(status) == 0",
            "p99.9(lateness)<250ms",
            "max(time-to-activate)<=60s",
            "mean(tta)<1m",
            "failed==0",
            "requests(claim)>=1",
            "unsettled!=0",
            "p99(charge)<300ms",
            "p99(charge-activated)<50ms",
            "declined<=5%",
            "unknown==0",
            "declined(do_not_honor)>0",
            "errors(refund)==0",
            "errors(charge)<1%",
            "requests(settle)>=1",
            "refunds-skipped==0",
            "partially-approved>=1",
        ] {
            Threshold::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        let cases = [
            ("p99(status)", "no comparison"),
            ("p99(stat)<1ms", "not an endpoint"),
            ("p99(status)<200", "needs a time unit"),
            ("activated>=5ms", "no time unit"),
            ("happiness>1", "unknown metric"),
            ("p0(status)<1ms", "not a percentile"),
            ("p99(status<1ms", "closing parenthesis"),
            ("errors<ten", "not a number"),
            ("errors<10kg", "unknown unit"),
            ("requests>5%", "not a percentage"),
            ("errors=>3", "comparison"),
            ("p99(charges)<1ms", "payment request"),
            ("declined(Do Not)>1", "not a decline code"),
            ("charges>5%", "not a percentage"),
            ("requests(charge)>1%", "not a percentage"),
            ("unknown<3ms", "no time unit"),
        ];
        for (bad, why) in cases {
            let e = Threshold::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains("e.g. p99(status)<200ms"), "{e}");
        }
    }
}
