//! `posemu demo`: the POS screen and the embedded sandbox on one laptop with no network, for
//! sales demos. The sandbox listens on a stable address (`127.0.0.1:8765`) so the merchant
//! portal's URL, shown on a banner on every screen, can be bookmarked; the merchant's portal
//! session lasts the day. Kiosk flags claim each code and start over by themselves.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::tui::DemoMode;
use posemu_protocol::clock::{Clock, SystemClock};
use posemu_protocol::rules::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
use posemu_runtime::{start_sandbox_or_free_port, DeviceOptions, DeviceSession, Home, OpenDevice};
use posemu_sandbox::SandboxError;

/// How long `--pace slow` holds each call (but status polls) so its step can be explained.
pub const SLOW_PACE: Duration = Duration::from_millis(1800);
/// The merchant's portal session lasts a working day; attestation tokens keep the spec's 300 s.
pub const MERCHANT_TOKEN_TTL: Duration = Duration::from_secs(8 * 3600);
/// Demo progress is saved apart from the POS screen's, so a demo never disturbs it.
const PROGRESS_KEY: &str = "demo-sandbox";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Device profile: a name (user profiles, then shipped ones) or a path to a .toml file.
    #[arg(long, value_name = "NAME|PATH", default_value = posemu_profile::DEFAULT_PROFILE)]
    pub profile: String,
    /// Unattended kiosk: claim each code shown, through the sandbox helper, after DELAY
    /// (default at once; e.g. 20s).
    #[arg(long, value_name = "DELAY", num_args = 0..=1, default_missing_value = super::AUTO_CLAIM_AT_ONCE, value_parser = posemu_protocol::duration::parse)]
    pub auto_claim: Option<Duration>,
    /// slow: each setup step stays on screen about 2 s, long enough to explain; normal: as fast
    /// as the sandbox answers.
    #[arg(long, value_enum, default_value_t = Pace::Normal)]
    pub pace: Pace,
    /// Kiosk: this long after the ready screen shows, reset the device and start over from
    /// power-on, forever (e.g. 30s).
    #[arg(long = "loop", value_name = "AFTER", value_parser = posemu_protocol::duration::parse)]
    pub loop_after: Option<Duration>,
    /// The sandbox's address, so the portal URL is stable; a busy port falls back to a free one.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8765")]
    pub listen: SocketAddr,
    /// Pairing-code lifetime in seconds.
    #[arg(long, value_name = "SECS", default_value_t = posemu_protocol::rules::CODE_TTL_SECS, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub code_ttl: u64,
    /// Seed of the sandbox's codes, tokens and keys: the same demo every run (tests).
    #[arg(long, value_name = "N", hide = true)]
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pace {
    Slow,
    Normal,
}

impl Pace {
    /// How long the driver holds each call.
    pub fn hold(self) -> Duration {
        match self {
            Pace::Slow => SLOW_PACE,
            Pace::Normal => Duration::ZERO,
        }
    }
}

/// A demo ready to show: the device (fresh, on the demo's sandbox) and the screen's options.
pub struct Opened {
    pub options: DeviceOptions,
    pub open: OpenDevice,
    pub mode: DemoMode,
}

impl Args {
    /// The POS screen's options for this demo: the profile, the code lifetime, always fresh,
    /// never a server.
    pub fn device_options(&self) -> DeviceOptions {
        DeviceOptions {
            profile: self.profile.clone(),
            code_ttl: Some(Duration::from_secs(self.code_ttl)),
            fresh: true,
            ..DeviceOptions::default()
        }
    }

    /// Starts the sandbox on `--listen` (a free port on the same address if that one is busy,
    /// said in the answer's notice) and opens the device against it from power-on. Errors are
    /// ready to show as they are.
    pub async fn open(&self, home: &Home, clock: Arc<dyn Clock>) -> Result<Opened, String> {
        let profile = home
            .find_profile(&self.profile)
            .map_err(|e| format!("--profile: {e}"))?;
        let options = self.device_options();
        let mut cfg = options.sandbox_config(&profile, clock.clone());
        cfg.listen = self.listen;
        cfg.merchant_token_ttl = Some(MERCHANT_TOKEN_TTL);
        cfg.seed = self.seed;
        let (sandbox, notice) = start_sandbox_or_free_port(cfg).await.map_err(|e| match e {
            SandboxError::Bind { .. } => format!("--listen: {e}"),
            other => format!("embedded sandbox: {other}"),
        })?;
        let server = sandbox.url();
        let mut opts = options.session_options(&server, Some(PROGRESS_KEY.into()));
        opts.pace = self.pace.hold();
        let session =
            DeviceSession::open(home, profile, &opts, clock.clone()).map_err(|e| e.to_string())?;
        Ok(Opened {
            options,
            open: OpenDevice {
                session,
                sandbox: Some(sandbox),
                server,
                clock,
                notice: None, // the demo's banner says it (DemoMode::notice)
            },
            mode: DemoMode {
                auto_claim: self.auto_claim,
                loop_after: self.loop_after,
                notice,
            },
        })
    }
}

pub async fn run(args: Args) -> ExitCode {
    let _log = crate::tui::init_logging();
    let home = match Home::discover() {
        Ok(h) => h,
        Err(e) => return super::usage(e),
    };
    // Opened before taking the terminal, so a bad flag is a plain message on stderr.
    let opened = match args.open(&home, Arc::new(SystemClock)).await {
        Ok(o) => o,
        Err(e) => return super::usage(e),
    };
    // Left on the main screen for after the demo (the banner shows it meanwhile).
    if let Some(sb) = &opened.open.sandbox {
        eprintln!(
            "posemu demo: merchant portal {} (sign in as {DEMO_CLIENT_ID} / {DEMO_CLIENT_SECRET})",
            sb.portal_url(None)
        );
    }
    if let Some(notice) = &opened.mode.notice {
        eprintln!("posemu demo: {notice}");
    }
    crate::tui::run_demo(opened.options, opened.open, opened.mode).await
}
