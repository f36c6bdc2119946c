//! The POS screen's state and the one function that changes it: `update(&mut Model, Msg)`.
//!
//! Every background result (device events, exchange-log entries, sandbox answers, ticks, keys)
//! arrives as a [`Msg`] on one channel; `update` changes the model synchronously and answers
//! [`Cmd`]s for the runner (quit, clipboard, async work whose result comes back as a `Msg`).
//!
//! This file holds the state and the messages; the rest is split by job:
//! `update` (messages and keys), `session` (the running device and its notes),
//! `exchanges` (the debug side's list and details), `popups` (opening and driving them),
//! `effects` (async work: sandbox helpers, reopening, HAR export), `demo` (`posemu demo`'s
//! kiosk moves) and [`format`] (words and numbers shown on screen).

mod demo;
mod effects;
mod exchanges;
pub mod format;
mod popups;
mod session;
pub mod update;

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

use super::qr::QrMatrix;
use super::theme::{Level, Theme};
use crate::cli::device_args::{DeviceArgs, OpenDevice};
use posemu_client::Exchange;
use posemu_device::{DeviceEvent, DeviceState, Phase, Step};
use posemu_profile::Profile;
use posemu_protocol::clock::Clock;
use posemu_runtime::{DeviceSession, Home};
use posemu_sandbox::Sandbox;

pub use demo::{Demo, DemoDue, DemoMode};
pub use posemu_protocol::duration::{countdown, took};
pub use update::update;

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
    /// Demo mode: a kiosk move came due (`--auto-claim`, `--loop`).
    Demo {
        generation: u64,
        seq: u64,
        due: DemoDue,
    },
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
    /// Demo mode's `--auto-claim`.
    AutoClaim,
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
    /// `posemu demo`: the portal banner, no profile or server switch, kiosk moves.
    pub demo: Option<Demo>,
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
            demo: None,
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

    /// The embedded sandbox's merchant portal (the demo banner's link).
    pub fn portal_url(&self) -> Option<String> {
        let sb = self.live.as_ref()?.sandbox.as_ref()?;
        Some(sb.portal_url(None))
    }

    /// Demo mode: the kiosk's next move and how long until it, for the banner.
    pub fn demo_countdown(&self) -> Option<(&DemoDue, Duration)> {
        let (due, at) = self.demo.as_ref()?.next.as_ref()?;
        Some((due, at.saturating_duration_since(Instant::now())))
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
            || self.demo_countdown().is_some()
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
}
