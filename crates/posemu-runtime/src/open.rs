//! Opening one device from plain options (what the POS screen, `activate` and `demo` share):
//! against a server, or an embedded sandbox started in-process. The CLI's flags convert to
//! [`DeviceOptions`]; nothing here knows about clap.

use std::net::SocketAddr;
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
    /// Embedded sandbox only: where it listens. Port 0 is a free port; another port is tried
    /// first and, when busy, a free one on the same address is taken and said in
    /// [`OpenDevice::notice`].
    pub listen: SocketAddr,
    /// `server` is posemu's embedded sandbox, kept running from an earlier device (a profile
    /// switch on the POS screen): progress is saved under the embedded sandbox's key, as when
    /// the sandbox is started for this device, not under its URL.
    pub kept_sandbox: bool,
}

/// The POS screen's embedded sandbox address (the demo's too): stable, so an open portal tab or
/// a scanned QR code keeps working across launches.
pub const STABLE_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8765);

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
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            kept_sandbox: false,
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
    /// Something to tell the user about how it was opened (the sandbox's port was busy).
    pub notice: Option<String>,
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
            listen: self.listen,
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
    let (sandbox, server, progress_key, notice) = match &opts.server {
        Some(url) => (
            None,
            url.trim_end_matches('/').to_string(),
            opts.kept_sandbox.then(|| EMBEDDED_PROGRESS_KEY.to_string()),
            None,
        ),
        None => {
            let (sb, notice) =
                start_sandbox_or_free_port(opts.sandbox_config(&profile, clock.clone())).await?;
            let url = sb.url();
            (
                Some(sb),
                url,
                Some(EMBEDDED_PROGRESS_KEY.to_string()),
                notice,
            )
        }
    };
    let session_opts = opts.session_options(&server, progress_key);
    let session = DeviceSession::open(home, profile, &session_opts, clock.clone())?;
    if let Some(sb) = &sandbox {
        remember_device(sb, &session, clock.as_ref());
    }
    Ok(OpenDevice {
        session,
        sandbox,
        // as shown on screens: credentials go out as basic auth only (the transport has them)
        server: posemu_protocol::text::strip_userinfo(&server).into_owned(),
        clock,
        notice,
    })
}

/// An embedded sandbox starts empty on every run, while its device comes back from saved
/// progress: a device saved as claimed or activated is made known to it so again
/// ([`Sandbox::restore`]), as a server that kept its state would know it. So the terminal that
/// says "ready for payments" is (its first sale fetches new keys and goes through), and one
/// claimed before a crash goes on to attest, instead of finding itself unknown and pairing again.
pub fn remember_device(sb: &Sandbox, session: &DeviceSession, clock: &dyn Clock) {
    let progress = &session.driver.state().progress;
    let at = progress
        .activated_at
        .as_deref()
        .and_then(posemu_protocol::clock::parse_rfc3339)
        .unwrap_or_else(|| clock.now());
    sb.restore(&progress.device_id, progress.status, at.timestamp_millis());
}

/// Starts a sandbox on `cfg.listen`; when that port is taken, on a free port of the same
/// address, with a notice that says where the portal went.
pub async fn start_sandbox_or_free_port(
    mut cfg: SandboxConfig,
) -> Result<(Sandbox, Option<String>), SandboxError> {
    let wanted = cfg.listen;
    match Sandbox::start(cfg.clone()).await {
        Ok(sb) => Ok((sb, None)),
        Err(SandboxError::Bind { source, .. })
            if source.kind() == std::io::ErrorKind::AddrInUse && wanted.port() != 0 =>
        {
            cfg.listen.set_port(0);
            let sb = Sandbox::start(cfg).await?;
            let notice = format!(
                "Port {} is busy: the merchant portal is at {} instead",
                wanted.port(),
                sb.portal_url(None)
            );
            Ok((sb, Some(notice)))
        }
        Err(e) => Err(e),
    }
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

    /// A device opened on the embedded sandbox kept from another (a profile switch) saves its
    /// progress where it does when the sandbox is started for it, not under the URL.
    #[tokio::test]
    async fn a_kept_embedded_sandbox_shares_the_embedded_progress_key() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let started = open_device_in(&home, &DeviceOptions::default(), Arc::new(SystemClock))
            .await
            .unwrap();
        let url = started.server.clone();
        let kept = DeviceOptions {
            server: Some(url.clone()),
            kept_sandbox: true,
            ..DeviceOptions::default()
        };
        let other = DeviceOptions {
            server: Some(url),
            ..DeviceOptions::default()
        };
        let path = |o: OpenDevice| o.session.store.path().to_path_buf();
        let on_kept = path(
            open_device_in(&home, &kept, Arc::new(SystemClock))
                .await
                .unwrap(),
        );
        let on_url = path(
            open_device_in(&home, &other, Arc::new(SystemClock))
                .await
                .unwrap(),
        );
        assert_eq!(path(started), on_kept);
        assert_ne!(on_kept, on_url);
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

    #[tokio::test]
    async fn a_chosen_port_is_kept_across_launches_and_a_busy_one_falls_back_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        // a port that is free now (tests must not depend on 8765 being free)
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opts = DeviceOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            ..DeviceOptions::default()
        };
        let first = open_device_in(&home, &opts, Arc::new(SystemClock))
            .await
            .unwrap();
        assert_eq!(first.server, format!("http://127.0.0.1:{port}"));
        assert!(first.notice.is_none());
        if let Some(sb) = first.sandbox {
            sb.shutdown().await;
        }
        let again = open_device_in(&home, &opts, Arc::new(SystemClock))
            .await
            .unwrap();
        assert_eq!(
            again.server,
            format!("http://127.0.0.1:{port}"),
            "the same URL again"
        );
        // while it runs, that port is busy: the next one falls back to a free port, and says so
        let third = open_device_in(&home, &opts, Arc::new(SystemClock))
            .await
            .unwrap();
        assert_ne!(third.server, again.server);
        let notice = third.notice.expect("a notice");
        assert!(
            notice.starts_with(&format!("Port {port} is busy")),
            "{notice}"
        );
        assert!(notice.contains(&third.server), "{notice}");
    }

    #[test]
    fn only_the_screen_defaults_to_the_stable_address() {
        assert_eq!(DeviceOptions::default().listen.port(), 0);
        assert_eq!(STABLE_LISTEN.to_string(), "127.0.0.1:8765");
    }
}
