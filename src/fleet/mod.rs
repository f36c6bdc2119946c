//! `posemu fleet`: thousands of emulated terminals at once, each running the same device state
//! machine as the POS screen, driven by a small scheduler instead of a task per device.
//!
//! - [`sched`]: workers that own slabs of devices, a timer heap each, bounded concurrent calls.
//! - [`stats`] / [`report`]: HDR histograms per endpoint, counts per state and error code, the
//!   JSON report that merges exactly across shards, the human summary.
//! - [`threshold`]: `--threshold` checks for CI.
//! - [`dashboard`]: the live ratatui view; [`live`]: what it and the headless progress read.
//! - [`devices`], [`dist`], [`server`], [`procstat`]: inputs, flag grammars, the server, costs.

pub mod charges;
pub mod dashboard;
pub mod devices;
pub mod dist;
pub mod fault_shares;
pub mod live;
pub mod pay_stats;
pub mod procstat;
pub mod report;
pub mod sched;
pub mod server;
pub mod stats;
pub mod threshold;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use posemu_client::HeaderValue;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

pub use devices::DeviceSource;
pub use dist::{Dist, Shard};
pub use report::{Report, RunConfig};
pub use server::ServerChoice;
pub use stats::{State, Stats};
pub use threshold::Threshold;

use live::{LiveTally, StopReason};
use posemu_client::{MerchantCredentials, MerchantSession, Transport, TransportConfig};
use posemu_sandbox::FleetSeed;
use sched::{ClaimMode, Plan, Worker};

/// Everything a fleet run needs; the CLI builds it from flags, tests build it directly.
#[derive(Clone)]
pub struct FleetConfig {
    pub source: DeviceSource,
    /// Devices of the whole fleet; this run takes `shard`'s part of them.
    pub fleet_devices: u32,
    pub shard: Shard,
    pub server: ServerChoice,
    pub ramp_per_sec: f64,
    pub poll: (Duration, Duration),
    /// Test knob: allow poll intervals below the spec's 3 s.
    pub unclamped_poll: bool,
    /// First poll of each code at a random point within one interval (default), so the fleet
    /// never polls in lockstep; off, it comes after exactly one interval (deterministic tests).
    pub spread_first_poll: bool,
    /// Claim each code after this delay; `None` is `--no-claim`.
    pub claim_after: Option<Dist>,
    /// Claim through `POST /pos/claim` as this merchant instead of the sandbox helper.
    pub merchant: Option<MerchantCredentials>,
    pub duration: Option<Duration>,
    pub connection_per_device: bool,
    pub max_in_flight: usize,
    /// Scheduler workers; 0 = one per core.
    pub workers: usize,
    pub transport: TransportConfig,
    /// Seeds the fleet's own randomness (poll phases, claim delays, nonces).
    pub seed: u64,
    /// Embedded or process sandbox: pairing-code lifetime.
    pub code_ttl: Option<Duration>,
    /// Device faults as fleet-wide shares (`--faulty`).
    pub faults: Vec<fault_shares::FaultShare>,
    /// The User-Agent every device sends, and the app version in it.
    pub user_agent: String,
    pub app_version: String,
    /// Activated terminals take payments (`--charges-per-minute`, `--charge-mix`); needs a
    /// `duration`, since charging terminals never finish by themselves.
    pub charges: Option<charges::ChargePlan>,
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("{0}")]
    Setup(String),
}

/// How the run shows itself while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ui {
    /// Nothing (tests, or stderr not a terminal).
    Quiet,
    /// One progress line a second on stderr.
    ProgressLines,
    Dashboard,
}

/// A finished run.
pub struct RunResult {
    pub report: Report,
    pub stopped_by: StopReason,
}

fn fingerprint(seed: &str) -> String {
    hex::encode(&Sha256::digest(seed.as_bytes())[..8])
}

impl FleetConfig {
    fn describe(&self, server: &str, workers: usize) -> RunConfig {
        let (source, seed_fp) = match &self.source {
            DeviceSource::Derived {
                seed,
                prefix,
                first,
            } => (
                format!(
                    "derived {}…{}",
                    posemu_protocol::provision::fleet_device_id(prefix, *first),
                    posemu_protocol::provision::fleet_device_id(
                        prefix,
                        first + self.fleet_devices.saturating_sub(1)
                    )
                ),
                Some(fingerprint(seed.expose())),
            ),
            DeviceSource::File(d) => (
                format!(
                    "file of {} devices, {}…{}",
                    d.len(),
                    d.first().map_or("", |x| x.device_id.as_str()),
                    d.last().map_or("", |x| x.device_id.as_str())
                ),
                None,
            ),
        };
        RunConfig {
            posemu_version: env!("CARGO_PKG_VERSION").into(),
            fleet_devices: self.fleet_devices,
            device_source: source,
            seed_fingerprint: seed_fp,
            // credentials go out as basic auth only, never into a report
            server: posemu_protocol::text::strip_userinfo(server).into_owned(),
            ramp_per_sec: self.ramp_per_sec,
            poll: format!(
                "{}ms-{}ms",
                self.poll.0.as_millis(),
                self.poll.1.as_millis()
            ),
            claim: self.claim_after.map(|d| {
                let how = if self.merchant.is_some() {
                    "POST /pos/claim"
                } else {
                    "sandbox helper"
                };
                format!("{how} after {d}")
            }),
            duration_seconds: self.duration.map(|d| d.as_secs_f64()),
            connection_per_device: self.connection_per_device,
            device_faults: self.faults.iter().map(|f| f.to_string()).collect(),
            max_in_flight: self.max_in_flight,
            workers,
            charges: self.charges.as_ref().map(|c| c.describe()),
        }
    }

    fn sandbox_fleet(&self) -> Option<FleetSeed> {
        match &self.source {
            DeviceSource::Derived { seed, prefix, .. } => Some(FleetSeed {
                seed: seed.expose().clone(),
                prefix: prefix.clone(),
            }),
            DeviceSource::File(_) => None,
        }
    }
}

/// Runs a fleet to the end (every device settled, `--duration`, or a stop from the user) and
/// builds its report. Must run inside a multi-threaded tokio runtime.
pub async fn run(cfg: FleetConfig, ui: Ui) -> Result<RunResult, FleetError> {
    let setup = |e: String| FleetError::Setup(e);
    if cfg.charges.is_some() && cfg.duration.is_none() {
        return Err(setup(
            "charges need a duration: terminals that take payments never finish by themselves"
                .into(),
        ));
    }
    let rss_before = procstat::current_rss();
    let server = server::Server::start(
        &cfg.server,
        server::SandboxSetup {
            fleet: cfg.sandbox_fleet(),
            code_ttl: cfg.code_ttl,
        },
    )
    .await
    .map_err(setup)?;
    let transport = Transport::new(&server.url, cfg.transport).map_err(|e| setup(e.to_string()))?;
    let user_agent = HeaderValue::from_str(&cfg.user_agent).map_err(|_| {
        setup(format!(
            "User-Agent {:?} is not a header value",
            cfg.user_agent
        ))
    })?;
    let claim = match (cfg.claim_after, &cfg.merchant) {
        (None, _) => None,
        (Some(dist), None) => Some((ClaimMode::SandboxHelper, dist)),
        (Some(dist), Some(creds)) => {
            let session = MerchantSession::new(transport.clone(), creds.clone());
            // sign in once up front: bad credentials fail the run now, not every claim later,
            // and the first claims do not all sign in at once
            session
                .login()
                .await
                .map_err(|e| setup(format!("merchant sign-in: {e}")))?;
            Some((ClaimMode::Merchant(Arc::new(session)), dist))
        }
    };
    let workers = if cfg.workers == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        cfg.workers
    };
    let positions = cfg.shard.range(cfg.fleet_devices);
    let devices = positions.len() as u64;
    let epoch = tokio::time::Instant::now();
    let started_at = posemu_protocol::clock::rfc3339(chrono::Utc::now());
    // only for terminals that take payments: there a charge must not wait behind another
    // device's activation; a storm without payments was slower with it (the decoding threads
    // competed with the workers for the 2 cores: 9.3 and 10.8 s against 6.1 and 8.8 s, poll
    // lateness p99 1.2–2.2 s against 0.4 s)
    let offload = match cfg.charges {
        Some(_) => Some((
            tokio::runtime::Handle::current(),
            transport
                .direct_pool()
                .map_err(|e| setup(format!("fleet connection pool: {e}")))?,
        )),
        None => None,
    };
    let plan = Arc::new(Plan {
        offload,
        server: transport.base_url().to_string(),
        transport,
        headers: posemu_client::SharedHeaders::fleet(user_agent),
        app_version: cfg.app_version.clone(),
        poll: cfg.poll,
        unclamped_poll: cfg.unclamped_poll,
        spread_first_poll: cfg.spread_first_poll,
        faults: cfg.faults.clone(),
        claim,
        ramp_per_sec: cfg.ramp_per_sec,
        connection_per_device: cfg.connection_per_device,
        in_flight_per_worker: cfg.max_in_flight.div_ceil(workers).max(1),
        epoch,
        seed: cfg.seed,
        charges: cfg.charges.clone(),
        unsettled: std::sync::atomic::AtomicU64::new(devices),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let stats: Vec<Arc<Mutex<Stats>>> = (0..workers)
        .map(|_| Arc::new(Mutex::new(Stats::default())))
        .collect();
    let mut handles = Vec::with_capacity(workers);
    for (i, s) in stats.iter().enumerate() {
        let w = Worker::new(
            plan.clone(),
            cfg.source.clone(),
            positions.clone(),
            i as u32,
            workers as u32,
            s.clone(),
        )
        .map_err(|e| setup(format!("fleet worker: {e}")))?;
        let done = w
            .spawn_thread(stop_rx.clone())
            .map_err(|e| setup(format!("cannot start a fleet worker thread: {e}")))?;
        handles.push(done);
    }
    let run_config = cfg.describe(&server.description, workers);
    let live = Arc::new(LiveTally::new(
        stats.clone(),
        epoch,
        devices,
        run_config.clone(),
        stop_tx,
    ));
    let watcher = live.clone().watch(cfg.duration, ui);
    for done in handles {
        // an error means the worker's thread ended early (a panic): its stats still count
        let _ = done.await;
    }
    live.finish();
    // before the watcher: a dashboard stays open on the final numbers until `q`
    let elapsed = epoch.elapsed().as_secs_f64();
    let _ = watcher.await;
    let stopped_by = live.stop_reason().unwrap_or(StopReason::Settled);
    let mut total = Stats::default();
    for s in &stats {
        total.add(&s.lock());
    }
    let sandbox_usage = server.stop().await;
    let fleet_usage = procstat::own();
    let bytes_per_device = rss_before
        .filter(|_| devices > 0)
        .map(|b| fleet_usage.peak_rss_bytes.saturating_sub(b) / devices);
    let report = Report::build(
        &total,
        report::RunFacts {
            config: run_config,
            shard: cfg.shard.to_string(),
            started_at,
            elapsed_seconds: elapsed,
            stopped_by: stopped_by.name().into(),
            fleet: fleet_usage,
            sandbox: sandbox_usage,
            bytes_per_device,
        },
    );
    Ok(RunResult { report, stopped_by })
}
