//! Fault injection (spec 6, sandbox side): latency, error answers, dropped connections and a
//! minimum poll interval, per route or for all, seeded so runs reproduce.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use posemu_protocol::payments::paths as pay;
use posemu_protocol::wire::paths;

/// Routes a rule may name (besides `*`).
pub const FAULT_ROUTES: &[&str] = &[
    paths::BOOTSTRAP,
    paths::PAIRING_CODE,
    paths::STATUS,
    paths::CLAIM,
    paths::ATTEST,
    paths::KEYS,
    paths::CONFIG,
    paths::TERMINAL_PARAMETERS,
    paths::ACTIVATE,
    paths::CLIENT_SESSION,
    paths::AUTH_TOKEN,
    paths::SESSION_INITIATE,
    paths::HEALTH,
    pay::CHARGE,
    pay::REFUND_ROUTE,
    pay::CANCEL_ROUTE,
    pay::REVERSE_ROUTE,
];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed of the fault dice; the same seed and requests give the same faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// A path such as `/pos/status` (a payment route by its template, such as
    /// `/pos/charge/{charge_id}/cancel`), or `*` for every API route of the spec.
    pub route: String,
    /// Added latency: `200` (fixed ms) or `[100, 300]` (uniform range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Latency>,
    /// The status answered with `error_probability` (400–599).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_status: Option<u16>,
    #[serde(default)]
    pub error_probability: f64,
    /// `Retry-After` seconds on injected 429/503 answers (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// Probability of closing the connection without an answer.
    #[serde(default)]
    pub drop_probability: f64,
    /// `GET /pos/status` of one device faster than this answers 429 with `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_poll_interval_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Latency {
    Fixed(u64),
    Range([u64; 2]),
}

const MAX_LATENCY_MS: u64 = 120_000;

impl FaultConfig {
    /// Checks every rule; the error names the rule (1-based) and the field.
    pub fn validate(&self) -> Result<(), String> {
        self.check()
            .map_err(|(i, field, what)| format!("rules[{}].{field}: {what}", i + 1))
    }

    /// The first problem: rule index (0-based), field, what is wrong.
    fn check(&self) -> Result<(), (usize, &'static str, String)> {
        for (i, r) in self.rules.iter().enumerate() {
            let at = |field: &'static str, what: String| Err((i, field, what));
            if r.route != "*" && !FAULT_ROUTES.contains(&r.route.as_str()) {
                return at(
                    "route",
                    format!(
                        "{:?} is not a route; expected \"*\" or one of {}",
                        r.route,
                        FAULT_ROUTES.join(", ")
                    ),
                );
            }
            for (name, p) in [
                ("error_probability", r.error_probability),
                ("drop_probability", r.drop_probability),
            ] {
                if !(0.0..=1.0).contains(&p) {
                    return at(name, format!("{p} is not a probability between 0 and 1"));
                }
            }
            match r.error_status {
                Some(s) if !(400..=599).contains(&s) => {
                    return at(
                        "error_status",
                        format!("{s} is not an error status (400–599)"),
                    )
                }
                None if r.error_probability > 0.0 => {
                    return at(
                        "error_status",
                        "is required when error_probability > 0".into(),
                    )
                }
                _ => {}
            }
            match r.latency_ms {
                Some(Latency::Fixed(ms)) if ms > MAX_LATENCY_MS => {
                    return at("latency_ms", format!("{ms} is above {MAX_LATENCY_MS}"))
                }
                Some(Latency::Range([a, b])) if a > b || b > MAX_LATENCY_MS => {
                    return at(
                        "latency_ms",
                        format!("[{a}, {b}] must be [min, max] with max ≤ {MAX_LATENCY_MS}"),
                    )
                }
                _ => {}
            }
            if r.min_poll_interval_ms.is_some() && r.route != "*" && r.route != paths::STATUS {
                return at(
                    "min_poll_interval_ms",
                    format!("applies to {} only", paths::STATUS),
                );
            }
        }
        Ok(())
    }

    /// Parses a TOML fault file; errors name the line.
    pub fn from_toml(text: &str) -> Result<FaultConfig, String> {
        let cfg: FaultConfig = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(l) => format!("line {l}: {}", e.message().trim()),
                None => e.message().trim().to_string(),
            }
        })?;
        cfg.check().map_err(|(i, field, what)| {
            let at = format!("rules[{}].{field}: {what}", i + 1);
            match rule_field_line(text, i, field) {
                Some(line) => format!("line {line}: {at}"),
                None => at,
            }
        })?;
        Ok(cfg)
    }
}

/// The line of `field` in the `index`-th rule of a fault file (of the rule itself when the
/// field is absent), so that a rule that parses but makes no sense is pointed at too.
fn rule_field_line(text: &str, index: usize, field: &str) -> Option<usize> {
    #[derive(Deserialize)]
    struct Spans {
        #[serde(default)]
        rules: Vec<HashMap<String, toml::Spanned<toml::Value>>>,
    }
    let spans: Spans = toml::from_str(text).ok()?;
    let rule = spans.rules.get(index)?;
    let at = match rule.get(field) {
        Some(v) => v.span().start,
        None => rule.values().map(|v| v.span().start).min()?,
    };
    Some(text[..at.min(text.len())].matches('\n').count() + 1)
}

pub enum FaultAction {
    Pass,
    Error(ApiError),
    Drop,
}

pub struct Decision {
    pub latency: Option<Duration>,
    pub outcome: FaultAction,
}

impl Decision {
    pub fn pass() -> Decision {
        Decision {
            latency: None,
            outcome: FaultAction::Pass,
        }
    }
}

/// The live fault state: config, dice and the last poll time per device.
pub struct Faults {
    inner: Mutex<Inner>,
    /// Fast path: no rules at all.
    active: std::sync::atomic::AtomicBool,
}

struct Inner {
    config: FaultConfig,
    rng: StdRng,
    last_poll: HashMap<String, i64>,
}

impl Faults {
    pub fn new(config: FaultConfig, fallback_seed: u64) -> Faults {
        let f = Faults {
            inner: Mutex::new(Inner {
                config: FaultConfig::default(),
                rng: StdRng::seed_from_u64(0),
                last_poll: HashMap::new(),
            }),
            active: false.into(),
        };
        f.set(config, fallback_seed);
        f
    }

    /// False when there are no rules (the common case): the caller may skip [`Self::decide`].
    pub fn is_active(&self) -> bool {
        self.active.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn get(&self) -> FaultConfig {
        self.inner.lock().config.clone()
    }

    /// Replaces the config (already validated) and reseeds the dice.
    pub fn set(&self, config: FaultConfig, fallback_seed: u64) {
        let mut g = self.inner.lock();
        g.rng = StdRng::seed_from_u64(config.seed.unwrap_or(fallback_seed));
        self.active.store(
            !config.rules.is_empty(),
            std::sync::atomic::Ordering::Relaxed,
        );
        g.config = config;
        g.last_poll.clear();
    }

    pub fn decide(&self, path: &str, device: Option<&str>, now: DateTime<Utc>) -> Decision {
        let pass = Decision {
            latency: None,
            outcome: FaultAction::Pass,
        };
        if !self.active.load(std::sync::atomic::Ordering::Relaxed) {
            return pass;
        }
        let mut g = self.inner.lock();
        let Inner {
            config,
            rng,
            last_poll,
        } = &mut *g;
        // `*` means every API route: never `/sandbox/` (so faults can always be switched off
        // again) nor the portal's page and assets.
        // payment paths carry a charge id: rules name their route template
        let path = pay::route_of(path).unwrap_or(path);
        if !FAULT_ROUTES.contains(&path) {
            return pass;
        }
        let mut d = pass;
        for r in config
            .rules
            .iter()
            .filter(|r| r.route == "*" || r.route == path)
        {
            if d.latency.is_none() {
                d.latency = r.latency_ms.map(|l| match l {
                    Latency::Fixed(ms) => Duration::from_millis(ms),
                    Latency::Range([a, b]) => Duration::from_millis(rng.random_range(a..=b)),
                });
            }
            if !matches!(d.outcome, FaultAction::Pass) {
                continue;
            }
            if r.drop_probability > 0.0 && rng.random_bool(r.drop_probability) {
                d.outcome = FaultAction::Drop;
            } else if let (Some(status), true) = (r.error_status, r.error_probability > 0.0) {
                if rng.random_bool(r.error_probability) {
                    d.outcome =
                        FaultAction::Error(injected_error(path, status, r.retry_after_secs));
                }
            }
            if let (Some(min), Some(dev), true, FaultAction::Pass) = (
                r.min_poll_interval_ms,
                device,
                path == paths::STATUS,
                &d.outcome,
            ) {
                let now_ms = now.timestamp_millis();
                match last_poll.get(dev) {
                    Some(&last) if now_ms - last < min as i64 => {
                        let wait_ms = (min as i64 - (now_ms - last)).max(0) as u64;
                        d.outcome = FaultAction::Error(
                            ApiError::new(429, "Polling too frequently")
                                .detail("min_poll_interval_ms", min)
                                .retry_after(wait_ms.div_ceil(1000).max(1)),
                        );
                    }
                    _ => {
                        last_poll.insert(dev.to_string(), now_ms);
                    }
                }
            }
        }
        d
    }
}

fn injected_error(path: &str, status: u16, retry_after: Option<u64>) -> ApiError {
    let message = match (status, path) {
        (500, paths::PAIRING_CODE) => "Failed to create pairing code".to_string(),
        (429, _) => "Too many requests".into(),
        (500, _) => "Internal server error".into(),
        (502, _) => "Bad gateway".into(),
        (503, _) => "Service unavailable".into(),
        (504, _) => "Gateway timeout".into(),
        (s, _) => format!("Injected fault {s}"),
    };
    let e = ApiError::new(status, message).detail("injected", true);
    if matches!(status, 429 | 503) {
        e.retry_after(retry_after.unwrap_or(1))
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_parses_and_validates_with_positions() {
        let cfg = FaultConfig::from_toml(
            "seed = 7\n[[rules]]\nroute = \"/pos/status\"\nlatency_ms = [10, 20]\nerror_status = 503\nerror_probability = 0.5\n",
        )
        .unwrap();
        assert_eq!(cfg.rules[0].latency_ms, Some(Latency::Range([10, 20])));
        let e = FaultConfig::from_toml("[[rules]]\nroute = \"/nope\"\n").unwrap_err();
        assert!(e.contains("rules[1].route") && e.contains("/nope"), "{e}");
        let e = FaultConfig::from_toml("[[rules]]\nroute = \"*\"\ndrop_probability = 2.0\n")
            .unwrap_err();
        assert!(e.contains("drop_probability"), "{e}");
        let e = FaultConfig::from_toml("[[rules]]\nroute = \"*\"\nerror_probability = 0.1\n")
            .unwrap_err();
        assert!(e.contains("error_status"), "{e}");
        let e = FaultConfig::from_toml("seed = 1\n[[rules]]\nrooute = \"*\"\n").unwrap_err();
        assert!(e.starts_with("line 3"), "{e}");
        let e = FaultConfig::from_toml(
            "[[rules]]\nroute = \"*\"\n\n[[rules]]\nroute = \"*\"\ndrop_probability = 1.5\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            "line 6: rules[2].drop_probability: 1.5 is not a probability between 0 and 1"
        );
        let e = FaultConfig::from_toml("[[rules]]\nroute = \"*\"\nerror_probability = 0.5\n")
            .unwrap_err();
        assert_eq!(
            e,
            "line 2: rules[1].error_status: is required when error_probability > 0"
        );
    }

    #[test]
    fn same_seed_same_dice() {
        let cfg = FaultConfig {
            seed: Some(9),
            rules: vec![FaultRule {
                route: "*".into(),
                error_status: Some(500),
                error_probability: 0.5,
                ..Default::default()
            }],
        };
        let roll = |f: &Faults| -> Vec<bool> {
            (0..64)
                .map(|_| {
                    matches!(
                        f.decide("/pos/status", None, Utc::now()).outcome,
                        FaultAction::Error(_)
                    )
                })
                .collect()
        };
        let a = roll(&Faults::new(cfg.clone(), 0));
        assert_eq!(a, roll(&Faults::new(cfg, 0)));
        assert!(a.iter().any(|x| *x) && a.iter().any(|x| !*x));
    }

    #[test]
    fn min_poll_interval_answers_429_with_retry_after() {
        let cfg = FaultConfig {
            seed: None,
            rules: vec![FaultRule {
                route: "/pos/status".into(),
                min_poll_interval_ms: Some(3000),
                ..Default::default()
            }],
        };
        let f = Faults::new(cfg, 1);
        let t0 = Utc::now();
        assert!(matches!(
            f.decide("/pos/status", Some("POS-00000001"), t0).outcome,
            FaultAction::Pass
        ));
        let d = f.decide(
            "/pos/status",
            Some("POS-00000001"),
            t0 + chrono::Duration::milliseconds(1000),
        );
        let FaultAction::Error(e) = d.outcome else {
            panic!("expected 429")
        };
        assert_eq!((e.status, e.retry_after), (429, Some(2)));
        let later = t0 + chrono::Duration::milliseconds(3000);
        assert!(matches!(
            f.decide("/pos/status", Some("POS-00000001"), later).outcome,
            FaultAction::Pass
        ));
        assert!(matches!(
            f.decide("/pos/status", Some("POS-00000002"), later).outcome,
            FaultAction::Pass
        ));
    }
}
