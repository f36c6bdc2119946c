//! The small grammars of fleet flags: delay distributions (`--claim-after`), the poll range
//! (`--poll`), the ramp (`--ramp`) and shards (`--shard`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A delay drawn per device: `0`, `2s` (fixed), `1s-10s` (uniform), `exp:3s` (exponential
/// with that mean, capped at 20× the mean so one device cannot stall a run forever).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Dist {
    Fixed { ms: u64 },
    Uniform { lo_ms: u64, hi_ms: u64 },
    Exp { mean_ms: u64 },
}

/// A duration with a unit, or a bare `0`.
fn duration(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    posemu_protocol::duration::parse(s)
}

/// `lo-hi` with units on both ends or only the last (`3-5s`, `3s-5s`, `250ms-1s`).
fn range(s: &str) -> Result<Option<(Duration, Duration)>, String> {
    let Some((a, b)) = s.split_once('-') else {
        return Ok(None);
    };
    let hi = duration(b)?;
    let lo = if a.trim().chars().all(|c| c.is_ascii_digit() || c == '.') && a.trim() != "0" {
        // a bare number takes the unit of the upper end
        let unit: String = b
            .trim()
            .chars()
            .skip_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        duration(&format!("{}{unit}", a.trim()))?
    } else {
        duration(a)?
    };
    if lo > hi {
        return Err(format!("{s:?}: the lower end is above the upper end"));
    }
    Ok(Some((lo, hi)))
}

impl Dist {
    pub fn parse(s: &str) -> Result<Dist, String> {
        let t = s.trim();
        let err = |e: String| format!("{e} (expected a delay like 0, 2s, 1s-10s or exp:3s)");
        if let Some(mean) = t.strip_prefix("exp:") {
            let m = duration(mean).map_err(err)?;
            return Ok(Dist::Exp {
                mean_ms: m.as_millis() as u64,
            });
        }
        if let Some((lo, hi)) = range(t).map_err(err)? {
            return Ok(Dist::Uniform {
                lo_ms: lo.as_millis() as u64,
                hi_ms: hi.as_millis() as u64,
            });
        }
        let d = duration(t).map_err(err)?;
        Ok(Dist::Fixed {
            ms: d.as_millis() as u64,
        })
    }

    /// A delay for one device; `random` is a uniformly drawn `u64`.
    pub fn sample(&self, random: u64) -> Duration {
        match *self {
            Dist::Fixed { ms } => Duration::from_millis(ms),
            Dist::Uniform { lo_ms, hi_ms } => {
                Duration::from_millis(lo_ms + random % (hi_ms - lo_ms + 1))
            }
            Dist::Exp { mean_ms } => {
                // inverse transform: -ln(U) * mean, U in (0, 1]
                let u = ((random >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
                let ms = (-u.ln() * mean_ms as f64).min(20.0 * mean_ms as f64);
                Duration::from_millis(ms as u64)
            }
        }
    }
}

impl fmt::Display for Dist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Dist::Fixed { ms } => write!(f, "{ms}ms"),
            Dist::Uniform { lo_ms, hi_ms } => write!(f, "{lo_ms}ms-{hi_ms}ms"),
            Dist::Exp { mean_ms } => write!(f, "exp:{mean_ms}ms"),
        }
    }
}

/// `--poll`: `4`, `4s`, `3-5`, `3s-5s`; bare numbers are seconds.
pub fn parse_poll_range(s: &str) -> Result<(Duration, Duration), String> {
    let t = s.trim();
    let secs = |x: &str| -> String {
        if x.trim().chars().all(|c| c.is_ascii_digit() || c == '.') {
            format!("{}s", x.trim())
        } else {
            x.trim().to_string()
        }
    };
    let (lo, hi) = match t.split_once('-') {
        Some((a, b)) => (duration(&secs(a))?, duration(&secs(b))?),
        None => {
            let d = duration(&secs(t))?;
            (d, d)
        }
    };
    if lo > hi {
        return Err(format!("{s:?}: the lower end is above the upper end"));
    }
    if lo.is_zero() {
        return Err(format!("{s:?}: a poll interval must be above zero"));
    }
    Ok((lo, hi))
}

/// `--ramp`: devices started per second, `500/s`, `500`, or `0` for all at once.
pub fn parse_ramp(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let n = t.strip_suffix("/s").unwrap_or(t);
    let r: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a rate like 1000/s (0 starts all at once)"))?;
    if !r.is_finite() || r < 0.0 {
        return Err(format!(
            "{s:?} is not a rate like 1000/s (0 starts all at once)"
        ));
    }
    Ok(r)
}

/// `--shard I/N`: this process is shard I (0-based) of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn parse(s: &str) -> Result<Shard, String> {
        let err = || format!("{s:?} is not a shard like 0/4 (index from 0, below the count)");
        let (i, n) = s.trim().split_once('/').ok_or_else(err)?;
        let index: u32 = i.trim().parse().map_err(|_| err())?;
        let count: u32 = n.trim().parse().map_err(|_| err())?;
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }

    /// The positions `[lo, hi)` of this shard among `total` devices: contiguous blocks whose
    /// sizes differ by at most one, disjoint, together covering `0..total`.
    pub fn range(self, total: u32) -> std::ops::Range<u32> {
        let at = |i: u32| (total as u64 * i as u64 / self.count as u64) as u32;
        at(self.index)..at(self.index + 1)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_parse_and_sample_within_bounds() {
        assert_eq!(Dist::parse("0"), Ok(Dist::Fixed { ms: 0 }));
        assert_eq!(Dist::parse("2s"), Ok(Dist::Fixed { ms: 2000 }));
        assert_eq!(
            Dist::parse("1-10s"),
            Ok(Dist::Uniform {
                lo_ms: 1000,
                hi_ms: 10_000
            })
        );
        assert_eq!(
            Dist::parse("250ms-1s"),
            Ok(Dist::Uniform {
                lo_ms: 250,
                hi_ms: 1000
            })
        );
        assert_eq!(Dist::parse("exp:3s"), Ok(Dist::Exp { mean_ms: 3000 }));
        for bad in ["soon", "5-1s", "exp:x", "-3s"] {
            assert!(
                Dist::parse(bad).unwrap_err().contains("expected a delay"),
                "{bad}"
            );
        }
        let u = Dist::parse("1s-2s").unwrap();
        for r in [0, 1, 999, 1000, u64::MAX] {
            let d = u.sample(r);
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(2));
        }
        let e = Dist::parse("exp:1s").unwrap();
        assert!(e.sample(u64::MAX) < Duration::from_millis(5));
        assert!(e.sample(0) <= Duration::from_secs(20));
    }

    #[test]
    fn poll_ramp_and_shards() {
        let s = Duration::from_secs;
        assert_eq!(parse_poll_range("3-5"), Ok((s(3), s(5))));
        assert_eq!(parse_poll_range("4"), Ok((s(4), s(4))));
        assert_eq!(
            parse_poll_range("100ms-200ms"),
            Ok((Duration::from_millis(100), Duration::from_millis(200)))
        );
        assert!(parse_poll_range("5-3").is_err());
        assert!(parse_poll_range("0").is_err());
        assert_eq!(parse_ramp("1000/s"), Ok(1000.0));
        assert_eq!(parse_ramp("0"), Ok(0.0));
        assert!(parse_ramp("-1/s").is_err());
        assert_eq!(Shard::parse("1/4"), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "1/0", "x", "1-4"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_are_disjoint_and_cover_everything() {
        for total in [0u32, 1, 7, 10, 1000, 100_003] {
            for count in [1u32, 2, 3, 7, 16] {
                let mut next = 0;
                for index in 0..count {
                    let r = Shard { index, count }.range(total);
                    assert_eq!(r.start, next);
                    assert!(r.len() as u32 <= total / count + 1);
                    next = r.end;
                }
                assert_eq!(next, total);
            }
        }
    }
}
