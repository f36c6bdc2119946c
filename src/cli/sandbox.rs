//! `posemu sandbox`: the embedded Viopay server, standalone.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::mpsc;

use posemu_protocol::provision::is_valid_fleet_prefix;
use posemu_protocol::version::Version;
use posemu_sandbox::{FaultConfig, FleetSeed, Sandbox, SandboxConfig, SandboxError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8765", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// A directory of device profiles (*.toml) to provision; repeatable. Default: the shipped profiles.
    #[arg(long = "profiles", value_name = "DIR")]
    pub profiles: Vec<PathBuf>,
    /// Serve every POS-{prefix}xxxxxx device with secrets derived from this seed (spec section 5);
    /// from the environment it stays out of `ps`.
    #[arg(
        long,
        value_name = "SEED",
        env = "POSEMU_FLEET_SEED",
        hide_env_values = true
    )]
    pub fleet_seed: Option<String>,
    /// Two uppercase hex digits of derived device ids.
    #[arg(long, default_value = "F0", value_name = "HH", value_parser = parse_prefix)]
    pub fleet_prefix: String,
    /// Pairing-code lifetime in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub code_ttl: u64,
    /// Attestation and merchant token lifetime in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub token_ttl: u64,
    /// The min_supported_version that bootstrap reports.
    #[arg(long, default_value = "1.3.5", value_name = "X.Y.Z", value_parser = parse_version)]
    pub min_version: String,
    /// Answer 426 to devices whose app version is below --min-version.
    #[arg(long)]
    pub enforce_min_version: bool,
    /// Fault injection rules (TOML).
    #[arg(long, value_name = "FILE")]
    pub faults: Option<PathBuf>,
    /// Seed of codes, tokens, keys and fault dice (reproducible runs).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Settle approved payments every SECS seconds of sandbox clock, as POST /sandbox/settle
    /// would (spec 7.10); 0 never settles on its own.
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    pub settle_every: u64,
    /// Turn off the magic amounts of spec 7.7 (amounts ending in 05, 10, 51, 54, 55, 65, 68,
    /// 91); test cards still work.
    #[arg(long)]
    pub no_magic_amounts: bool,
    /// Do not log one line per request.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_prefix(s: &str) -> Result<String, String> {
    if is_valid_fleet_prefix(s) {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not 2 uppercase hex digits (e.g. F0)"))
    }
}

fn parse_version(s: &str) -> Result<String, String> {
    Version::parse(s)
        .map(|_| s.to_string())
        .ok_or_else(|| format!("{s:?} is not a version like 1.3.5"))
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("posemu sandbox: {msg}");
    ExitCode::from(2)
}

/// Builds the server config from the flags; errors name the flag or file.
pub fn config(args: &Args) -> Result<SandboxConfig, String> {
    let mut profiles = Vec::new();
    if args.profiles.is_empty() {
        profiles = posemu_profile::builtin();
    }
    for dir in &args.profiles {
        profiles.extend(posemu_profile::load_dir(dir).map_err(|e| format!("--profiles: {e}"))?);
    }
    let faults = match &args.faults {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--faults {}: cannot read: {e}", path.display()))?;
            FaultConfig::from_toml(&text)
                .map_err(|e| format!("--faults {}: {e}", path.display()))?
        }
        None => FaultConfig::default(),
    };
    Ok(SandboxConfig {
        listen: args.listen,
        profiles,
        fleet: args.fleet_seed.as_ref().map(|s| FleetSeed {
            seed: s.clone(),
            prefix: args.fleet_prefix.clone(),
        }),
        code_ttl: Duration::from_secs(args.code_ttl),
        token_ttl: Duration::from_secs(args.token_ttl),
        min_version: args.min_version.clone(),
        enforce_min_version: args.enforce_min_version,
        faults,
        seed: args.seed,
        settle_every: (args.settle_every > 0).then(|| Duration::from_secs(args.settle_every)),
        magic_amounts: !args.no_magic_amounts,
        ..SandboxConfig::default()
    })
}

pub async fn run(args: Args) -> ExitCode {
    let mut cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    if !args.quiet {
        cfg.request_log = Some(tx);
    }
    // Handlers first: once the first line is out, a SIGTERM must stop us cleanly.
    let stop = match StopSignals::install() {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot install signal handlers: {e}")),
    };
    let sandbox = match Sandbox::start(cfg).await {
        Ok(s) => s,
        Err(e @ SandboxError::Bind { .. }) => return fail(format!("--listen: {e}")),
        Err(e) => return fail(e),
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "posemu sandbox listening on {}", sandbox.url());
    let _ = out.flush();
    let log = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                return;
            }
        }
    });
    stop.wait().await;
    sandbox.shutdown().await;
    log.abort();
    ExitCode::SUCCESS
}

/// Ctrl-C and SIGTERM, registered when created (tokio's `ctrl_c()` would register only when
/// first polled, leaving a window in which the default action kills the process).
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<StopSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(StopSignals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
