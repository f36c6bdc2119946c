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
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;

use posemu_profile::Profile;
use posemu_protocol::clock::{Clock, SystemClock};
use posemu_protocol::crypto::Key;
use posemu_protocol::rules::{
    CODE_TTL_SECS, DEFAULT_FLEET_PREFIX, DEFAULT_MIN_VERSION, MERCHANT_TOKEN_TTL_SECS,
};

mod error;
mod extract;
pub mod faults;
mod jwt;
mod params;
mod payments;
mod routes;
mod state;
mod trace;

pub use faults::{FaultConfig, FaultRule, Latency};

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
    /// One line per request, if set.
    pub request_log: Option<mpsc::UnboundedSender<RequestLogLine>>,
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
        }
    }
}

#[derive(Debug, Clone)]
pub struct RequestLogLine {
    pub method: String,
    pub path: String,
    pub device_id: Option<String>,
    /// 0 when the connection was dropped by a fault.
    pub status: u16,
    pub latency: Duration,
    pub trace_id: String,
    /// A payment request's string to sign as the sandbox built it to verify the signature
    /// (spec 7.2), so that a developer can compare it with their own. Never in a response.
    pub signed: Option<String>,
}

impl fmt::Display for RequestLogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if self.status == 0 {
            "drop".to_string()
        } else {
            self.status.to_string()
        };
        write!(
            f,
            "{:<6} {:<28} {:<12} {} {:>8.2}ms trace={}",
            self.method,
            self.path,
            self.device_id.as_deref().unwrap_or("-"),
            status,
            self.latency.as_secs_f64() * 1000.0,
            self.trace_id
        )?;
        match &self.signed {
            Some(text) => write!(f, " signed={text:?}"),
            None => Ok(()),
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
    request_log: Option<mpsc::UnboundedSender<RequestLogLine>>,
    clock: Arc<dyn Clock>,
    payments: payments::Payments,
}

impl Shared {
    fn now_ms(&self) -> i64 {
        self.config.clock.now().timestamp_millis()
    }
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
            let merchant = world.merchant_index(
                p.merchant_id
                    .as_deref()
                    .unwrap_or(posemu_protocol::rules::DEMO_MERCHANT_ID),
            );
            world.provision(state::NamedDevice {
                id: p.device_id.clone(),
                key_id: p.key_id.clone(),
                secret: p.identity_secret,
                zmk: p.zmk,
                merchant,
            });
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
        let task = tokio::spawn(serve(listener, app, stopped));
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

    /// How many devices have state (touched at least once).
    pub fn touched_devices(&self) -> usize {
        self.shared.world.touched_devices()
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

/// Our own accept loop (rather than `axum::serve`) so a fault can drop a connection without
/// answering: a service error makes hyper close it.
async fn serve(listener: TcpListener, app: axum::Router, mut stopped: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
            _ = stopped.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut stop = stopped.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let app = app.clone();
                async move {
                    let resp = app
                        .oneshot(req.map(Body::new))
                        .await
                        .unwrap_or_else(|never| match never {});
                    if resp.extensions().get::<trace::DropConnection>().is_some() {
                        return Err(Dropped);
                    }
                    Ok(resp)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}
