//! Device faults as fleet-wide probabilities (spec section 6): `--faulty 1%:bad-secret` makes
//! about one device in a hundred sign its attestations wrongly, so QA can see how a server
//! answers a fleet with a few misbehaving terminals among the good ones.

use std::fmt;
use std::time::Duration;

use posemu_client::{DeviceFaults, FaultHeader};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    BadSecret,
    ReuseNonce,
    ClockSkew(i64),
    DropHeader(FaultHeader),
    MalformHeader(FaultHeader),
    Timeout(Duration),
}

/// `P:FAULT`: each device carries `fault` with probability `p`, drawn once when it starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultShare {
    pub probability: f64,
    pub fault: Fault,
}

const KINDS: &str = "bad-secret, reuse-nonce, clock-skew=DURATION, drop-header=NAME, \
                     malform-header=NAME, timeout=DURATION";

impl FaultShare {
    /// `1%:bad-secret`, `0.02:clock-skew=10m`, `50%:drop-header=X-Client-Type`.
    pub fn parse(s: &str) -> Result<FaultShare, String> {
        let err = |why: String| {
            format!("{s:?}: {why} (expected SHARE:FAULT like 1%:bad-secret; faults: {KINDS})")
        };
        let (p, f) = s
            .split_once(':')
            .ok_or_else(|| err("no ':' between share and fault".into()))?;
        let p = p.trim();
        let probability = match p.strip_suffix('%') {
            Some(pct) => pct.trim().parse::<f64>().map(|v| v / 100.0),
            None => p.parse::<f64>(),
        }
        .ok()
        .filter(|v| (0.0..=1.0).contains(v))
        .ok_or_else(|| err(format!("{p:?} is not a share from 0 to 1 (or 0% to 100%)")))?;
        let (name, arg) = match f.trim().split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (f.trim(), None),
        };
        let header = |a: Option<&str>| -> Result<FaultHeader, String> {
            a.ok_or_else(|| err(format!("{name} needs =HEADER")))?
                .parse::<FaultHeader>()
                .map_err(|e| err(e.to_string()))
        };
        let fault = match (name, arg) {
            ("bad-secret", None) => Fault::BadSecret,
            ("reuse-nonce", None) => Fault::ReuseNonce,
            ("clock-skew", Some(a)) => {
                Fault::ClockSkew(posemu_protocol::duration::parse_signed(a).map_err(err)?)
            }
            ("timeout", Some(a)) => {
                Fault::Timeout(posemu_protocol::duration::parse(a).map_err(err)?)
            }
            ("drop-header", a) => Fault::DropHeader(header(a)?),
            ("malform-header", a) => Fault::MalformHeader(header(a)?),
            _ => return Err(err(format!("unknown fault {f:?}"))),
        };
        Ok(FaultShare { probability, fault })
    }

    pub fn apply(&self, f: &mut DeviceFaults) {
        match self.fault {
            Fault::BadSecret => f.wrong_secret = true,
            Fault::ReuseNonce => f.reuse_nonce = true,
            Fault::ClockSkew(ms) => f.clock_skew_ms = ms,
            Fault::DropHeader(h) => f.drop_headers.insert(h),
            Fault::MalformHeader(h) => f.malform_headers.insert(h),
            Fault::Timeout(d) => f.request_timeout = Some(d),
        }
    }
}

impl fmt::Display for FaultShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%:", self.probability * 100.0)?;
        match self.fault {
            Fault::BadSecret => write!(f, "bad-secret"),
            Fault::ReuseNonce => write!(f, "reuse-nonce"),
            Fault::ClockSkew(ms) => write!(f, "clock-skew={ms}ms"),
            Fault::DropHeader(h) => write!(f, "drop-header={h}"),
            Fault::MalformHeader(h) => write!(f, "malform-header={h}"),
            Fault::Timeout(d) => write!(f, "timeout={}ms", d.as_millis()),
        }
    }
}

/// The faults of one device: each rule applies when its uniform draw (0–1) falls below its
/// share.
pub fn draw(rules: &[FaultShare], mut uniform: impl FnMut() -> f64) -> DeviceFaults {
    let mut f = DeviceFaults::NONE;
    for r in rules {
        if uniform() < r.probability {
            r.apply(&mut f);
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_display_and_apply() {
        let r = FaultShare::parse("1%:bad-secret").unwrap();
        assert_eq!(r.fault, Fault::BadSecret);
        assert!((r.probability - 0.01).abs() < 1e-12);
        assert_eq!(
            FaultShare::parse("0.5:clock-skew=-10m").unwrap().fault,
            Fault::ClockSkew(-600_000)
        );
        assert_eq!(
            FaultShare::parse("100%:drop-header=x-client-type")
                .unwrap()
                .to_string(),
            "100%:drop-header=X-Client-Type"
        );
        for (bad, why) in [
            ("bad-secret", "no ':'"),
            ("150%:bad-secret", "share"),
            ("1%:sneeze", "unknown fault"),
            ("1%:drop-header", "needs =HEADER"),
            ("1%:drop-header=X-Foo", "X-Foo"),
            ("1%:timeout=soon", "duration"),
        ] {
            let e = FaultShare::parse(bad).unwrap_err();
            assert!(e.contains(why) && e.contains("1%:bad-secret"), "{bad}: {e}");
        }
        let rules = [
            FaultShare::parse("100%:reuse-nonce").unwrap(),
            FaultShare::parse("0%:bad-secret").unwrap(),
            FaultShare::parse("50%:malform-header=X-Nonce").unwrap(),
        ];
        let mut draws = [0.3, 0.0, 0.7].into_iter();
        let f = draw(&rules, || draws.next().unwrap());
        assert!(f.reuse_nonce && !f.wrong_secret && f.malform_headers.is_empty());
        let mut draws = [0.99, 0.5, 0.2].into_iter();
        let f = draw(&rules, || draws.next().unwrap());
        assert!(f.malform_headers.contains(FaultHeader::Nonce));
    }
}
