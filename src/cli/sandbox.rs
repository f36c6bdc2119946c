//! `posemu sandbox`: the embedded Viopay server, standalone.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use posemu_protocol::provision::is_valid_fleet_prefix;
use posemu_protocol::version::Version;
use posemu_sandbox::{
    FaultConfig, FleetSeed, RequestLog, Sandbox, SandboxConfig, SandboxError, LOG_QUEUE_LINES,
};

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
    #[arg(long, default_value_t = posemu_protocol::rules::CODE_TTL_SECS, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
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
    /// Open connections at most; past it a new connection is answered 503 and closed.
    #[arg(long, value_name = "N", default_value_t = posemu_sandbox::DEFAULT_MAX_CONNECTIONS,
          value_parser = parse_max_connections)]
    pub max_connections: usize,
    /// A host name that `/sandbox/` requests may name in `Host` while listening on a loopback
    /// address (besides loopback addresses and `localhost`); repeatable.
    #[arg(long = "allowed-host", value_name = "NAME", value_parser = parse_host)]
    pub allowed_hosts: Vec<String>,
}

fn parse_max_connections(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a number from 1 to 1000000")),
    }
}

fn parse_host(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'));
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "{s:?} is not a host name (letters, digits, '.', '-')"
        ))
    }
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
    super::usage(msg)
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
        max_connections: args.max_connections,
        allowed_hosts: args.allowed_hosts.clone(),
        ..SandboxConfig::default()
    })
}

pub async fn run(args: Args) -> ExitCode {
    let mut cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    // Handlers first: once the first line is out, a SIGTERM must stop us cleanly.
    let stop = match StopSignals::install() {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot install signal handlers: {e}")),
    };
    // The first line goes out before any request can be answered, so it never waits on a
    // request's log line; request lines go through the log's bounded queue and thread.
    let mut first_line = Some(std::io::stdout());
    let log = if args.quiet {
        None
    } else {
        match RequestLog::spawn_writer(LOG_QUEUE_LINES, std::io::stdout()) {
            Ok(l) => Some(l),
            Err(e) => return fail(format!("cannot start the request log: {e}")),
        }
    };
    cfg.request_log = log.clone();
    let sandbox = match Sandbox::start(cfg).await {
        Ok(s) => s,
        Err(e @ SandboxError::Bind { .. }) => return fail(format!("--listen: {e}")),
        Err(e) => return fail(e),
    };
    if let Some(mut out) = first_line.take() {
        let _ = writeln!(out, "posemu sandbox listening on {}", sandbox.url());
        let _ = out.flush();
    }
    stop.wait().await;
    sandbox.shutdown().await;
    if let Some(dropped) = log.map(|l| l.dropped()).filter(|&n| n > 0) {
        report_detached(super::warning_line(format!(
            "{dropped} request log line(s) dropped: stdout was not read fast enough \
             (the queue holds {LOG_QUEUE_LINES} lines)"
        )));
    }
    ExitCode::SUCCESS
}

/// Writes `msg` to stderr from a thread of its own and waits for it briefly: a stderr pipe
/// that nobody reads must not keep the process from exiting.
fn report_detached(msg: String) {
    let (done, wait) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().spawn(move || {
        eprintln!("{msg}");
        let _ = done.send(());
    });
    if spawned.is_ok() {
        let _ = wait.recv_timeout(Duration::from_millis(200));
    }
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
