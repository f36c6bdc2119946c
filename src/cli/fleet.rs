//! `posemu fleet`: run many emulated terminals against a server and judge the numbers;
//! `posemu fleet merge`: add up the reports of shards.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::fleet::charges::ChargePlan;
use crate::fleet::devices::{load_devices_file, DeviceSource, MAX_DERIVED_INDEX};
use crate::fleet::dist::{parse_poll_range, parse_ramp, Dist, Shard};
use crate::fleet::fault_shares::FaultShare;
use crate::fleet::threshold::{implicit_outcomes, Outcome, Threshold};
use crate::fleet::{FleetConfig, Report, ServerChoice, Ui};
use posemu_client::{MerchantCredentials, TransportConfig};
use posemu_protocol::api::Secret;
use posemu_protocol::provision::is_valid_fleet_prefix;

#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = format!("{}\n\n{EXIT_CODES}", thresholds_help())
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Sub>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Add up the reports of shards (exactly: histograms bucket by bucket).
    Merge(MergeArgs),
}

#[derive(Debug, clap::Args)]
#[command(after_help = thresholds_help())]
pub struct MergeArgs {
    /// Reports written by `posemu fleet --report` (one per shard).
    #[arg(required = true, value_name = "REPORT")]
    pub reports: Vec<PathBuf>,
    /// Write the merged report here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Check the merged report, e.g. 'activated>=99.9%'; repeatable (grammar below).
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Devices in the whole fleet (all shards). With --devices-file: the first N of the file.
    #[arg(long, value_name = "N", required_unless_present = "devices_file")]
    pub devices: Option<u32>,
    /// Viopay server base URL; without it posemu starts its embedded sandbox.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Derive device ids and secrets from this seed (spec section 5); must match the server's.
    #[arg(
        long,
        value_name = "SEED",
        default_value = "posemu-fleet",
        env = "POSEMU_FLEET_SEED",
        hide_env_values = true
    )]
    pub fleet_seed: String,
    /// Two uppercase hex digits of derived device ids (POS-{HH}xxxxxx).
    #[arg(long, value_name = "HH", default_value = "F0")]
    pub fleet_prefix: String,
    /// Index of the fleet's first derived device (POS-F0000001 is index 1).
    #[arg(long, value_name = "INDEX", default_value_t = 1)]
    pub first_device: u32,
    /// Pre-provisioned devices with their secrets (CSV or TOML), instead of derived ones.
    #[arg(long, value_name = "FILE")]
    pub devices_file: Option<PathBuf>,
    /// Devices started per second (0: all at once).
    #[arg(long, value_name = "R/s", default_value = "1000/s")]
    pub ramp: String,
    /// Poll interval range; each device draws its own interval uniformly within it.
    #[arg(long, value_name = "LO-HI", default_value = "3-5")]
    pub poll: String,
    /// Delay from a code showing to the merchant claiming it: 0, 2s, 1s-5s (uniform), exp:3s.
    #[arg(long, value_name = "DIST", default_value = "1s-5s")]
    pub claim_after: String,
    /// Never claim: pure polling load (needs --duration).
    #[arg(long)]
    pub no_claim: bool,
    /// Stop after this long (e.g. 60s, 10m); without it the run ends when every device has
    /// activated or failed.
    #[arg(long, value_name = "DURATION", value_parser = posemu_protocol::duration::parse)]
    pub duration: Option<Duration>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// No dashboard: a progress line a second on stderr when it is a terminal.
    #[arg(long)]
    pub headless: bool,
    /// A check that sets the exit code, e.g. 'p99(status)<200ms', 'activated>=99.9%',
    /// 'errors(4029)<10'; payments: 'p99(charge)<300ms', 'declined<=5%', 'unknown==0',
    /// 'p99(charge-activated)<50ms' (charges sent once every device had settled); repeatable
    /// (grammar below).
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
    /// Give every device its own connection pool (default: one shared keep-alive pool).
    #[arg(long)]
    pub connection_per_device: bool,
    /// Run the embedded sandbox as a separate process (client and server costs apart).
    #[arg(long, conflicts_with = "server")]
    pub sandbox_process: bool,
    /// Run shard I of N (0-based): a disjoint block of the fleet's devices.
    #[arg(
        long,
        value_name = "I/N",
        env = "POSEMU_FLEET_SHARD",
        hide_env_values = true
    )]
    pub shard: Option<String>,
    /// Merchant API client id: claim through POST /pos/claim instead of the sandbox helper.
    #[arg(long, value_name = "ID", requires = "merchant_client_secret")]
    pub merchant_client_id: Option<String>,
    /// Merchant API client secret.
    #[arg(
        long,
        value_name = "SECRET",
        env = "POSEMU_MERCHANT_CLIENT_SECRET",
        hide_env_values = true,
        requires = "merchant_client_id"
    )]
    pub merchant_client_secret: Option<String>,
    /// Calls in flight at once (bounds the sockets of the shared pool).
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_in_flight: usize,
    /// Scheduler workers (0: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub workers: usize,
    /// Embedded sandbox only: pairing-code lifetime in seconds.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub code_ttl: Option<u64>,
    /// Time allowed to connect to the server.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = posemu_protocol::duration::parse)]
    pub connect_timeout: Duration,
    /// Time allowed for one request.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = posemu_protocol::duration::parse)]
    pub request_timeout: Duration,
    /// Seed of the fleet's own randomness (poll phases, claim delays).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Device faults as fleet-wide shares (repeatable): SHARE:FAULT, e.g. 1%:bad-secret,
    /// 0.5%:clock-skew=10m, 2%:drop-header=X-Client-Type, reuse-nonce, malform-header=NAME,
    /// timeout=DURATION.
    #[arg(long = "faulty", value_name = "SHARE:FAULT")]
    pub faulty: Vec<String>,
    /// Each activated terminal takes payments at this rate (Poisson arrivals) until
    /// --duration ends, while the rest of the fleet goes on activating. Needs --duration.
    #[arg(long, value_name = "R", value_parser = crate::fleet::charges::parse_rate)]
    pub charges_per_minute: Option<f64>,
    /// What kind of charge each one is: KIND=WEIGHT,… with relative weights. Kinds:
    /// approve; decline (magic amounts of spec 7.7: ..05 do_not_honor, ..51
    /// insufficient_funds, ..54 expired_card, ..91 issuer_unavailable); partial (..10,
    /// partially approved); late (..68: a 504, then the retry with the same Idempotency-Key
    /// gets the approval); refund (approve, POST /sandbox/settle, refund in full; skipped
    /// against a server without that helper); cancel (approve, then cancel).
    #[arg(
        long,
        value_name = "MIX",
        default_value = "approve=100",
        requires = "charges_per_minute",
        value_parser = crate::fleet::charges::ChargeMix::parse
    )]
    pub charge_mix: crate::fleet::charges::ChargeMix,
    /// Tests only: accept a --poll range below the spec's 3–5 s.
    #[arg(long, hide = true)]
    pub unsafe_fast_poll: bool,
    /// Tests only: first poll after exactly one interval instead of a random phase.
    #[arg(long, hide = true)]
    pub no_poll_spread: bool,
}

/// The `--threshold` grammar, as `posemu fleet --help` and `fleet merge --help` show it and
/// the README's "Thresholds" section repeats it (a test keeps them equal).
pub const THRESHOLD_GRAMMAR: &str = "\
THRESHOLD := METRIC OP VALUE              OP := <  <=  >  >=  ==  !=
METRIC    := activated | failed | unsettled            devices: a count, or % of devices
           | requests [ (ENDPOINT) ]                   a count
           | errors [ (CODE | ENDPOINT) ]              a count, or % of requests
           | pNN (SERIES) | max (SERIES) | mean (SERIES)   latency: needs ms, s or m
           | OUTCOME | declined (DECLINE)                payments: a count, or % of charges ended
SERIES    := ENDPOINT | PAYREQ | time-to-activate | tta | lateness
           | charge-activated                          charges sent once every device had settled
ENDPOINT  := bootstrap | pairing-code | status | attest | keys | config
           | terminal-parameters | activate | claim
PAYREQ    := charge | refund | cancel | settle     also requests(PAYREQ), errors(PAYREQ) (% of that kind)
OUTCOME   := charges | approved | partially-approved | declined | unknown
           | rejected | refunded | cancelled | refunds-skipped
DECLINE   := do_not_honor | insufficient_funds | expired_card | issuer_unavailable | …
VALUE     := NUMBER [ % | ms | s | m ]";

/// The thresholds' part of the help: the grammar, indented, and examples.
fn thresholds_help() -> String {
    let mut s = String::from("Thresholds (--threshold EXPR):\n");
    for l in THRESHOLD_GRAMMAR.lines() {
        s.push_str("  ");
        s.push_str(l);
        s.push('\n');
    }
    s.push_str(
        "  e.g. 'p99(status)<200ms' 'activated>=99.9%' 'errors(4029)<10' 'errors<0.1%'\n  \
         'max(time-to-activate)<=60s'; payments: 'p99(charge)<300ms' 'declined<=5%'\n  \
         'unknown==0'; a metric with no data fails",
    );
    s
}

/// The exit codes, as `posemu fleet --help` lists them (and the README's fleet section).
pub const EXIT_CODES: &str = "Exit codes:
  0    every --threshold passed; without any: no device failed and at least one reached
       its goal (activated; with --no-claim: a status poll answered)
  1    a threshold failed; without any: a device failed, or none reached its goal
       (nothing answered); also: the report could not be written
  2    bad flags, files or threshold expressions (nothing ran)
  130  stopped by Ctrl-C or q (the report is still written)";

use super::usage;

pub async fn run(args: Args) -> ExitCode {
    match args.command {
        Some(Sub::Merge(m)) => merge(m),
        None => run_fleet(args.run).await,
    }
}

fn parse_thresholds(exprs: &[String]) -> Result<Vec<Threshold>, String> {
    exprs.iter().map(|e| Threshold::parse(e)).collect()
}

/// Prints the threshold outcomes; true if all passed.
fn judge(report: &Report, thresholds: &[Threshold], implicit: bool) -> bool {
    let outcomes: Vec<Outcome> = if thresholds.is_empty() && implicit {
        // without explicit thresholds: no device failed and at least one reached its goal
        implicit_outcomes(report)
    } else {
        thresholds.iter().map(|t| t.check(report)).collect()
    };
    if !thresholds.is_empty() {
        println!("thresholds:");
    }
    let mut ok = true;
    for o in &outcomes {
        if !thresholds.is_empty() || !o.pass {
            println!("  {o}");
        }
        ok &= o.pass;
    }
    ok
}

/// What to do about failures whose reason alone does not say it, one line each (`  hint: …`).
pub fn hints(report: &Report) -> Vec<String> {
    let mut hints = Vec::new();
    // devices the server does not know answer 404 at bootstrap (spec 4.1); the reason is
    // `bootstrap: HTTP 404 4004 Device not found` (`failure_reason`, src/fleet/sched/feed.rs)
    let unknown = format!("{}: HTTP 404", posemu_device::Step::Bootstrap.name());
    if report.failures.keys().any(|k| k.starts_with(&unknown)) {
        hints.push(if report.config.device_source.starts_with("derived") {
            "  hint: the server does not know these devices: it must derive them from the same fleet seed \
             (start it with `posemu sandbox --fleet-seed SEED`, or POSEMU_FLEET_SEED, and the same \
             --fleet-prefix; give this fleet the same --fleet-seed), or give pre-provisioned devices \
             with --devices-file"
                .to_string()
        } else {
            "  hint: the server does not know these devices: provision the devices of --devices-file \
             on it, or check --server"
                .to_string()
        });
    }
    hints
}

/// The summary, then its hints.
fn print_summary(report: &Report) {
    print!("{}", report.summary());
    for h in hints(report) {
        println!("{h}");
    }
}

fn merge(m: MergeArgs) -> ExitCode {
    let thresholds = match parse_thresholds(&m.thresholds) {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let mut reports = Vec::new();
    for p in &m.reports {
        match Report::load(p) {
            Ok(r) => reports.push(r),
            Err(e) => return usage(e),
        }
    }
    let merged = match Report::merge(&reports) {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    print_summary(&merged);
    if let Some(path) = &m.report {
        if let Err(e) = merged.write(path) {
            super::error(e);
            return ExitCode::from(1);
        }
        println!("merged report written to {}", path.display());
    }
    if judge(&merged, &thresholds, false) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Builds the fleet's configuration from the flags; errors name the flag.
pub fn config(a: &RunArgs) -> Result<FleetConfig, String> {
    let poll = parse_poll_range(&a.poll).map_err(|e| format!("--poll: {e}"))?;
    let spec = (Duration::from_secs(3), Duration::from_secs(5));
    if !a.unsafe_fast_poll && (poll.0 < spec.0 || poll.1 > spec.1) {
        return Err(format!("--poll: {} is outside 3–5 s (spec 4.3)", a.poll));
    }
    let ramp = parse_ramp(&a.ramp).map_err(|e| format!("--ramp: {e}"))?;
    let claim_after = if a.no_claim {
        if a.duration.is_none() {
            return Err(
                "--no-claim needs --duration: without claims no device ever finishes".into(),
            );
        }
        None
    } else {
        Some(Dist::parse(&a.claim_after).map_err(|e| format!("--claim-after: {e}"))?)
    };
    let shard = match &a.shard {
        Some(s) => Shard::parse(s).map_err(|e| format!("--shard: {e}"))?,
        None => Shard::WHOLE,
    };
    if !is_valid_fleet_prefix(&a.fleet_prefix) {
        return Err(format!(
            "--fleet-prefix: {:?} is not 2 uppercase hex digits (e.g. F0)",
            a.fleet_prefix
        ));
    }
    let (source, fleet_devices) = match &a.devices_file {
        Some(path) => {
            let devices = load_devices_file(path).map_err(|e| format!("--devices-file: {e}"))?;
            let n = match a.devices {
                Some(n) if n as usize > devices.len() => {
                    return Err(format!(
                        "--devices {n}: the file {} has only {} devices",
                        path.display(),
                        devices.len()
                    ))
                }
                Some(n) => n,
                None => devices.len() as u32,
            };
            (DeviceSource::File(Arc::new(devices)), n)
        }
        None => {
            let n = a.devices.unwrap_or(0);
            let last = a.first_device as u64 + n as u64;
            if last > MAX_DERIVED_INDEX as u64 + 1 {
                return Err(format!(
                    "--devices {n} from --first-device {}: derived ids have 6 hex digits, so the last index may be at most {MAX_DERIVED_INDEX}",
                    a.first_device
                ));
            }
            if a.fleet_seed.is_empty() {
                return Err("--fleet-seed: the seed may not be empty".into());
            }
            (
                DeviceSource::Derived {
                    seed: Secret(a.fleet_seed.clone()),
                    prefix: a.fleet_prefix.clone(),
                    first: a.first_device,
                },
                n,
            )
        }
    };
    if fleet_devices == 0 {
        return Err("--devices: a fleet needs at least one device".into());
    }
    let server = match (&a.server, a.sandbox_process) {
        (Some(url), _) => ServerChoice::Url(url.clone()),
        (None, true) => ServerChoice::Process {
            exe: std::env::current_exe()
                .map_err(|e| format!("--sandbox-process: cannot find posemu itself: {e}"))?,
        },
        (None, false) => ServerChoice::Embedded,
    };
    if a.code_ttl.is_some() && a.server.is_some() {
        return Err("--code-ttl applies to the embedded sandbox only (no --server)".into());
    }
    if matches!(source, DeviceSource::File(_)) && a.server.is_none() {
        return Err(
            "--devices-file is for real servers: give --server (the embedded sandbox serves derived devices)".into(),
        );
    }
    let merchant = match (&a.merchant_client_id, &a.merchant_client_secret) {
        (Some(id), Some(secret)) => Some(MerchantCredentials::new(id, secret)),
        _ => None,
    };
    if a.max_in_flight == 0 {
        return Err("--max-in-flight: must be at least 1".into());
    }
    let faults = a
        .faulty
        .iter()
        .map(|f| FaultShare::parse(f).map_err(|e| format!("--faulty {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let charges = match a.charges_per_minute {
        Some(per_minute) => {
            if a.duration.is_none() {
                return Err("--charges-per-minute needs --duration: terminals that take payments never finish by themselves".into());
            }
            Some(ChargePlan {
                per_minute,
                mix: a.charge_mix.clone(),
            })
        }
        None => None,
    };
    let profile = posemu_profile::builtin_named(posemu_profile::DEFAULT_PROFILE)
        .ok_or("the default profile is missing from this build")?;
    Ok(FleetConfig {
        source,
        fleet_devices,
        shard,
        server,
        ramp_per_sec: ramp,
        poll,
        unclamped_poll: a.unsafe_fast_poll,
        spread_first_poll: !a.no_poll_spread,
        claim_after,
        merchant,
        duration: a.duration,
        connection_per_device: a.connection_per_device,
        max_in_flight: a.max_in_flight,
        workers: a.workers,
        transport: TransportConfig {
            connect_timeout: a.connect_timeout,
            request_timeout: a.request_timeout,
            ..TransportConfig::default()
        },
        seed: a.seed.unwrap_or_else(rand::random),
        code_ttl: a.code_ttl.map(Duration::from_secs),
        faults,
        user_agent: profile.user_agent(),
        app_version: profile.app_version.clone(),
        charges,
    })
}

async fn run_fleet(a: RunArgs) -> ExitCode {
    let thresholds = match parse_thresholds(&a.thresholds) {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let cfg = match config(&a) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let ui = if !a.headless && std::io::stdout().is_terminal() {
        Ui::Dashboard
    } else if std::io::stderr().is_terminal() {
        Ui::ProgressLines
    } else {
        Ui::Quiet
    };
    let result = match crate::fleet::run(cfg, ui).await {
        Ok(r) => r,
        Err(e) => {
            super::error(e);
            return ExitCode::from(1);
        }
    };
    let report = result.report;
    print_summary(&report);
    if let Some(path) = &a.report {
        match report.write(path) {
            Ok(()) => println!("report written to {}", path.display()),
            Err(e) => {
                super::error(e);
                return ExitCode::from(1);
            }
        }
    }
    let passed = judge(&report, &thresholds, true);
    if result.stopped_by == crate::fleet::live::StopReason::Interrupted {
        return ExitCode::from(130);
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_grammar_is_the_readmes_and_names_every_endpoint() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(THRESHOLD_GRAMMAR),
            "the README's Thresholds block differs from THRESHOLD_GRAMMAR"
        );
        for e in crate::fleet::stats::Endpoint::all() {
            assert!(THRESHOLD_GRAMMAR.contains(e.name()), "{}", e.name());
        }
    }
}
