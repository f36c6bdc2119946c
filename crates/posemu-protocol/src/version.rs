//! Semantic-version order for the `min_supported_version` check (spec 4.1).

use std::cmp::Ordering;

/// A parsed `MAJOR.MINOR.PATCH` (extra components or a `-pre` suffix are compared too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    numbers: Vec<u64>,
    pre: Option<String>,
}

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim();
        let s = s.split('+').next()?;
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) if !p.is_empty() => (c, Some(p.to_string())),
            Some(_) => return None,
            None => (s, None),
        };
        let numbers: Option<Vec<u64>> = core.split('.').map(|p| p.parse().ok()).collect();
        let numbers = numbers?;
        (!numbers.is_empty() && numbers.len() <= 4).then_some(Version { numbers, pre })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.numbers.len().max(other.numbers.len());
        let at = |v: &Version, i: usize| v.numbers.get(i).copied().unwrap_or(0);
        for i in 0..n {
            match at(self, i).cmp(&at(other, i)) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        // a pre-release sorts before its release
        match (&self.pre, &other.pre) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) => cmp_pre(a, b),
        }
    }
}

/// SemVer 2.0 §11: dot-separated identifiers left to right; numeric ones compare as numbers and
/// sort before alphanumeric ones; a shorter list that is a prefix sorts first.
fn cmp_pre(a: &str, b: &str) -> Ordering {
    let mut xs = a.split('.');
    let mut ys = b.split('.');
    loop {
        let o = match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match (numeric(x), numeric(y)) {
                (Some(m), Some(n)) => m.cmp(&n),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => x.cmp(y),
            },
        };
        if o != Ordering::Equal {
            return o;
        }
    }
}

fn numeric(id: &str) -> Option<u128> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // longer than u128 holds: compare by length, then text (both digits only)
    id.parse().ok().or(Some(u128::MAX))
}

/// True if `version` is below `min`; `None` if either does not parse.
pub fn is_below(version: &str, min: &str) -> Option<bool> {
    Some(Version::parse(version)? < Version::parse(min)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semantic_order_not_string_order() {
        assert_eq!(is_below("1.4.2", "1.3.5"), Some(false));
        assert_eq!(is_below("1.3.5", "1.3.5"), Some(false));
        assert_eq!(is_below("1.3.4", "1.3.5"), Some(true));
        assert_eq!(is_below("1.10.0", "1.9.9"), Some(false));
        assert_eq!(is_below("1.3", "1.3.1"), Some(true));
        assert_eq!(is_below("1.3.5-rc1", "1.3.5"), Some(true));
        assert_eq!(is_below("abc", "1.3.5"), None);
    }

    #[test]
    fn pre_releases_order_as_semver_says() {
        // SemVer 2.0 §11's own example, each below the next
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
        ];
        for w in chain.windows(2) {
            assert_eq!(is_below(w[0], w[1]), Some(true), "{} < {}", w[0], w[1]);
            assert_eq!(is_below(w[1], w[0]), Some(false), "{} > {}", w[1], w[0]);
        }
        assert_eq!(is_below("1.3.5-rc.2", "1.3.5-rc.10"), Some(true));
        assert_eq!(is_below("1.3.5-rc.10", "1.3.5-rc.2"), Some(false));
        assert_eq!(is_below("1..2", "1.3.5"), None);
    }
}
