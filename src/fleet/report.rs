//! The fleet report: JSON for machines (exactly mergeable across shards), a short summary for
//! people.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use posemu_protocol::text::escape_control;
use serde::{Deserialize, Serialize};

use super::pay_stats::{Outcomes, PayOp, PayStats};
use super::procstat::Usage;
use super::stats::{Endpoint, Hist, State, Stats};

pub const FORMAT: &str = "posemu-fleet-report/1";

/// The run's configuration, as the report records it (no secrets: the seed only as a
/// fingerprint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub posemu_version: String,
    /// Devices of the whole fleet (all shards).
    pub fleet_devices: u32,
    /// Where ids and secrets come from: `derived POS-F0000001…` or `file NAME`.
    pub device_source: String,
    /// First 16 hex digits of SHA-256 of the fleet seed, to tell fleets apart.
    pub seed_fingerprint: Option<String>,
    pub server: String,
    pub ramp_per_sec: f64,
    pub poll: String,
    pub claim: Option<String>,
    pub duration_seconds: Option<f64>,
    pub connection_per_device: bool,
    /// `--faulty` rules, `1%:bad-secret`.
    #[serde(default)]
    pub device_faults: Vec<String>,
    pub max_in_flight: usize,
    pub workers: usize,
    /// `--charges-per-minute` and `--charge-mix`, when terminals took payments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charges: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub mean_ms: Option<f64>,
}

impl Percentiles {
    /// From a histogram of µs.
    pub fn of(h: &Hist) -> Percentiles {
        let ms = |v: Option<u64>| v.map(|us| us as f64 / 1000.0);
        Percentiles {
            count: h.len(),
            p50_ms: ms(h.quantile(0.5)),
            p90_ms: ms(h.quantile(0.9)),
            p99_ms: ms(h.quantile(0.99)),
            p999_ms: ms(h.quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean().map(|m| m / 1000.0),
        }
    }
}

/// A distribution: percentiles for reading, the histogram (µs) for merging.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Distribution {
    #[serde(flatten)]
    pub percentiles: Percentiles,
    pub histogram_us: Hist,
}

impl Distribution {
    pub fn of(h: &Hist) -> Distribution {
        Distribution {
            percentiles: Percentiles::of(h),
            histogram_us: h.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointReport {
    pub requests: u64,
    pub errors: u64,
    pub latency: Distribution,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Devices {
    /// Devices of this report (its shards).
    pub total: u64,
    pub activated: u64,
    /// Stopped without activating (failed or update required).
    pub failed: u64,
    /// Still working when the run stopped (or never started).
    pub unsettled: u64,
    pub by_state: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessReport {
    pub shard: String,
    pub fleet: Usage,
    /// The `--sandbox-process` sandbox, when there was one.
    pub sandbox: Option<Usage>,
    /// Peak RSS growth over the process's start, divided by devices.
    pub bytes_per_device: Option<u64>,
    pub requests: u64,
    pub elapsed_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub format: String,
    pub config: RunConfig,
    /// The shards this report covers, `I/N`; one for a single run.
    pub shards: Vec<String>,
    pub started_at: String,
    /// Longest run among the shards.
    pub elapsed_seconds: f64,
    /// `settled` (every device activated or failed), `duration`, or `interrupted`.
    pub stopped_by: String,
    pub devices: Devices,
    pub requests: u64,
    pub errors: u64,
    pub endpoints: BTreeMap<String, EndpointReport>,
    /// Error answers by Viopay code (`4029`), or `HTTP 502`, `network`, `timeout`, `decode`.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Why devices stopped, one line per kind.
    pub failures: BTreeMap<String, u64>,
    pub time_to_activate: Distribution,
    /// How late status polls went out against their schedule.
    pub poll_lateness: Distribution,
    /// Payments of activated terminals, when the run had `--charges-per-minute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payments: Option<PaymentsReport>,
    pub processes: Vec<ProcessReport>,
}

/// The payments of a run: a latency row per request kind, outcomes, errors. Not part of the
/// top-level `requests` and `errors`, which count the activation API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentsReport {
    pub requests: u64,
    pub errors: u64,
    /// `charge`, `refund`, `cancel`, `settle`.
    pub requests_by_kind: BTreeMap<String, EndpointReport>,
    pub outcomes: Outcomes,
    /// Error answers by `{request} {code}` (`charge 5004`, `settle network`).
    pub errors_by_code: BTreeMap<String, u64>,
    /// Charge requests sent once every device had settled (the shard's whole fleet activated
    /// or failed): the steady state without the activation storm.
    pub charge_after_activation: Distribution,
}

impl PaymentsReport {
    fn of(p: &PayStats) -> PaymentsReport {
        PaymentsReport {
            requests: p.requests(),
            errors: p.error_count(),
            requests_by_kind: PayOp::ALL
                .iter()
                .map(|o| {
                    let st = &p.ops[*o as usize];
                    let r = EndpointReport {
                        requests: st.latency.len(),
                        errors: st.errors,
                        latency: Distribution::of(&st.latency),
                    };
                    (o.name().to_string(), r)
                })
                .collect(),
            outcomes: p.outcomes.clone(),
            errors_by_code: p.errors.clone(),
            charge_after_activation: Distribution::of(&p.charge_activated),
        }
    }

    fn merge(&mut self, o: &PaymentsReport) {
        self.requests += o.requests;
        self.errors += o.errors;
        merge_rows(&mut self.requests_by_kind, &o.requests_by_kind);
        self.outcomes.add(&o.outcomes);
        add_counts(&mut self.errors_by_code, &o.errors_by_code);
        let mut h = self.charge_after_activation.histogram_us.clone();
        h.add(&o.charge_after_activation.histogram_us);
        self.charge_after_activation = Distribution::of(&h);
    }

    /// The summary's lines.
    fn summary(&self, s: &mut String) {
        let o = &self.outcomes;
        let _ = writeln!(
            s,
            "  payments: {} charges begun, {} ended: {} approved, {} partially approved, {} declined, {} unknown, {} errors; {} refunded, {} cancelled, {} refunds skipped, {} retries, {} arrivals while busy",
            o.started, o.charges, o.approved, o.partially_approved, o.declined, o.unknown,
            o.rejected + o.refused, o.refunded, o.cancelled, o.refunds_skipped, o.retries, o.busy_skipped
        );
        if !o.declined_by_code.is_empty() {
            let d: Vec<String> = o
                .declined_by_code
                .iter()
                .map(|(k, v)| format!("{k}×{v}"))
                .collect();
            let _ = writeln!(s, "  declined by code: {}", d.join(", "));
        }
        for op in PayOp::ALL {
            if let Some(r) = self.requests_by_kind.get(op.name()) {
                row(s, op.name(), r);
            }
        }
        let steady = &self.charge_after_activation;
        let steady_row = EndpointReport {
            requests: steady.percentiles.count,
            errors: 0,
            latency: steady.clone(),
        };
        row(s, "charge, all activated", &steady_row);
        if !self.errors_by_code.is_empty() {
            let e: Vec<String> = self
                .errors_by_code
                .iter()
                .map(|(k, v)| format!("{k}×{v}"))
                .collect();
            let _ = writeln!(s, "  payment errors: {}", e.join(", "));
        }
    }
}

/// Adds latency rows bucket by bucket.
fn merge_rows(
    into: &mut BTreeMap<String, EndpointReport>,
    from: &BTreeMap<String, EndpointReport>,
) {
    for (name, e) in from {
        match into.get_mut(name) {
            Some(o) => {
                o.requests += e.requests;
                o.errors += e.errors;
                let mut h = o.latency.histogram_us.clone();
                h.add(&e.latency.histogram_us);
                o.latency = Distribution::of(&h);
            }
            None => {
                into.insert(name.clone(), e.clone());
            }
        }
    }
}

/// One row of the latency table (nothing for a row without requests).
fn row(s: &mut String, name: &str, r: &EndpointReport) {
    if r.requests == 0 {
        return;
    }
    let p = &r.latency.percentiles;
    let _ = writeln!(
        s,
        "  {:<20} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}",
        name,
        r.requests,
        r.errors,
        fmt_ms(p.p50_ms),
        fmt_ms(p.p90_ms),
        fmt_ms(p.p99_ms),
        fmt_ms(p.max_ms)
    );
}

/// What a run knows besides its stats.
pub struct RunFacts {
    pub config: RunConfig,
    pub shard: String,
    pub started_at: String,
    pub elapsed_seconds: f64,
    pub stopped_by: String,
    pub fleet: Usage,
    pub sandbox: Option<Usage>,
    pub bytes_per_device: Option<u64>,
}

fn devices_of(by_state: BTreeMap<String, u64>) -> Devices {
    let get = |s: State| by_state.get(s.name()).copied().unwrap_or(0);
    let total = by_state.values().sum();
    let activated = get(State::Ready);
    let failed = get(State::Failed) + get(State::UpdateRequired);
    Devices {
        total,
        activated,
        failed,
        unsettled: total - activated - failed,
        by_state,
    }
}

impl Report {
    pub fn build(stats: &Stats, facts: RunFacts) -> Report {
        let by_state = State::ALL
            .iter()
            .map(|s| (s.name().to_string(), stats.count(*s).max(0) as u64))
            .collect();
        let endpoints = Endpoint::all()
            .map(|e| {
                let st = &stats.endpoints[e.index()];
                let r = EndpointReport {
                    requests: st.latency.len(),
                    errors: st.errors,
                    latency: Distribution::of(&st.latency),
                };
                (e.name().to_string(), r)
            })
            .collect();
        let requests = stats.requests();
        let payments = facts
            .config
            .charges
            .is_some()
            .then(|| PaymentsReport::of(&stats.pay));
        Report {
            format: FORMAT.into(),
            config: facts.config,
            shards: vec![facts.shard.clone()],
            started_at: facts.started_at,
            elapsed_seconds: facts.elapsed_seconds,
            stopped_by: facts.stopped_by,
            devices: devices_of(by_state),
            requests,
            errors: stats.error_count(),
            endpoints,
            errors_by_code: stats.errors.clone(),
            failures: stats.failures.clone(),
            time_to_activate: Distribution::of(&stats.time_to_activate),
            poll_lateness: Distribution::of(&stats.poll_lateness),
            payments,
            processes: vec![ProcessReport {
                shard: facts.shard,
                fleet: facts.fleet,
                sandbox: facts.sandbox,
                bytes_per_device: facts.bytes_per_device,
                requests,
                elapsed_seconds: facts.elapsed_seconds,
            }],
        }
    }

    pub fn load(path: &Path) -> Result<Report, String> {
        let name = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
        let r: Report =
            serde_json::from_str(&text).map_err(|e| format!("{name}: not a fleet report: {e}"))?;
        if r.format != FORMAT {
            return Err(format!(
                "{name}: report format {:?}, expected {FORMAT:?}",
                r.format
            ));
        }
        Ok(r)
    }

    /// Writes the JSON atomically (temp file, then rename).
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot write the report {}: {e}", path.display()))
    }

    /// Adds up reports of disjoint shards of one fleet, exactly: histograms bucket by bucket.
    pub fn merge(reports: &[Report]) -> Result<Report, String> {
        let (first, rest) = reports
            .split_first()
            .ok_or("nothing to merge: give at least one report")?;
        let mut out = first.clone();
        for r in rest {
            let same = |a: &RunConfig, b: &RunConfig| {
                a.fleet_devices == b.fleet_devices
                    && a.device_source == b.device_source
                    && a.seed_fingerprint == b.seed_fingerprint
            };
            if !same(&out.config, &r.config) {
                return Err(format!(
                    "reports of different fleets: {} devices from {} vs {} devices from {}",
                    out.config.fleet_devices,
                    out.config.device_source,
                    r.config.fleet_devices,
                    r.config.device_source
                ));
            }
            for s in &r.shards {
                if out.shards.contains(s) {
                    return Err(format!(
                        "shard {s} appears twice: merging it again would count its devices twice"
                    ));
                }
            }
            out.shards.extend(r.shards.iter().cloned());
            out.started_at = out.started_at.clone().min(r.started_at.clone());
            out.elapsed_seconds = out.elapsed_seconds.max(r.elapsed_seconds);
            if out.stopped_by != r.stopped_by {
                out.stopped_by = "mixed".into();
            }
            let mut by_state = out.devices.by_state.clone();
            for (k, v) in &r.devices.by_state {
                *by_state.entry(k.clone()).or_default() += v;
            }
            out.devices = devices_of(by_state);
            out.requests += r.requests;
            out.errors += r.errors;
            merge_rows(&mut out.endpoints, &r.endpoints);
            match (&mut out.payments, &r.payments) {
                (Some(a), Some(b)) => a.merge(b),
                (None, Some(b)) => out.payments = Some(b.clone()),
                _ => {}
            }
            add_counts(&mut out.errors_by_code, &r.errors_by_code);
            add_counts(&mut out.failures, &r.failures);
            let mut tta = out.time_to_activate.histogram_us.clone();
            tta.add(&r.time_to_activate.histogram_us);
            out.time_to_activate = Distribution::of(&tta);
            let mut late = out.poll_lateness.histogram_us.clone();
            late.add(&r.poll_lateness.histogram_us);
            out.poll_lateness = Distribution::of(&late);
            out.processes.extend(r.processes.iter().cloned());
        }
        out.shards.sort();
        Ok(out)
    }

    /// Shards of the fleet missing from this report, if it says how many there are.
    pub fn missing_shards(&self) -> Vec<String> {
        let Some(n) = self
            .shards
            .first()
            .and_then(|s| s.split_once('/'))
            .and_then(|(_, n)| n.parse::<u32>().ok())
        else {
            return Vec::new();
        };
        (0..n)
            .map(|i| format!("{i}/{n}"))
            .filter(|s| !self.shards.contains(s))
            .collect()
    }

    /// The short human summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let d = &self.devices;
        let _ = writeln!(
            s,
            "posemu fleet: {} devices: {} activated, {} failed, {} unsettled in {:.1} s (stopped by {}; shards {})",
            d.total,
            d.activated,
            d.failed,
            d.unsettled,
            self.elapsed_seconds,
            self.stopped_by,
            self.shards.join(",")
        );
        let missing = self.missing_shards();
        if !missing.is_empty() {
            let _ = writeln!(s, "  incomplete: shards {} are missing", missing.join(","));
        }
        let busy: Vec<String> = d
            .by_state
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(s, "  states: {}", busy.join(", "));
        let rate = if self.elapsed_seconds > 0.0 {
            self.requests as f64 / self.elapsed_seconds
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "  requests: {} ({:.0}/s), errors: {}",
            self.requests, rate, self.errors
        );
        let _ = writeln!(
            s,
            "  {:<20} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}",
            "endpoint", "requests", "errors", "p50", "p90", "p99", "max"
        );
        for e in Endpoint::all() {
            if let Some(r) = self.endpoints.get(e.name()) {
                row(&mut s, e.name(), r);
            }
        }
        if !self.errors_by_code.is_empty() {
            let e: Vec<String> = self
                .errors_by_code
                .iter()
                .map(|(k, v)| format!("{}×{v}", escape_control(k)))
                .collect();
            let _ = writeln!(s, "  errors by code: {}", e.join(", "));
        }
        if let Some(p) = &self.payments {
            p.summary(&mut s);
        }
        for (why, n) in self.failures.iter().take(5) {
            let _ = writeln!(s, "  failed ×{n}: {}", escape_control(why));
        }
        let line = |name: &str, p: &Percentiles| {
            format!(
                "  {name}: p50 {} p90 {} p99 {} max {} (n={})",
                fmt_ms(p.p50_ms),
                fmt_ms(p.p90_ms),
                fmt_ms(p.p99_ms),
                fmt_ms(p.max_ms),
                p.count
            )
        };
        let _ = writeln!(
            s,
            "{}",
            line("time to activate", &self.time_to_activate.percentiles)
        );
        let _ = writeln!(
            s,
            "{}",
            line("poll lateness", &self.poll_lateness.percentiles)
        );
        for p in &self.processes {
            let per_dev = p
                .bytes_per_device
                .map(|b| format!(", ~{b} B/device"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  process {}: peak RSS {:.1} MiB{per_dev}, CPU {:.2} s{}",
                p.shard,
                p.fleet.peak_rss_bytes as f64 / 1048576.0,
                p.fleet.cpu_seconds,
                p.sandbox
                    .map(|u| format!(
                        "; sandbox process: peak RSS {:.1} MiB, CPU {:.2} s",
                        u.peak_rss_bytes as f64 / 1048576.0,
                        u.cpu_seconds
                    ))
                    .unwrap_or_default()
            );
        }
        s
    }
}

/// Adds counts of a loaded report, with the caps of a run (a report file is input too).
fn add_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        let k = super::stats::truncate_chars(k.clone(), super::stats::MAX_REASON_CHARS);
        super::stats::add_capped(into, &k, *v, super::stats::MAX_ERROR_KINDS);
    }
}

/// `12.3ms`, `4.52s`, or `-`.
pub fn fmt_ms(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(ms) if ms >= 10_000.0 => format!("{:.1}s", ms / 1000.0),
        Some(ms) if ms >= 1000.0 => format!("{:.2}s", ms / 1000.0),
        Some(ms) if ms >= 10.0 => format!("{ms:.1}ms"),
        Some(ms) => format!("{ms:.2}ms"),
    }
}
