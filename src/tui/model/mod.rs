//! The POS screen's state and the one function that changes it: `update(&mut Model, Msg)`.
//!
//! Every result from outside (keys, ticks, device events, exchange-log entries, sandbox
//! answers, opened devices, profile lists) arrives as a [`Msg`]; `update` changes the model and
//! answers [`Cmd`]s, plain data, for the executor ([`crate::tui::exec`]) to carry out. It does
//! no I/O and spawns nothing: the device machine lives here ([`Device`]) and is stepped here,
//! its calls, timers and saves leaving as [`Cmd::Device`] and [`Cmd::Save`]. It reads only
//! time (tokio's clock for toasts and the machine, the wall clock for the machine and export
//! names).
//!
//! This file holds the state and the messages; the rest is split by job:
//! `update` (messages and keys), `session` (the running device, its notes and what the screen
//! shows of it), `exchanges` (the debug side's list and details), `popups` (the picker and the
//! keys inside popups), `effects` (keys that need the world: sandbox helpers, reopening, HAR
//! export), `demo` (`posemu demo`'s kiosk moves). The words of the timeline are the device notes' own (`Note::describe`).

mod demo;
mod effects;
mod exchanges;
mod popups;
pub mod sale;
#[cfg(test)]
mod sale_tests;
mod session;
#[cfg(test)]
mod tests;
pub mod update;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::KeyEvent;
use tokio::time::Instant;
use tui_input::Input;

use super::cmd::Cmd;
use super::exec::HelperError;
use super::qr::QrMatrix;
use super::theme::{Level, Theme};
use posemu_client::Exchange;
use posemu_device::payment::PayEvent;
use posemu_device::{DeviceEvent, DeviceState, Phase, Step};
use posemu_profile::Profile;
use posemu_protocol::clock::Clock;
use posemu_protocol::payments::Charge;
use posemu_runtime::{DeviceOptions, Machine, OpenDevice, OpenError};

pub use demo::{Demo, DemoDue, DemoMode};
pub use exchanges::DebugSide;
pub use posemu_protocol::duration::{countdown, took};
pub use session::Device;
pub use update::update;

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
        result: Result<String, HelperError>,
    },
    /// A device opened (or not) for [`Cmd::Open`]: the executor takes its resources and hands
    /// `update` an [`Msg::Attached`] or [`Msg::OpenFailed`] instead.
    Opened {
        options: Box<DeviceOptions>,
        result: Result<Box<OpenDevice>, OpenError>,
    },
    /// A device is running: what the model keeps of it.
    Attached(Box<Attached>),
    OpenFailed(String),
    Exported(Result<PathBuf, String>),
    /// The profiles on disk, for the picker ([`Cmd::ListProfiles`]).
    Profiles(Result<Vec<ProfileItem>, String>),
    /// Saving progress failed ([`Cmd::Save`]).
    SaveFailed(String),
    /// An event for the payment machine (a call's answer, its retry timer).
    Pay {
        generation: u64,
        event: PayEvent,
    },
    /// The terminal's charges from the sandbox helper ([`Cmd::LoadCharges`]).
    Charges {
        generation: u64,
        result: Result<Vec<Charge>, String>,
    },
    /// Demo mode: a kiosk move came due (`--auto-claim`, `--loop`).
    Demo {
        generation: u64,
        seq: u64,
        due: DemoDue,
    },
}

/// An opened device as the model keeps it; its resources stay with the executor.
pub struct Attached {
    pub generation: u64,
    /// The options it was opened with, if it was opened from the screen.
    pub options: Option<DeviceOptions>,
    pub machine: Machine,
    pub profile: Profile,
    pub device_id: String,
    pub server: String,
    /// The embedded sandbox's merchant portal, if embedded.
    pub portal: Option<String>,
    /// The exchanges logged before the screen attached.
    pub exchanges: Vec<Arc<Exchange>>,
    /// Saved progress that could not be used, to tell the user.
    pub resume_problem: Option<String>,
    /// How it was opened, to tell the user (the sandbox's usual port was busy).
    pub notice: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxAction {
    Claim,
    /// Demo mode's `--auto-claim`.
    AutoClaim,
    Expire,
    Reset,
    /// `POST /sandbox/settle` for this terminal.
    Settle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Device,
    Exchanges,
    Details,
}

pub enum Popup {
    /// The keys, scrolled this many rows (a short screen does not hold them all).
    Help {
        scroll: usize,
    },
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

pub struct Model {
    pub theme: Theme,
    clock: Arc<dyn Clock>,
    /// The options the current device was opened with (`p` and `s` change them).
    options: DeviceOptions,
    /// The running device: its machine and what the screen shows of it.
    device: Option<Device>,
    /// What is being opened, while a profile or server switch is under way.
    opening: Option<String>,
    size: (u16, u16),
    focus: Focus,
    /// `d` pressed: hide the debug side on wide terminals, show it (instead of the device) on
    /// narrow ones; in a demo, show it (beside the device on wide terminals).
    debug_toggled: bool,
    popup: Option<Popup>,
    toast: Option<Toast>,
    timeline: Vec<TimelineEntry>,
    debug: DebugSide,
    spinner: usize,
    quit: bool,
    /// `posemu demo`: the portal banner, no profile or server switch, kiosk moves.
    demo: Option<Demo>,
    epoch: Instant,
    /// The sale screens (the payment machine is the device's: [`Device`]).
    sale: sale::Sale,
    /// Commands queued by what `update` called, handed out when it returns.
    out: Vec<Cmd>,
}

impl Model {
    pub fn new(options: DeviceOptions, clock: Arc<dyn Clock>, theme: Theme) -> Model {
        Model {
            theme,
            clock,
            options,
            device: None,
            opening: None,
            size: (120, 40),
            focus: Focus::Device,
            debug_toggled: false,
            popup: None,
            toast: None,
            timeline: Vec::new(),
            debug: DebugSide::default(),
            spinner: 0,
            quit: false,
            demo: None,
            epoch: Instant::now(),
            sale: sale::Sale::default(),
            out: Vec::new(),
        }
    }

    /// Demo mode: the kiosk's moves and the portal banner.
    pub fn set_demo(&mut self, demo: Option<DemoMode>) {
        self.demo = demo.map(Demo::new);
    }

    // ----- what the view reads -----

    pub fn device(&self) -> Option<&DeviceState> {
        self.device.as_ref().map(|d| d.state())
    }

    /// The running device's session (its profile, server, trouble, step times, QR code).
    pub fn session(&self) -> Option<&Device> {
        self.device.as_ref()
    }

    pub fn profile(&self) -> Option<&Profile> {
        self.device.as_ref().map(|d| &d.profile)
    }

    /// The device machine's clock (ms), for countdowns.
    pub fn now_ms(&self) -> u64 {
        self.device.as_ref().map_or(0, |d| d.machine.now_ms())
    }

    pub fn server(&self) -> Option<&str> {
        self.device.as_ref().map(|d| d.server.as_str())
    }

    pub fn embedded(&self) -> bool {
        self.device.as_ref().is_some_and(|d| d.portal.is_some())
    }

    /// The embedded sandbox's merchant portal (the demo banner's link).
    pub fn portal_url(&self) -> Option<String> {
        self.device.as_ref()?.portal.clone()
    }

    /// The last transient failure, while the device waits to retry.
    pub fn trouble(&self) -> Option<&Trouble> {
        self.device.as_ref()?.trouble()
    }

    /// The code before the one on screen, when it expired.
    pub fn expired_code(&self) -> Option<&str> {
        self.device.as_ref()?.expired_code()
    }

    /// How long a finished step took.
    pub fn step_time(&self, step: Step) -> Option<Duration> {
        self.device.as_ref()?.step_time(step)
    }

    /// The portal link on screen and its QR code.
    pub fn qr(&self) -> Option<&(String, Option<QrMatrix>)> {
        self.device.as_ref()?.qr()
    }

    /// The wall clock (the status bar's time, export names).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn debug(&self) -> &DebugSide {
        &self.debug
    }

    pub fn timeline(&self) -> &[TimelineEntry] {
        &self.timeline
    }

    pub fn popup(&self) -> Option<&Popup> {
        self.popup.as_ref()
    }

    pub fn opening(&self) -> Option<&str> {
        self.opening.as_deref()
    }

    pub fn focus(&self) -> Focus {
        self.focus
    }

    pub fn size(&self) -> (u16, u16) {
        self.size
    }

    pub fn spinner(&self) -> usize {
        self.spinner
    }

    pub fn quit(&self) -> bool {
        self.quit
    }

    pub fn in_demo(&self) -> bool {
        self.demo.is_some()
    }

    /// Demo mode: the kiosk's next move and how long until it, for the banner.
    pub fn demo_countdown(&self) -> Option<(&DemoDue, Duration)> {
        let (due, at) = self.demo.as_ref()?.next.as_ref()?;
        Some((due, at.saturating_duration_since(Instant::now())))
    }

    pub fn wide(&self) -> bool {
        self.size.0 >= WIDE
    }

    /// A sales demo starts with the device alone, the debug side one `d` away; elsewhere
    /// wide terminals start with both.
    pub fn debug_visible(&self) -> bool {
        if self.in_demo() {
            self.debug_toggled
        } else {
            self.wide() != self.debug_toggled
        }
    }

    pub fn device_visible(&self) -> bool {
        self.wide() || !self.debug_toggled
    }

    pub fn selected_exchange(&self) -> Option<&Arc<Exchange>> {
        self.debug.selected_exchange()
    }

    pub fn toast(&self) -> Option<&Toast> {
        self.toast.as_ref().filter(|t| t.until > Instant::now())
    }

    /// A step's call is in flight (the spinner turns fast).
    fn busy(&self) -> bool {
        self.opening.is_some()
            || self.pay_busy()
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
