//! The embedded Viopay server (axum): every endpoint and rule of the spec, in memory.
//!
//! `Sandbox::start(config)` serves on a loopback port in the current tokio runtime and stops
//! when the handle is dropped; the TUI, `activate`, the fleet and the tests embed it this way,
//! and `posemu sandbox` runs it standalone.
//!
//! In the workspace: depends only on `posemu-protocol` and `posemu-profile`. It never reaches
//! the device side (device, client, runtime): the two sides meet in protocol and over HTTP.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use posemu_profile::Profile;
use posemu_protocol::clock::{Clock, SystemClock};
use posemu_protocol::crypto::Key;
use posemu_protocol::rules::{
    CODE_TTL_SECS, DEFAULT_FLEET_PREFIX, DEFAULT_MIN_VERSION, MERCHANT_TOKEN_TTL_SECS,
};

mod conn;
mod error;
mod extract;
pub mod faults;
mod guard;
mod jwt;
mod log;
mod params;
mod payments;
mod routes;
mod state;
mod trace;

pub use conn::{
    DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS, MAX_HEADERS,
    MAX_HEAD_BYTES,
};
pub use faults::{FaultConfig, FaultRule, Latency};
pub use log::{RequestLog, RequestLogLine, LOG_QUEUE_LINES};

#[derive(Debug, Clone, PartialEq)]
pub struct FleetSeed {
    pub seed: String,
    /// Two uppercase hex digits.
    pub prefix: String,
}

impl FleetSeed {
    pub fn new(seed: impl Into<String>) -> Self {
        FleetSeed {
            seed: seed.into(),
            prefix: DEFAULT_FLEET_PREFIX.into(),
        }
    }
}

#[derive(Clone)]
pub struct SandboxConfig {
    pub listen: SocketAddr,
    pub profiles: Vec<Profile>,
    pub fleet: Option<FleetSeed>,
    pub code_ttl: Duration,
    /// Lifetime of attestation and merchant tokens.
    pub token_ttl: Duration,
    /// Lifetime of merchant tokens only, if not `token_ttl` (`posemu demo`: a portal session
    /// that lasts the demo, while attestation tokens keep the spec's 300 s).
    pub merchant_token_ttl: Option<Duration>,
    pub min_version: String,
    pub enforce_min_version: bool,
    pub faults: FaultConfig,
    pub clock: Arc<dyn Clock>,
    /// Seed of codes, tokens, keys and fault dice; `None` draws one from entropy.
    pub seed: Option<u64>,
    /// One line per request, if set (never waited on: a full queue drops lines).
    pub request_log: Option<RequestLog>,
    /// Time to send a request head, from when the server waits for one (a new connection or
    /// a kept-alive one after an answer): also the idle keep-alive timeout. Past it the
    /// connection is closed.
    pub header_read_timeout: Duration,
    /// Time to send a whole request body, from its head; past it, 408 and the connection closes.
    pub body_read_timeout: Duration,
    /// Open connections at most; past it a new connection is answered 503 and closed.
    pub max_connections: usize,
    /// Host names (besides loopback addresses and `localhost`) that `/sandbox/` requests may
    /// name in `Host` while the sandbox listens on a loopback address.
    pub allowed_hosts: Vec<String>,
    /// Settle every so often on the sandbox clock, as `POST /sandbox/settle` with no body
    /// (`--settle-every SECS`); `None`, the default, settles only when asked (spec 7.10).
    pub settle_every: Option<Duration>,
    /// Magic amounts of spec 7.7 (rows 8–14 and the `65` PIN rule); `--no-magic-amounts`
    /// turns them off. Test cards work either way.
    pub magic_amounts: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            profiles: posemu_profile::builtin(),
            fleet: None,
            code_ttl: Duration::from_secs(CODE_TTL_SECS),
            token_ttl: Duration::from_secs(MERCHANT_TOKEN_TTL_SECS),
            merchant_token_ttl: None,
            min_version: DEFAULT_MIN_VERSION.into(),
            enforce_min_version: false,
            faults: FaultConfig::default(),
            clock: Arc::new(SystemClock),
            seed: None,
            request_log: None,
            settle_every: None,
            magic_amounts: true,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            allowed_hosts: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
}

/// State shared by every request.
pub struct Shared {
    config: SandboxConfig,
    world: state::World,
    faults: faults::Faults,
    rng: Mutex<StdRng>,
    jwt_secret: [u8; 32],
    seed: u64,
    request_log: Option<RequestLog>,
    clock: Arc<dyn Clock>,
    payments: payments::Payments,
}

impl Shared {
    fn now_ms(&self) -> i64 {
        self.config.clock.now().timestamp_millis()
    }
}

/// Sizes of the maps that clients can grow: each has a bound (README, Reliability).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapSizes {
    /// Devices whose last `GET /pos/status` is remembered (minimum poll interval fault).
    pub poll_memory: usize,
    pub merchants: usize,
    /// Devices provisioned by profile or `POST /sandbox/devices`.
    pub named_devices: usize,
    /// Merchant sessions initiated and not yet swept.
    pub initiated_sessions: usize,
}

/// A running sandbox. Dropping it stops the server.
pub struct Sandbox {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Sandbox {
    pub async fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        config.faults.validate().map_err(SandboxError::Config)?;
        if let Some(f) = &config.fleet {
            if !posemu_protocol::provision::is_valid_fleet_prefix(&f.prefix) {
                return Err(SandboxError::Config(format!(
                    "fleet prefix {:?} is not 2 uppercase hex digits",
                    f.prefix
                )));
            }
        }
        if posemu_protocol::version::Version::parse(&config.min_version).is_none() {
            return Err(SandboxError::Config(format!(
                "min version {:?} is not a version like 1.3.5",
                config.min_version
            )));
        }
        if config.max_connections == 0 {
            return Err(SandboxError::Config(
                "max connections must be at least 1".into(),
            ));
        }
        if config.header_read_timeout.is_zero() || config.body_read_timeout.is_zero() {
            return Err(SandboxError::Config(
                "header and body read timeouts must be above zero".into(),
            ));
        }
        let seed = config.seed.unwrap_or_else(rand::random);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut jwt_secret = [0u8; 32];
        rand::rng().fill_bytes(&mut jwt_secret);
        let world = state::World::new(config.fleet.clone());
        let mut defined: std::collections::HashMap<&str, &Profile> = Default::default();
        for p in &config.profiles {
            let from = |p: &Profile| match &p.source {
                Some(path) => path.display().to_string(),
                None => format!("profile {}", p.name),
            };
            if let Some(f) = &config.fleet {
                if posemu_protocol::provision::fleet_index(&f.prefix, &p.device_id).is_some() {
                    return Err(SandboxError::Config(format!(
                        "{}: device {} is inside the fleet range POS-{}xxxxxx, whose secrets \
                         derive from the fleet seed; give it another id or use another fleet prefix",
                        from(p),
                        p.device_id,
                        f.prefix
                    )));
                }
            }
            // A profile repeated (built-in and user copy) is fine if it is the same device.
            if let Some(first) = defined.insert(&p.device_id, p) {
                fn identity(q: &Profile) -> (&str, Key, Key, Option<&str>) {
                    (
                        &q.key_id,
                        q.identity_secret,
                        q.zmk,
                        q.merchant_id.as_deref(),
                    )
                }
                if identity(first) != identity(p) {
                    return Err(SandboxError::Config(format!(
                        "{}: device {} is also defined by {} with other keys or merchant",
                        from(p),
                        p.device_id,
                        from(first)
                    )));
                }
                defined.insert(&first.device_id, first);
                continue;
            }
            world
                .provision(state::NewDevice {
                    id: p.device_id.clone(),
                    key_id: p.key_id.clone(),
                    secret: p.identity_secret,
                    zmk: p.zmk,
                    merchant_id: p
                        .merchant_id
                        .clone()
                        .unwrap_or_else(|| posemu_protocol::rules::DEMO_MERCHANT_ID.into()),
                })
                .map_err(|e| {
                    SandboxError::Config(format!(
                        "{}: device {} cannot be provisioned: {e:?}",
                        from(p),
                        p.device_id
                    ))
                })?;
        }
        // from the seed, not the shared rng, so that codes, tokens and keys of a seed stay put
        let payments = payments::Payments::new(
            seed ^ 0x7061_796d_656e_7473,
            config.magic_amounts,
            config
                .settle_every
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            config.clock.now(),
        );
        let shared = Arc::new(Shared {
            payments,
            faults: faults::Faults::new(config.faults.clone(), seed),
            rng: Mutex::new(StdRng::seed_from_u64(rng.next_u64())),
            jwt_secret,
            seed,
            request_log: config.request_log.clone(),
            clock: config.clock.clone(),
            world,
            config,
        });
        let listener = TcpListener::bind(shared.config.listen)
            .await
            .map_err(|source| SandboxError::Bind {
                addr: shared.config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
            addr: shared.config.listen,
            source,
        })?;
        let (stop, stopped) = watch::channel(false);
        let app = routes::router(shared.clone());
        let limits = Limits {
            header_read_timeout: shared.config.header_read_timeout,
            body_read_timeout: shared.config.body_read_timeout,
            max_connections: shared.config.max_connections,
        };
        let task = tokio::spawn(serve(listener, app, limits, stopped));
        Ok(Sandbox {
            addr,
            stop,
            task: Some(task),
            shared,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The merchant portal link, with the code filled in when given.
    pub fn portal_url(&self, code: Option<&str>) -> String {
        match code {
            Some(c) => format!("{}/portal?code={c}", self.url()),
            None => format!("{}/portal", self.url()),
        }
    }

    /// Provisions `profile`'s device in the running sandbox (as `POST /sandbox/devices` does),
    /// so a screen can switch profiles and keep its sandbox and URL. A device already known
    /// is fine (shipped profiles are provisioned at start); answers whether it was added.
    pub fn provision(&self, profile: &Profile) -> Result<bool, SandboxError> {
        let added = self.shared.world.provision(state::NewDevice {
            id: profile.device_id.clone(),
            key_id: profile.key_id.clone(),
            secret: profile.identity_secret,
            zmk: profile.zmk,
            merchant_id: profile
                .merchant_id
                .clone()
                .unwrap_or_else(|| posemu_protocol::rules::DEMO_MERCHANT_ID.into()),
        });
        match added {
            Ok(_) => Ok(true),
            Err(state::ProvisionError::Exists) => Ok(false),
            Err(e) => Err(SandboxError::Config(format!(
                "device {} cannot be provisioned: {e:?}",
                profile.device_id
            ))),
        }
    }

    /// Knows `device_id` as claimed, or activated at `activated_at_ms` (Unix ms), as a server
    /// that kept its state across a restart would: an embedded sandbox starts empty on every
    /// run, while the device it serves comes back from its saved progress (a claimed one goes on
    /// to attest, an activated one attests again and fetches new keys before its first payment;
    /// spec 4.6, 7.11). Only a known device this sandbox has not seen yet, and only those two
    /// statuses; answers whether it did anything.
    pub fn restore(
        &self,
        device_id: &str,
        status: posemu_protocol::wire::DeviceStatus,
        activated_at_ms: i64,
    ) -> bool {
        use posemu_protocol::wire::DeviceStatus;
        let world = &self.shared.world;
        let Some(key) = world.resolve(device_id) else {
            return false;
        };
        if !matches!(status, DeviceStatus::Claimed | DeviceStatus::Activated) {
            return false;
        }
        world.with_device(key, |st| {
            if st.status.is_some() {
                return false;
            }
            st.status = Some(status);
            st.activated_at = (status == DeviceStatus::Activated).then_some(activated_at_ms);
            true
        })
    }

    /// How many devices have state (touched at least once).
    pub fn touched_devices(&self) -> usize {
        self.shared.world.touched_devices()
    }

    /// Sizes of the maps that clients can grow (diagnostics and tests).
    pub fn map_sizes(&self) -> MapSizes {
        let w = &self.shared.world;
        MapSizes {
            poll_memory: self.shared.faults.poll_memory_len(),
            merchants: w.merchants.read().count(),
            named_devices: w.named_devices(),
            initiated_sessions: w.initiated.lock().count(),
        }
    }

    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[derive(Debug)]
struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for Dropped {}

/// How long the accept loop waits after `accept` failed for lack of descriptors or memory.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

fn is_resource_exhaustion(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        )
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        true
    }
}

#[derive(Clone, Copy)]
struct Limits {
    header_read_timeout: Duration,
    body_read_timeout: Duration,
    max_connections: usize,
}

/// Our own accept loop (rather than `axum::serve`) so a fault can drop a connection without
/// answering (a service error makes hyper close it), with the limits of [`conn`].
async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    mut stopped: watch::Receiver<bool>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let refuser = conn::Refuser::default();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(conn::MAX_HEAD_BYTES)
        .max_headers(conn::MAX_HEADERS);
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of descriptors or memory: the pending connection stays in the
                    // backlog and `accept` would fail again at once, so wait before retrying.
                    if is_resource_exhaustion(&e) {
                        tokio::select! {
                            _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                            _ = stopped.changed() => return,
                        }
                    }
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuser.refuse(stream, limits.max_connections);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut stop = stopped.clone();
        let conn = http.serve_connection(
            TokioIo::new(conn::Stream::new(stream)),
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let app = app.clone();
                async move {
                    let (mut parts, body) = req.into_parts();
                    let (body, timed_out) = conn::TimedBody::new(body, limits.body_read_timeout);
                    parts.extensions.insert(timed_out);
                    let (body, leftover) = match conn::Unread::wrap(body) {
                        Ok((body, leftover)) => (Body::new(body), Some(leftover)),
                        Err(empty) => (Body::new(empty), None),
                    };
                    let req = Request::from_parts(parts, body);
                    let resp = app
                        .oneshot(req)
                        .await
                        .unwrap_or_else(|never| match never {});
                    if let Some(leftover) = leftover {
                        leftover.drain().await;
                    }
                    if resp.extensions().get::<trace::DropConnection>().is_some() {
                        return Err(Dropped);
                    }
                    Ok(resp)
                }
            }),
        );
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}
