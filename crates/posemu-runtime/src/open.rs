//! Opening one device from plain options (what the POS screen, `activate` and `demo` share):
//! against a server, or an embedded sandbox started in-process. The CLI's flags convert to
//! [`DeviceOptions`]; nothing here knows about clap.

use std::sync::Arc;
use std::time::Duration;

use super::home::{Home, HomeError};
use super::session::{DeviceSession, SessionError, SessionOptions};
use posemu_client::{DeviceFaults, TransportConfig};
use posemu_profile::Profile;
use posemu_protocol::clock::{Clock, SystemClock, WarpClock};
use posemu_sandbox::{Sandbox, SandboxConfig, SandboxError};

/// Progress against the embedded sandbox is saved under this key: it gets a new port every run
/// but is the same server to the user.
pub const EMBEDDED_PROGRESS_KEY: &str = "embedded-sandbox";

/// Everything that says which device to open and how it behaves.
#[derive(Debug, Clone)]
pub struct DeviceOptions {
    /// A profile name (user profiles, then shipped ones) or a path to a .toml file.
    pub profile: String,
    /// The server's base URL; `None` starts the embedded sandbox.
    pub server: Option<String>,
    pub poll_interval: Duration,
    /// Forget saved progress first.
    pub fresh: bool,
    pub ignore_min_version: bool,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Embedded sandbox only: the pairing-code lifetime.
    pub code_ttl: Option<Duration>,
    /// Timers (and the embedded sandbox's clock) run this many times faster (tests).
    pub time_warp: u32,
    pub faults: DeviceFaults,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        let transport = TransportConfig::default();
        DeviceOptions {
            profile: posemu_profile::DEFAULT_PROFILE.to_string(),
            server: None,
            poll_interval: posemu_device::poll::POLL_DEFAULT,
            fresh: false,
            ignore_min_version: false,
            connect_timeout: transport.connect_timeout,
            request_timeout: transport.request_timeout,
            code_ttl: None,
            time_warp: 1,
            faults: DeviceFaults::NONE,
        }
    }
}

/// Why a device could not be opened; each says which option or file was at fault.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Home(HomeError),
    #[error("--profile: {0}")]
    Profile(HomeError),
    #[error("embedded sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    #[error("--code-ttl applies to the embedded sandbox only (no --server)")]
    CodeTtlNeedsEmbedded,
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// An opened device, and the sandbox it talks to if embedded.
pub struct OpenDevice {
    pub session: DeviceSession,
    pub sandbox: Option<Sandbox>,
    pub server: String,
    /// The wall clock the device and an embedded sandbox share (warped with `time_warp`).
    pub clock: Arc<dyn Clock>,
}

impl DeviceOptions {
    /// The wall clock: the system's, or one running `time_warp` times faster.
    pub fn clock(&self) -> Arc<dyn Clock> {
        if self.time_warp > 1 {
            Arc::new(WarpClock::new(self.time_warp))
        } else {
            Arc::new(SystemClock)
        }
    }

    /// The embedded sandbox for `profile`: on `clock`, with `code_ttl`, and the profile
    /// provisioned if it is not a shipped one.
    pub fn sandbox_config(&self, profile: &Profile, clock: Arc<dyn Clock>) -> SandboxConfig {
        let mut cfg = SandboxConfig {
            clock,
            ..SandboxConfig::default()
        };
        if let Some(ttl) = self.code_ttl {
            cfg.code_ttl = ttl;
        }
        if !cfg
            .profiles
            .iter()
            .any(|p| p.device_id == profile.device_id)
        {
            cfg.profiles.push(profile.clone());
        }
        cfg
    }

    /// The device session's options against `server`; progress is saved under `progress_key`
    /// if given (see [`SessionOptions::progress_key`]).
    pub fn session_options(&self, server: &str, progress_key: Option<String>) -> SessionOptions {
        SessionOptions {
            server: server.to_string(),
            poll_interval: self.poll_interval,
            fresh: self.fresh,
            faults: self.faults,
            ignore_min_version: self.ignore_min_version,
            transport: TransportConfig {
                connect_timeout: self.connect_timeout,
                request_timeout: self.request_timeout,
                ..TransportConfig::default()
            },
            progress_key,
            time_warp: self.time_warp,
            pace: Duration::ZERO,
        }
    }
}

/// Opens the device `opts` describe in posemu's home ([`Home::discover`]) on
/// [`DeviceOptions::clock`]. Must run inside a tokio runtime.
pub async fn open_device(opts: &DeviceOptions) -> Result<OpenDevice, OpenError> {
    let home = Home::discover().map_err(OpenError::Home)?;
    open_device_in(&home, opts, opts.clock()).await
}

/// Resolves the profile in `home`, starts the embedded sandbox if there is no server, loads
/// saved progress.
pub async fn open_device_in(
    home: &Home,
    opts: &DeviceOptions,
    clock: Arc<dyn Clock>,
) -> Result<OpenDevice, OpenError> {
    let profile = home
        .find_profile(&opts.profile)
        .map_err(OpenError::Profile)?;
    if opts.code_ttl.is_some() && opts.server.is_some() {
        return Err(OpenError::CodeTtlNeedsEmbedded);
    }
    let (sandbox, server, progress_key) = match &opts.server {
        Some(url) => (None, url.trim_end_matches('/').to_string(), None),
        None => {
            let sb = Sandbox::start(opts.sandbox_config(&profile, clock.clone())).await?;
            let url = sb.url();
            (Some(sb), url, Some(EMBEDDED_PROGRESS_KEY.to_string()))
        }
    };
    let session_opts = opts.session_options(&server, progress_key);
    let session = DeviceSession::open(home, profile, &session_opts, clock.clone())?;
    Ok(OpenDevice {
        session,
        sandbox,
        // as shown on screens: credentials go out as basic auth only (the transport has them)
        server: posemu_protocol::text::strip_userinfo(&server).into_owned(),
        clock,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_options_are_told_apart_by_variant() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let unknown = DeviceOptions {
            profile: "no-such-terminal".into(),
            ..DeviceOptions::default()
        };
        let e = open_device_in(&home, &unknown, clock.clone()).await.err();
        assert!(matches!(e, Some(OpenError::Profile(_))), "{e:?}");
        assert!(e.unwrap().to_string().starts_with("--profile: "));

        let ttl_with_server = DeviceOptions {
            server: Some("http://127.0.0.1:9".into()),
            code_ttl: Some(Duration::from_secs(60)),
            ..DeviceOptions::default()
        };
        let e = open_device_in(&home, &ttl_with_server, clock).await.err();
        assert!(matches!(e, Some(OpenError::CodeTtlNeedsEmbedded)), "{e:?}");
    }

    #[tokio::test]
    async fn without_a_server_the_embedded_sandbox_starts_on_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let opts = DeviceOptions {
            code_ttl: Some(Duration::from_secs(60)),
            ..DeviceOptions::default()
        };
        let open = open_device_in(&home, &opts, Arc::new(SystemClock))
            .await
            .unwrap();
        let sandbox = open.sandbox.as_ref().expect("embedded");
        assert_eq!(open.server, sandbox.url());
        assert!(
            open.server.starts_with("http://127.0.0.1:"),
            "{}",
            open.server
        );
        assert_eq!(open.session.profile.name, posemu_profile::DEFAULT_PROFILE);
    }
}
