//! The one place the POS screen's commands are carried out: device calls and timers, saves,
//! sandbox helpers, opening devices, reading profiles, writing HAR files, delayed messages.
//! Results come back as [`Msg`]s on the screen's channel (or at once, for what reads the disk).
//!
//! The executor owns the running device's resources: its effector (calls, timers, saves), HTTP
//! transport and exchange log, the embedded sandbox, and the tasks feeding the channel.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::cmd::{Cmd, Slot};
use super::model::{Attached, Msg, ProfileItem, SandboxAction};
use posemu_client::merchant::{claim_code, ClaimOutcome, ClaimVia};
use posemu_client::{DeviceFaults, DeviceIdentity, ExchangeLog, MerchantError, Transport};
use posemu_device::payment::PayEvent;
use posemu_device::Effect;
use posemu_protocol::api::{CallError, PayCall};
use posemu_runtime::{
    DeviceOptions, DeviceSession, Effector, Home, InFlight, OpenDevice, OpenError,
};
use posemu_sandbox::Sandbox;

mod helpers;

pub use helpers::HelperError;
use helpers::{helper_text, settle_msg};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Opens a device from options (the real one is [`posemu_runtime::open_device`]; tests inject
/// one with their own home directory).
pub type Opener =
    Arc<dyn Fn(DeviceOptions) -> BoxFuture<Result<OpenDevice, OpenError>> + Send + Sync>;

/// The real opener.
pub fn default_opener() -> Opener {
    Arc::new(|opts: DeviceOptions| {
        Box::pin(async move { posemu_runtime::open_device(&opts).await })
    })
}

/// The running device's resources.
struct Runner {
    generation: u64,
    effector: Effector,
    transport: Transport,
    log: ExchangeLog,
    device_id: String,
    /// Whether it talks to the executor's embedded sandbox.
    embedded: bool,
    /// What payment calls are signed as (None: the profile's identity is broken).
    identity: Option<DeviceIdentity>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Runner {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub struct Executor {
    tx: mpsc::UnboundedSender<Msg>,
    /// posemu's files, for the profile picker (default: [`Home::discover`]).
    pub home: Option<Home>,
    /// Where HAR files go (default: the current directory, then posemu's data directory).
    pub export_dir: Option<PathBuf>,
    pub opener: Opener,
    device: Option<Runner>,
    /// The embedded sandbox: kept across profile switches, so its URL (an open portal tab, a
    /// scanned QR code) keeps working.
    sandbox: Option<Sandbox>,
    next_generation: u64,
    pending: HashMap<Slot, JoinHandle<()>>,
    /// Calls and other real I/O under way (device calls on the wire, payments, helpers,
    /// opening, exports): see [`Executor::in_flight`].
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Executor {
    fn drop(&mut self) {
        for (_, t) in self.pending.drain() {
            t.abort();
        }
    }
}

impl Executor {
    pub fn new(tx: mpsc::UnboundedSender<Msg>) -> Executor {
        Executor {
            tx,
            home: None,
            export_dir: None,
            opener: default_opener(),
            device: None,
            sandbox: None,
            next_generation: 0,
            pending: HashMap::new(),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn sender(&self) -> mpsc::UnboundedSender<Msg> {
        self.tx.clone()
    }

    /// How many of its tasks wait on real I/O now (a device call on the wire, a payment, a
    /// sandbox helper, opening a device, writing a HAR file); timers are not counted. A test
    /// on tokio's paused clock holds the clock while this is not zero: otherwise the clock
    /// jumps to the next timer (a request's timeout) whenever the runtime waits on a socket.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Takes an opened device's resources (the old device goes first) and answers what the
    /// model keeps of it: the machine, the profile, the exchanges so far.
    pub fn attach(&mut self, options: Option<DeviceOptions>, open: OpenDevice) -> Msg {
        self.next_generation += 1;
        let generation = self.next_generation;
        if let (None, Some(sb)) = (&open.sandbox, &self.sandbox) {
            // another profile on the sandbox kept from before: it may have been saved as
            // activated on an earlier run (a new sandbox had this done when it opened)
            if sb.url() == open.server {
                posemu_runtime::remember_device(sb, &open.session, open.clock.as_ref());
            }
        }
        let DeviceSession {
            profile,
            transport,
            log,
            driver,
            mut events,
            resume_problem,
            ..
        } = open.session;
        let (machine, mut effector) = driver.into_parts();
        effector.count_in_flight(self.in_flight.clone());
        let tx = self.tx.clone();
        let device_task = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if tx.send(Msg::Device { generation, event }).is_err() {
                    break;
                }
            }
        });
        let mut entries = log.subscribe();
        let tx = self.tx.clone();
        let log_task = tokio::spawn(async move {
            while let Some(exchange) = entries.recv().await {
                let msg = Msg::Exchange {
                    generation,
                    exchange,
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        let identity = posemu_runtime::profile_identity(&profile).ok();
        self.device = None; // the old device goes first
        if let Some(sb) = open.sandbox {
            self.sandbox = Some(sb);
        }
        let embedded = self
            .sandbox
            .as_ref()
            .is_some_and(|sb| sb.url() == open.server);
        if !embedded && options.as_ref().is_some_and(|o| o.server.is_some()) {
            self.sandbox = None; // another server chosen: the sandbox is no longer needed
        }
        let portal = self
            .sandbox
            .as_ref()
            .filter(|_| embedded)
            .map(|sb| sb.portal_url(None));
        let attached = Attached {
            generation,
            options,
            machine,
            exchanges: log.entries(),
            device_id: profile.device_id.clone(),
            profile,
            server: open.server,
            portal,
            resume_problem,
            notice: open.notice,
        };
        self.device = Some(Runner {
            generation,
            effector,
            transport,
            log,
            device_id: attached.device_id.clone(),
            embedded,
            identity,
            tasks: vec![device_task, log_task],
        });
        Msg::Attached(Box::new(attached))
    }

    /// What arrived from a task, as `update` takes it: an opened device is attached here.
    pub fn receive(&mut self, msg: Msg) -> Msg {
        match msg {
            Msg::Opened { options, result } => match result {
                Ok(open) => self.attach(Some(*options), *open),
                Err(e) => Msg::OpenFailed(e.to_string()),
            },
            other => other,
        }
    }

    /// Carries out `cmd`. What reads the disk answers at once (the picker opens on the same
    /// key press); the rest answers later on the channel. `Quit` and `Clipboard` are the
    /// loop's (it owns the terminal) and are not for here.
    pub fn run(&mut self, cmd: Cmd) -> Option<Msg> {
        match cmd {
            Cmd::Quit | Cmd::Clipboard(_) => {}
            Cmd::Device { generation, effect } => {
                let runner = self.runner_mut(generation)?;
                match effect {
                    Effect::Call { id, call } => runner.effector.call(id, call),
                    Effect::Wait { timer, after } => runner.effector.wait(timer, after),
                    Effect::Cancel(timer) => runner.effector.cancel(timer),
                    Effect::Save | Effect::Note(_) => {}
                }
            }
            Cmd::Save {
                generation,
                progress,
            } => {
                let runner = self.runner(generation)?;
                if let Err(e) = runner.effector.save(&progress) {
                    return Some(Msg::SaveFailed(e));
                }
            }
            Cmd::SandboxHelper {
                generation,
                action,
                code,
            } => self.helper(generation, action, code.unwrap_or_default()),
            Cmd::Pay {
                generation,
                id,
                call,
                faults,
                at,
            } => self.pay(generation, id, &call, faults, at),
            Cmd::Settle {
                generation,
                terminal_id,
            } => {
                let runner = self.runner(generation)?;
                let transport = runner.transport.clone();
                self.spawn(async move {
                    let result =
                        posemu_client::payments::sandbox_settle(&transport, &terminal_id).await;
                    settle_msg(generation, Some(result))
                });
            }
            Cmd::LoadCharges {
                generation,
                terminal_id,
            } => {
                let runner = self.runner(generation)?;
                let transport = runner.transport.clone();
                self.spawn(async move {
                    let result = posemu_client::payments::sandbox_terminal_charges(
                        &transport,
                        &terminal_id,
                        crate::tui::model::sale::LIST_LIMIT,
                    )
                    .await
                    .map_err(|e| helper_text(&e));
                    Msg::Charges { generation, result }
                });
            }
            Cmd::Open(options) => {
                let opener = self.opener.clone();
                let mut opening = (*options).clone();
                if let Some(url) = self.keep_sandbox(&opening) {
                    opening.server = Some(url);
                    opening.kept_sandbox = true;
                    opening.code_ttl = None; // the running sandbox's
                }
                self.spawn(async move {
                    let result = opener(opening).await.map(Box::new);
                    Msg::Opened { options, result }
                });
            }
            Cmd::ListProfiles => return Some(Msg::Profiles(self.list_profiles())),
            Cmd::Export { exchanges, name } => {
                let dirs: Vec<PathBuf> = match &self.export_dir {
                    Some(d) => vec![d.clone()],
                    None => std::env::current_dir()
                        .into_iter()
                        .chain(Home::discover().ok().map(|h| h.data_dir))
                        .collect(),
                };
                self.spawn(async move {
                    let result = tokio::task::spawn_blocking(move || {
                        let mut last = String::from("no directory to write to");
                        for dir in dirs {
                            let path = dir.join(&name);
                            let all = exchanges.iter().map(|e| e.as_ref());
                            match std::fs::create_dir_all(&dir)
                                .and_then(|_| posemu_client::export::write_har(&path, all))
                            {
                                Ok(()) => return Ok(path),
                                Err(e) => last = format!("{}: {e}", path.display()),
                            }
                        }
                        Err(last)
                    })
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
                    Msg::Exported(result)
                });
            }
            Cmd::After { slot, after, msg } => {
                let tx = self.tx.clone();
                let task = tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let _ = tx.send(*msg);
                });
                if let Some(old) = self.pending.insert(slot, task) {
                    old.abort();
                }
            }
            Cmd::Cancel(slot) => {
                if let Some(old) = self.pending.remove(&slot) {
                    old.abort();
                }
            }
        }
        None
    }

    /// The running device, if it is still the one of `generation` (a command of a device since
    /// replaced is dropped).
    fn runner(&self, generation: u64) -> Option<&Runner> {
        self.device.as_ref().filter(|r| r.generation == generation)
    }

    fn runner_mut(&mut self, generation: u64) -> Option<&mut Runner> {
        self.device.as_mut().filter(|r| r.generation == generation)
    }

    /// Another embedded device: the running sandbox's URL to open it against, with its device
    /// provisioned there; `None` opens as asked (a new sandbox if the profile cannot be read
    /// or provisioned: opening says why).
    fn keep_sandbox(&self, options: &DeviceOptions) -> Option<String> {
        let sandbox = self.sandbox.as_ref().filter(|_| options.server.is_none())?;
        let home = self.home.clone().map_or_else(Home::discover, Ok).ok()?;
        let profile = home.find_profile(&options.profile).ok()?;
        sandbox.provision(&profile).ok()?;
        Some(sandbox.url())
    }

    /// Runs `fut` (real I/O: counted in [`Executor::in_flight`] until its answer is sent).
    fn spawn(&self, fut: impl Future<Output = Msg> + Send + 'static) {
        let tx = self.tx.clone();
        let on_wire = InFlight::new(Some(&self.in_flight));
        tokio::spawn(async move {
            let _ = tx.send(fut.await);
            drop(on_wire);
        });
    }

    /// One payment call: sealed, signed and logged by the client; the answer goes to the
    /// payment machine.
    fn pay(
        &self,
        generation: u64,
        id: u32,
        call: &PayCall,
        faults: DeviceFaults,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        let Some(runner) = self.runner(generation) else {
            return;
        };
        let result = match &runner.identity {
            Some(identity) => Ok(runner.transport.pay(
                identity,
                &faults,
                call,
                at,
                &mut rand::rng(),
                Some(&runner.log),
            )),
            None => Err(CallError::Decode(
                "the profile's identity is broken: payment calls cannot be signed".into(),
            )),
        };
        self.spawn(async move {
            let result = match result {
                Ok(fut) => fut.await,
                Err(e) => Err(e),
            };
            Msg::Pay {
                generation,
                event: PayEvent::Answer { call: id, result },
            }
        });
    }

    fn list_profiles(&self) -> Result<Vec<ProfileItem>, String> {
        let home = self
            .home
            .clone()
            .map_or_else(Home::discover, Ok)
            .map_err(|e| e.to_string())?;
        Ok(home
            .list_profiles()
            .into_iter()
            .map(|(p, origin)| match p {
                Ok(p) => ProfileItem {
                    detail: format!(
                        "{} · {} · {} · {}",
                        p.model,
                        p.device_id,
                        p.app_version,
                        origin.as_str()
                    ),
                    name: p.name,
                    ok: true,
                    current: false,
                },
                Err(e) => ProfileItem {
                    name: e.file.clone(),
                    detail: e.to_string(),
                    ok: false,
                    current: false,
                },
            })
            .collect())
    }
}
