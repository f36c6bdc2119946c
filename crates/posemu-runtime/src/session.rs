//! One device, ready to run: its profile, server, HTTP client with an exchange log, saved
//! progress and driver. Shared by the POS screen and `posemu activate`, so quitting one and
//! opening the other resumes the same device.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::driver::{CallFuture, Caller, Driver};
use super::home::{Home, HomeError};
use super::store::ProgressStore;
use posemu_client::{DeviceFaults, DeviceIdentity, ExchangeLog, Transport, TransportConfig};
use posemu_device::{DeviceConfig, DeviceEvent, DeviceState};
use posemu_profile::Profile;
use posemu_protocol::api::ApiCall;
use posemu_protocol::clock::Clock;

/// How many exchanges a single device keeps for the debug view and exports.
pub const EXCHANGE_LOG_CAPACITY: usize = 500;

/// The HTTP client as the driver's [`Caller`].
pub struct HttpCaller {
    pub transport: Transport,
    pub identity: DeviceIdentity,
    pub faults: DeviceFaults,
    pub log: Option<ExchangeLog>,
    pub clock: Arc<dyn Clock>,
}

impl Caller for HttpCaller {
    fn call(&self, call: ApiCall) -> CallFuture {
        // the request is built (signed, sealed) before `call` returns; the future owns clones
        Box::pin(self.transport.call(
            &self.identity,
            &self.faults,
            &call,
            self.clock.now(),
            &mut rand::rng(),
            self.log.as_ref(),
        ))
    }
}

#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub server: String,
    pub poll_interval: Duration,
    /// Forget saved progress first.
    pub fresh: bool,
    pub faults: DeviceFaults,
    pub ignore_min_version: bool,
    pub transport: TransportConfig,
    /// Key under which progress is saved, if not `server` (the embedded sandbox gets a new port
    /// every run but is the same server to the user).
    pub progress_key: Option<String>,
    /// Timers run this many times faster (tests); the clock given to `open` should match.
    pub time_warp: u32,
    /// Hold each call but status polls this long, so each step stays on screen (demos; see
    /// [`Driver::with_pace`]). Zero: no pause.
    pub pace: Duration,
}

impl SessionOptions {
    pub fn new(server: &str) -> SessionOptions {
        SessionOptions {
            server: server.to_string(),
            poll_interval: posemu_device::poll::POLL_DEFAULT,
            fresh: false,
            faults: DeviceFaults::NONE,
            ignore_min_version: false,
            transport: TransportConfig::default(),
            progress_key: None,
            time_warp: 1,
            pace: Duration::ZERO,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Home(#[from] HomeError),
    #[error("--server: {0}")]
    Server(#[from] posemu_client::TransportError),
    #[error("profile {file}: {source}")]
    Identity {
        file: String,
        source: posemu_client::IdentityError,
    },
}

pub struct DeviceSession {
    pub profile: Profile,
    pub transport: Transport,
    pub log: ExchangeLog,
    pub driver: Driver,
    pub events: mpsc::UnboundedReceiver<DeviceEvent>,
    pub store: ProgressStore,
    /// Saved progress that could not be used (moved aside), to tell the user.
    pub resume_problem: Option<String>,
}

impl DeviceSession {
    pub fn open(
        home: &Home,
        profile: Profile,
        opts: &SessionOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<DeviceSession, SessionError> {
        let transport = Transport::new(&opts.server, opts.transport)?;
        let identity = profile_identity(&profile).map_err(|source| SessionError::Identity {
            file: profile
                .source
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| profile.name.clone()),
            source,
        })?;
        let key = opts.progress_key.as_deref().unwrap_or(&opts.server);
        let store = ProgressStore::new(home, &profile.device_id, key);
        if opts.fresh {
            store.clear()?;
        }
        let (progress, resume_problem) = match store.load(&profile.device_id, key) {
            Ok(p) => (p, None),
            Err(problem) => (None, Some(problem.to_string())),
        };
        let mut config =
            DeviceConfig::new(&profile.device_id, key, &profile.app_version, profile.zmk);
        config.poll_interval = opts.poll_interval;
        config.ignore_min_version = opts.ignore_min_version;
        let state = match progress {
            Some(p) => DeviceState::resume(config, p),
            None => DeviceState::new(config),
        };
        let log = ExchangeLog::new(EXCHANGE_LOG_CAPACITY);
        let caller = HttpCaller {
            transport: transport.clone(),
            identity,
            faults: opts.faults,
            log: Some(log.clone()),
            clock: clock.clone(),
        };
        let (driver, events) = Driver::new(
            state,
            Arc::new(caller),
            Some(store.clone()),
            clock,
            rand::random(),
        );
        let driver = driver.with_warp(opts.time_warp).with_pace(opts.pace);
        Ok(DeviceSession {
            profile,
            transport,
            log,
            driver,
            events,
            store,
            resume_problem,
        })
    }
}

/// The identity a profile describes, ready to stamp on requests.
pub fn profile_identity(p: &Profile) -> Result<DeviceIdentity, posemu_client::IdentityError> {
    DeviceIdentity::new(&p.device_id, &p.user_agent(), &p.key_id, p.identity_secret)
}
