//! The POS screen's state and the one function that changes it: `update(&mut Model, Msg)`.
//!
//! Every background result (device events, exchange-log entries, sandbox answers, ticks, keys)
//! arrives as a [`Msg`] on one channel; `update` changes the model synchronously and answers
//! [`Cmd`]s for the runner (quit, clipboard, async work whose result comes back as a `Msg`).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::KeyEvent;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tui_input::Input;

use super::debug_lines::detail_lines;
use super::keys::{self, Action};
use super::qr::QrMatrix;
use super::theme::{Level, Theme};
use crate::cli::device_args::{DeviceArgs, OpenDevice};
use crate::client::{Exchange, MerchantError};
use crate::clock::Clock;
use crate::device::{DeviceEvent, DeviceState, Note, Phase, Step};
use crate::profile::Profile;
use crate::runtime::{DeviceSession, Home};
use crate::sandbox::Sandbox;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Opens a device session from flags (the real one is [`DeviceArgs::open`]; tests inject one
/// with their own home directory).
pub type Opener = Arc<dyn Fn(DeviceArgs) -> BoxFuture<Result<OpenDevice, String>> + Send + Sync>;

/// The real opener.
pub fn default_opener() -> Opener {
    Arc::new(|args: DeviceArgs| Box::pin(async move { args.open().await }))
}

/// Terminals at least this wide show the debug side beside the device.
pub const WIDE: u16 = 100;
/// How many timeline entries are kept.
const TIMELINE_MAX: usize = 300;
/// How long a message stays on screen.
const TOAST_FOR: Duration = Duration::from_secs(5);
/// Spinner speed while a step's call is in flight.
const SPIN_FAST: Duration = Duration::from_millis(125);
const SECOND: Duration = Duration::from_secs(1);

/// Everything that can happen to the screen.
pub enum Msg {
    Key(KeyEvent),
    Resize(u16, u16),
    Tick,
    /// SIGINT/SIGTERM/SIGHUP from outside.
    Quit,
    Device {
        generation: u64,
        event: DeviceEvent,
    },
    Exchange {
        generation: u64,
        exchange: Arc<Exchange>,
    },
    Sandbox {
        generation: u64,
        action: SandboxAction,
        result: Result<String, String>,
    },
    Opened {
        args: Box<DeviceArgs>,
        result: Result<Box<OpenDevice>, String>,
    },
    Exported(Result<PathBuf, String>),
}

/// What the runner must do for `update`.
pub enum Cmd {
    Quit,
    /// Put this text on the clipboard (OSC 52 to the terminal).
    Clipboard(String),
    /// Run this; its result is the next message.
    Spawn(BoxFuture<Msg>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxAction {
    Claim,
    Expire,
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Device,
    Exchanges,
    Details,
}

pub enum Popup {
    Help,
    Profiles {
        items: Vec<ProfileItem>,
        selected: usize,
    },
    Server(Input),
    Curl(String),
}

#[derive(Debug, Clone)]
pub struct ProfileItem {
    pub name: String,
    /// Model, device id, origin; or the reason the file is broken.
    pub detail: String,
    pub ok: bool,
    pub current: bool,
}

#[derive(Debug, Clone)]
pub struct Toast {
    pub text: String,
    pub level: Level,
    until: Instant,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEntry {
    /// Milliseconds since this device session started.
    pub at_ms: u64,
    pub level: Level,
    pub text: String,
    /// Polls are counted in place instead of one line each.
    poll: bool,
}

/// The last transient failure, while the device waits to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct Trouble {
    pub step: Step,
    pub attempt: u32,
    pub error: String,
}

/// The running device: its session, the embedded sandbox if any, and the tasks that feed the
/// model's channel.
pub struct Live {
    pub generation: u64,
    pub session: DeviceSession,
    pub sandbox: Option<Sandbox>,
    pub server: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Live {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub struct Model {
    pub theme: Theme,
    pub clock: Arc<dyn Clock>,
    /// The flags the current session was opened with (`p` and `s` change them).
    pub args: DeviceArgs,
    pub live: Option<Live>,
    /// What is being opened, while a profile or server switch is under way.
    pub opening: Option<String>,
    pub tx: mpsc::UnboundedSender<Msg>,
    pub opener: Opener,
    /// Where `e` writes HAR files (default: the current directory).
    pub export_dir: Option<PathBuf>,
    /// posemu's files, for the profile picker (default: [`Home::discover`]).
    pub home: Option<Home>,
    pub size: (u16, u16),
    pub focus: Focus,
    /// `d` pressed: hide the debug side on wide terminals, show it (instead of the device) on
    /// narrow ones.
    pub debug_toggled: bool,
    pub popup: Option<Popup>,
    pub toast: Option<Toast>,
    pub timeline: Vec<TimelineEntry>,
    pub exchanges: Vec<Arc<Exchange>>,
    pub selected: Option<usize>,
    /// Keep the newest exchange selected as new ones arrive.
    pub follow: bool,
    pub detail: Arc<Vec<ratatui::text::Line<'static>>>,
    detail_of: Option<u64>,
    pub detail_scroll: usize,
    pub step_times: HashMap<Step, Duration>,
    pub trouble: Option<Trouble>,
    /// The code before the one on screen, when it expired.
    pub expired_code: Option<String>,
    /// The portal link on screen and its QR code.
    pub qr: Option<(String, Option<QrMatrix>)>,
    pub spinner: usize,
    pub quit: bool,
    next_generation: u64,
    epoch: Instant,
}

impl Model {
    pub fn new(
        args: DeviceArgs,
        tx: mpsc::UnboundedSender<Msg>,
        clock: Arc<dyn Clock>,
        theme: Theme,
    ) -> Model {
        Model {
            theme,
            clock,
            args,
            live: None,
            opening: None,
            tx,
            opener: default_opener(),
            export_dir: None,
            home: None,
            size: (120, 40),
            focus: Focus::Device,
            debug_toggled: false,
            popup: None,
            toast: None,
            timeline: Vec::new(),
            exchanges: Vec::new(),
            selected: None,
            follow: true,
            detail: Arc::new(Vec::new()),
            detail_of: None,
            detail_scroll: 0,
            step_times: HashMap::new(),
            trouble: None,
            expired_code: None,
            qr: None,
            spinner: 0,
            quit: false,
            next_generation: 0,
            epoch: Instant::now(),
        }
    }

    // ----- what the view reads -----

    pub fn device(&self) -> Option<&DeviceState> {
        self.live.as_ref().map(|l| l.session.driver.state())
    }

    pub fn profile(&self) -> Option<&Profile> {
        self.live.as_ref().map(|l| &l.session.profile)
    }

    /// The device machine's clock (ms), for countdowns.
    pub fn now_ms(&self) -> u64 {
        self.live.as_ref().map_or(0, |l| l.session.driver.now_ms())
    }

    pub fn server(&self) -> Option<&str> {
        self.live.as_ref().map(|l| l.server.as_str())
    }

    pub fn embedded(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.sandbox.is_some())
    }

    pub fn wide(&self) -> bool {
        self.size.0 >= WIDE
    }

    pub fn debug_visible(&self) -> bool {
        self.wide() != self.debug_toggled
    }

    pub fn device_visible(&self) -> bool {
        self.wide() || !self.debug_toggled
    }

    pub fn selected_exchange(&self) -> Option<&Arc<Exchange>> {
        self.selected.and_then(|i| self.exchanges.get(i))
    }

    pub fn toast(&self) -> Option<&Toast> {
        self.toast.as_ref().filter(|t| t.until > Instant::now())
    }

    /// A step's call is in flight (the spinner turns fast).
    fn busy(&self) -> bool {
        self.opening.is_some()
            || self.device().is_some_and(|d| {
                matches!(d.phase, Phase::Step(_) | Phase::Off) && d.retry_due_ms.is_none()
            })
    }

    /// When the screen next changes by itself: fast while a step runs, once a second while a
    /// countdown shows, never when the device is settled (no busy redraws).
    pub fn next_wake(&self) -> Option<Duration> {
        let mut wake = if self.busy() {
            Some(SPIN_FAST)
        } else if self
            .device()
            .is_some_and(|d| matches!(d.phase, Phase::Pairing | Phase::Step(_)))
        {
            Some(SECOND)
        } else {
            None
        };
        if let Some(t) = self.toast() {
            let left = t.until.saturating_duration_since(Instant::now());
            wake = Some(wake.map_or(left, |w| w.min(left)));
        }
        wake
    }

    pub fn set_size(&mut self, w: u16, h: u16) {
        self.size = (w, h);
        if !self.debug_visible() {
            self.focus = Focus::Device;
        }
    }

    fn toast_(&mut self, level: Level, text: impl Into<String>) {
        self.toast = Some(Toast {
            text: text.into(),
            level,
            until: Instant::now() + TOAST_FOR,
        });
    }

    fn log(&mut self, level: Level, text: impl Into<String>) {
        let at_ms = self.epoch.elapsed().as_millis() as u64;
        self.timeline.push(TimelineEntry {
            at_ms,
            level,
            text: text.into(),
            poll: false,
        });
        if self.timeline.len() > TIMELINE_MAX {
            self.timeline.remove(0);
        }
    }

    // ----- sessions -----

    /// Makes `open` the running device and powers it on.
    pub fn attach(&mut self, mut open: OpenDevice) {
        self.next_generation += 1;
        let generation = self.next_generation;
        let (_, dummy) = mpsc::unbounded_channel();
        let mut events = std::mem::replace(&mut open.session.events, dummy);
        let tx = self.tx.clone();
        let device_task = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if tx.send(Msg::Device { generation, event }).is_err() {
                    break;
                }
            }
        });
        let mut entries = open.session.log.subscribe();
        let tx = self.tx.clone();
        let log_task = tokio::spawn(async move {
            while let Some(exchange) = entries.recv().await {
                if tx
                    .send(Msg::Exchange {
                        generation,
                        exchange,
                    })
                    .is_err()
                {
                    break;
                }
            }
        });
        self.live = None; // the old device (and its sandbox) goes first
        self.opening = None;
        self.timeline.clear();
        self.exchanges = open.session.log.entries();
        self.selected = self.exchanges.len().checked_sub(1);
        self.follow = true;
        self.refresh_detail();
        self.step_times.clear();
        self.trouble = None;
        self.expired_code = None;
        self.qr = None;
        self.epoch = Instant::now();
        let p = &open.session.profile;
        let what = format!("{} ({})", p.device_id, p.name);
        let resume_problem = open.session.resume_problem.clone();
        self.live = Some(Live {
            generation,
            session: open.session,
            sandbox: open.sandbox,
            server: open.server,
            tasks: vec![device_task, log_task],
        });
        self.log(Level::Info, format!("power on: {what}"));
        if let Some(problem) = resume_problem {
            self.log(Level::Warn, problem.clone());
            self.toast_(Level::Warn, problem);
        }
        self.device_event(DeviceEvent::Start);
    }

    fn device_event(&mut self, event: DeviceEvent) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        let notes = live.session.driver.handle(event);
        let save_error = live.session.driver.take_save_error();
        for n in notes {
            self.on_note(n);
        }
        if let Some(e) = save_error {
            self.toast_(Level::Bad, format!("Cannot save progress: {e}"));
        }
    }

    fn on_note(&mut self, note: Note) {
        match note {
            Note::StepStarted(step) => {
                if step == Step::Bootstrap {
                    self.step_times.clear();
                }
            }
            Note::StepDone { step, took } => {
                self.trouble = None;
                self.step_times.insert(step, took);
                self.log(Level::Good, format!("{} {}", step.name(), fmt_took(took)));
            }
            Note::ClockOffset { offset_ms } => {
                if offset_ms.abs() >= 1000 {
                    self.log(
                        Level::Warn,
                        format!(
                            "clock offset {:+.1} s from server_time",
                            offset_ms as f64 / 1000.0
                        ),
                    );
                }
            }
            Note::CodeShown {
                code,
                expires_in,
                resumed,
            } => {
                self.trouble = None;
                let link = self.portal_link(&code);
                let qr = QrMatrix::encode(&link);
                self.qr = Some((link, qr));
                let how = if resumed { "resumed" } else { "shown" };
                self.log(
                    Level::Info,
                    format!("code {code} {how}, expires in {}", fmt_mmss(expires_in)),
                );
                if let Some(old) = &self.expired_code {
                    let text = format!("Code {old} expired: here is a new one");
                    self.toast_(Level::Warn, text);
                }
            }
            Note::Polled { count, status } => {
                let text = format!("polled {count}× · code {}", status_word(status));
                let at_ms = self.epoch.elapsed().as_millis() as u64;
                match self.timeline.last_mut() {
                    Some(last) if last.poll => {
                        last.text = text;
                        last.at_ms = at_ms;
                    }
                    _ => {
                        self.log(Level::Info, text);
                        if let Some(last) = self.timeline.last_mut() {
                            last.poll = true;
                        }
                    }
                }
                self.trouble = None;
            }
            Note::CodeExpired {
                code,
                by_device_clock,
            } => {
                let by = if by_device_clock {
                    "by the device's clock"
                } else {
                    "the server said so"
                };
                self.log(Level::Warn, format!("code {code} expired ({by})"));
                self.expired_code = Some(code);
                self.qr = None;
            }
            Note::SlowDown { wait, interval } => {
                let text = format!(
                    "server asked to slow down: waiting {}, then polling every {}",
                    fmt_took(wait),
                    fmt_took(interval)
                );
                self.log(Level::Warn, text.clone());
                self.toast_(Level::Warn, format!("429: {text}"));
            }
            Note::Backoff {
                step,
                attempt,
                delay,
                error,
            } => {
                self.log(
                    Level::Warn,
                    format!(
                        "{} failed ({error}); retry {attempt} in {}",
                        step.name(),
                        fmt_took(delay)
                    ),
                );
                self.trouble = Some(Trouble {
                    step,
                    attempt,
                    error: error.to_string(),
                });
            }
            Note::Claimed => {
                self.expired_code = None;
                self.log(Level::Good, "claimed by the merchant");
            }
            Note::ReAttest { step } => self.log(
                Level::Warn,
                format!(
                    "attestation token expired; attesting again before {}",
                    step.name()
                ),
            ),
            Note::KeysInstalled { key_set_id } => self.log(
                Level::Good,
                format!("key set {key_set_id} installed, every KCV verified"),
            ),
            Note::Activated {
                terminal_id, total, ..
            } => {
                self.log(
                    Level::Good,
                    format!("activated as {terminal_id} in {}", fmt_took(total)),
                );
                self.toast_(Level::Good, format!("Activated: {terminal_id}"));
            }
            Note::ReadyFromSaved => self.log(
                Level::Good,
                "ready: activated earlier (saved progress); r starts over",
            ),
            Note::UpdateRequired { version, min } => self.log(
                Level::Warn,
                format!("update required: app {version} is below {min}"),
            ),
            Note::Failed(f) => {
                self.trouble = None;
                self.log(Level::Bad, f.message());
            }
        }
    }

    fn portal_link(&self, code: &str) -> String {
        match self.live.as_ref() {
            Some(Live {
                sandbox: Some(sb), ..
            }) => sb.portal_url(Some(code)),
            Some(l) => format!("{}/portal?code={code}", l.server),
            None => String::new(),
        }
    }

    // ----- the debug side -----

    fn on_exchange(&mut self, e: Arc<Exchange>) {
        self.exchanges.push(e);
        let cap = crate::runtime::session::EXCHANGE_LOG_CAPACITY;
        if self.exchanges.len() > cap {
            self.exchanges.remove(0);
            self.selected = self.selected.map(|s| s.saturating_sub(1));
        }
        if self.follow {
            self.selected = Some(self.exchanges.len() - 1);
            self.refresh_detail();
        }
    }

    fn refresh_detail(&mut self) {
        let id = self.selected_exchange().map(|e| e.id);
        if id != self.detail_of {
            self.detail_of = id;
            self.detail_scroll = 0;
            self.detail = Arc::new(match self.selected_exchange() {
                Some(e) => detail_lines(e, self.theme),
                None => Vec::new(),
            });
        }
    }

    fn select(&mut self, delta: isize) {
        if self.exchanges.is_empty() {
            return;
        }
        let last = self.exchanges.len() - 1;
        let cur = self.selected.unwrap_or(last) as isize;
        let next = (cur + delta).clamp(0, last as isize) as usize;
        self.selected = Some(next);
        self.follow = next == last;
        self.refresh_detail();
    }

    fn scroll(&mut self, delta: isize) {
        let max = self.detail.len().saturating_sub(1) as isize;
        self.detail_scroll = (self.detail_scroll as isize + delta).clamp(0, max) as usize;
    }

    fn page(&self) -> isize {
        (self.size.1 as isize / 2).max(5)
    }
}

/// Advances the model by one message.
pub fn update(m: &mut Model, msg: Msg) -> Vec<Cmd> {
    match msg {
        Msg::Key(k) => return on_key(m, k),
        Msg::Resize(w, h) => m.set_size(w, h),
        Msg::Tick => {
            m.spinner = m.spinner.wrapping_add(1);
            if m.toast.as_ref().is_some_and(|t| t.until <= Instant::now()) {
                m.toast = None;
            }
        }
        Msg::Quit => {
            m.quit = true;
            return vec![Cmd::Quit];
        }
        Msg::Device { generation, event } => {
            if m.live.as_ref().is_some_and(|l| l.generation == generation) {
                m.device_event(event);
            }
        }
        Msg::Exchange {
            generation,
            exchange,
        } => {
            if m.live.as_ref().is_some_and(|l| l.generation == generation) {
                m.on_exchange(exchange);
            }
        }
        Msg::Sandbox {
            generation,
            action,
            result,
        } => {
            if m.live.as_ref().is_none_or(|l| l.generation != generation) {
                return Vec::new();
            }
            match (action, result) {
                (SandboxAction::Reset, result) => {
                    if let Err(e) = result {
                        m.log(Level::Warn, format!("sandbox reset: {e}"));
                    }
                    m.step_times.clear();
                    m.trouble = None;
                    m.expired_code = None;
                    m.qr = None;
                    m.log(Level::Info, "restart from scratch");
                    m.device_event(DeviceEvent::Restart);
                    m.toast_(Level::Info, "Restarted from scratch");
                }
                (_, Ok(text)) => m.toast_(Level::Good, text),
                (_, Err(e)) => {
                    m.log(Level::Bad, e.clone());
                    m.toast_(Level::Bad, e);
                }
            }
        }
        Msg::Opened { args, result } => match result {
            Ok(open) => {
                m.args = *args;
                m.attach(*open);
            }
            Err(e) => {
                m.opening = None;
                m.log(Level::Bad, e.clone());
                m.toast_(Level::Bad, e);
            }
        },
        Msg::Exported(result) => match result {
            Ok(path) => {
                let text = format!("HAR written to {}", path.display());
                m.log(Level::Good, text.clone());
                m.toast_(Level::Good, text);
            }
            Err(e) => m.toast_(Level::Bad, format!("HAR export failed: {e}")),
        },
    }
    Vec::new()
}

fn on_key(m: &mut Model, k: KeyEvent) -> Vec<Cmd> {
    use crossterm::event::{KeyCode, KeyModifiers};
    if k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL) {
        m.quit = true;
        return vec![Cmd::Quit];
    }
    if m.popup.is_some() {
        return on_popup_key(m, k);
    }
    match keys::lookup(&k) {
        Some(b) => act(m, b.action),
        None => Vec::new(),
    }
}

fn act(m: &mut Model, action: Action) -> Vec<Cmd> {
    match action {
        Action::Quit => {
            m.quit = true;
            return vec![Cmd::Quit];
        }
        Action::Help => m.popup = Some(Popup::Help),
        Action::FocusNext | Action::FocusPrev => {
            let order: &[Focus] = match (m.device_visible(), m.debug_visible()) {
                (true, true) => &[Focus::Device, Focus::Exchanges, Focus::Details],
                (false, true) => &[Focus::Exchanges, Focus::Details],
                _ => &[Focus::Device],
            };
            let i = order.iter().position(|f| *f == m.focus).unwrap_or(0);
            let n = order.len();
            let j = if action == Action::FocusNext {
                (i + 1) % n
            } else {
                (i + n - 1) % n
            };
            m.focus = order[j];
        }
        Action::Up | Action::Down => {
            let d = if action == Action::Up { -1 } else { 1 };
            if m.focus == Focus::Details {
                m.scroll(d);
            } else {
                m.select(d);
            }
        }
        Action::PageUp => m.scroll(-m.page()),
        Action::PageDown => m.scroll(m.page()),
        Action::Ok => {
            if m.focus == Focus::Exchanges && m.selected.is_some() {
                m.focus = Focus::Details;
            } else if m
                .device()
                .is_some_and(|d| matches!(d.phase, Phase::Failed(_) | Phase::UpdateRequired { .. }))
            {
                m.log(Level::Info, "retry");
                m.device_event(DeviceEvent::Retry);
            }
        }
        Action::Cancel => {
            if m.focus != Focus::Device && m.device_visible() {
                m.focus = Focus::Device;
            } else {
                m.toast = None;
            }
        }
        Action::Clear => m.toast = None,
        Action::Restart => return restart(m),
        Action::Claim | Action::Expire => return code_action(m, action),
        Action::Profiles => open_profiles(m),
        Action::Server => {
            let current = m.args.server.clone().unwrap_or_default();
            m.popup = Some(Popup::Server(Input::new(current)));
        }
        Action::Export => return export(m),
        Action::CopyCurl => {
            if let Some(e) = m.selected_exchange() {
                let text = crate::client::export::curl(e);
                m.popup = Some(Popup::Curl(text.clone()));
                return vec![Cmd::Clipboard(text)];
            }
            m.toast_(Level::Info, "No exchange selected");
        }
        Action::ToggleDebug => {
            m.debug_toggled = !m.debug_toggled;
            m.focus = if m.device_visible() {
                Focus::Device
            } else {
                Focus::Exchanges
            };
        }
        Action::PollSlower | Action::PollFaster => {
            let Some(d) = m.device() else {
                return Vec::new();
            };
            let cur = d.config.poll_interval;
            let next = if action == Action::PollSlower {
                cur + SECOND
            } else {
                cur.saturating_sub(SECOND)
            };
            let next = crate::device::poll::clamp_interval(next);
            m.device_event(DeviceEvent::SetPollInterval(next));
            let text = if next == cur {
                format!("Poll interval stays {} (spec: 3–5 s)", fmt_took(next))
            } else {
                format!("Polling every {}", fmt_took(next))
            };
            m.toast_(Level::Info, text);
        }
    }
    Vec::new()
}

fn restart(m: &mut Model) -> Vec<Cmd> {
    let Some(live) = m.live.as_ref() else {
        return Vec::new();
    };
    // The server must forget the device first, or it would still hold the old claim.
    let generation = live.generation;
    let transport = live.session.transport.clone();
    let device_id = live.session.profile.device_id.clone();
    let log = live.session.log.clone();
    let embedded = live.sandbox.is_some();
    m.toast_(Level::Info, "Restarting…");
    vec![Cmd::Spawn(Box::pin(async move {
        let result =
            crate::client::merchant::sandbox_reset(&transport, &device_id, Some(&log)).await;
        let result = match result {
            Ok(_) => Ok("device reset on the sandbox".to_string()),
            // A real server has no /sandbox/ helpers: restarting the device alone is all we can.
            Err(e) if !embedded && e.status() == Some(404) => {
                Err("the server has no /sandbox/ helpers; restarting the device only".into())
            }
            Err(e) => Err(e.to_string()),
        };
        Msg::Sandbox {
            generation,
            action: SandboxAction::Reset,
            result,
        }
    }))]
}

fn code_action(m: &mut Model, action: Action) -> Vec<Cmd> {
    let Some(live) = m.live.as_ref() else {
        return Vec::new();
    };
    let code = live
        .session
        .driver
        .state()
        .code
        .as_ref()
        .map(|c| c.code.clone());
    let Some(code) = code.filter(|_| live.session.driver.state().phase == Phase::Pairing) else {
        m.toast_(Level::Info, "No pairing code on screen");
        return Vec::new();
    };
    let generation = live.generation;
    let transport = live.session.transport.clone();
    let device_id = live.session.profile.device_id.clone();
    let log = live.session.log.clone();
    let claim = action == Action::Claim;
    m.log(
        Level::Info,
        if claim {
            format!("claiming {code} as the merchant (sandbox helper)")
        } else {
            format!("expiring {code} (sandbox helper)")
        },
    );
    vec![Cmd::Spawn(Box::pin(async move {
        let result = if claim {
            crate::client::sandbox_claim(&transport, &device_id, Some(&log)).await
        } else {
            crate::client::sandbox_expire_code(&transport, &device_id, Some(&log)).await
        };
        let result = match result {
            Ok(a) if claim => Ok(format!(
                "Code {} claimed: the terminal will notice at its next poll",
                a.pairing_code
            )),
            Ok(a) => Ok(format!(
                "Code {} expired on the server: the terminal will notice at its next poll",
                a.pairing_code
            )),
            Err(e) => Err(sandbox_error(&e)),
        };
        Msg::Sandbox {
            generation,
            action: if claim {
                SandboxAction::Claim
            } else {
                SandboxAction::Expire
            },
            result,
        }
    }))]
}

/// A sandbox helper's failure in words; a server without the helpers is told apart.
fn sandbox_error(e: &MerchantError) -> String {
    if e.status() == Some(404) && e.message() == Some("Route not found") {
        return "This server is not a posemu sandbox (no /sandbox/ helpers): claim the code in \
                the merchant portal instead"
            .into();
    }
    match e.message() {
        Some(msg) => format!("Sandbox: {msg}"),
        None => e.to_string(),
    }
}

fn open_profiles(m: &mut Model) {
    let current = m.profile().map(|p| p.name.clone());
    let home = m.home.clone().map_or_else(Home::discover, Ok);
    let items: Vec<ProfileItem> = match home {
        Ok(home) => home
            .list_profiles()
            .into_iter()
            .map(|(p, origin)| match p {
                Ok(p) => ProfileItem {
                    current: current.as_deref() == Some(p.name.as_str()),
                    detail: format!(
                        "{} · {} · {} · {}",
                        p.model,
                        p.device_id,
                        p.app_version,
                        origin.as_str()
                    ),
                    name: p.name,
                    ok: true,
                },
                Err(e) => ProfileItem {
                    name: e.file.clone(),
                    detail: e.to_string(),
                    ok: false,
                    current: false,
                },
            })
            .collect(),
        Err(e) => {
            m.toast_(Level::Bad, e.to_string());
            return;
        }
    };
    let selected = items.iter().position(|i| i.current).unwrap_or(0);
    m.popup = Some(Popup::Profiles { items, selected });
}

fn reopen(m: &mut Model, args: DeviceArgs, what: String) -> Vec<Cmd> {
    m.opening = Some(what);
    let opener = m.opener.clone();
    vec![Cmd::Spawn(Box::pin(async move {
        let result = opener(args.clone()).await.map(Box::new);
        Msg::Opened {
            args: Box::new(args),
            result,
        }
    }))]
}

fn on_popup_key(m: &mut Model, k: KeyEvent) -> Vec<Cmd> {
    use crossterm::event::KeyCode;
    let Some(popup) = m.popup.as_mut() else {
        return Vec::new();
    };
    match popup {
        Popup::Help | Popup::Curl(_) => {
            if matches!(
                k.code,
                KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') | KeyCode::Char('?')
            ) || (matches!(popup, Popup::Curl(_)) && k.code == KeyCode::Char('y'))
            {
                m.popup = None;
            }
        }
        Popup::Profiles { items, selected } => match k.code {
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('p') => m.popup = None,
            KeyCode::Up | KeyCode::Char('k') => *selected = selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                *selected = (*selected + 1).min(items.len().saturating_sub(1))
            }
            KeyCode::Enter => {
                let Some(item) = items.get(*selected).cloned() else {
                    return Vec::new();
                };
                if !item.ok {
                    m.toast_(Level::Bad, item.detail);
                    return Vec::new();
                }
                m.popup = None;
                let mut args = m.args.clone();
                args.profile = item.name.clone();
                args.fresh = false;
                return reopen(m, args, format!("Switching to profile {}", item.name));
            }
            _ => {}
        },
        Popup::Server(input) => match k.code {
            KeyCode::Esc => m.popup = None,
            KeyCode::Enter => {
                let url = input.value().trim().to_string();
                m.popup = None;
                let mut args = m.args.clone();
                args.fresh = false;
                let what = if url.is_empty() {
                    args.server = None;
                    "Starting the embedded sandbox".to_string()
                } else {
                    args.server = Some(url.clone());
                    args.code_ttl = None;
                    format!("Connecting to {url}")
                };
                return reopen(m, args, what);
            }
            _ => {
                let ev = crossterm::event::Event::Key(k);
                if let Some(req) = tui_input::backend::crossterm::to_input_request(&ev) {
                    input.handle(req);
                }
            }
        },
    }
    Vec::new()
}

fn export(m: &mut Model) -> Vec<Cmd> {
    if m.exchanges.is_empty() {
        m.toast_(Level::Info, "No exchanges to export yet");
        return Vec::new();
    }
    let exchanges = m.exchanges.clone();
    let device = m.profile().map_or("device".into(), |p| p.device_id.clone());
    let stamp = m.clock.now().format("%Y%m%d-%H%M%S");
    let name = format!("posemu-{device}-{stamp}.har");
    let dirs: Vec<PathBuf> = match &m.export_dir {
        Some(d) => vec![d.clone()],
        None => std::env::current_dir()
            .into_iter()
            .chain(Home::discover().ok().map(|h| h.data_dir))
            .collect(),
    };
    vec![Cmd::Spawn(Box::pin(async move {
        let result = tokio::task::spawn_blocking(move || {
            let text = crate::client::export::har_string(exchanges.iter().map(|e| e.as_ref()));
            let mut last = String::from("no directory to write to");
            for dir in dirs {
                let path = dir.join(&name);
                match std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, &text)) {
                    Ok(()) => return Ok(path),
                    Err(e) => last = format!("{}: {e}", path.display()),
                }
            }
            Err(last)
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        Msg::Exported(result)
    }))]
}

// ----- words and numbers -----

/// `12 ms`, `1.4 s`, `2:05`.
pub fn fmt_took(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) && ms < 120_000 {
        format!("{} s", ms / 1000)
    } else if ms < 10_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else if ms < 120_000 {
        format!("{} s", d.as_secs())
    } else {
        fmt_mmss(d)
    }
}

/// `4:59`, rounding up so a countdown reaches 0:00 only when it is over.
pub fn fmt_mmss(d: Duration) -> String {
    let s = d.as_millis().div_ceil(1000) as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

fn status_word(s: crate::protocol::wire::PairingCodeStatus) -> &'static str {
    use crate::protocol::wire::PairingCodeStatus as P;
    match s {
        P::None => "none",
        P::Pending => "pending",
        P::Used => "used",
        P::Expired => "expired",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_terminal_shows_them() {
        assert_eq!(fmt_took(Duration::from_millis(12)), "12 ms");
        assert_eq!(fmt_took(Duration::from_millis(1430)), "1.4 s");
        assert_eq!(fmt_took(Duration::from_secs(5)), "5 s");
        assert_eq!(fmt_took(Duration::from_secs(45)), "45 s");
        assert_eq!(fmt_mmss(Duration::from_millis(299_001)), "5:00");
        assert_eq!(fmt_mmss(Duration::from_secs(65)), "1:05");
        assert_eq!(fmt_mmss(Duration::ZERO), "0:00");
    }
}
