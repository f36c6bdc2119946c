//! The running device: its machine (the pure state machine, stepped here and never anywhere
//! else), what the screen shows of it (trouble, step times, the expired code, the QR code),
//! and turning its notes into the timeline, messages and the pairing QR code. Its effects
//! leave as [`Cmd`]s.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{Attached, Cmd, Model, Trouble};
use crate::tui::qr::QrMatrix;
use crate::tui::theme::Level;
use posemu_device::payment::{PayEvent, Payments};
use posemu_device::{DeviceEvent, DeviceState, Effect, Note, Step};
use posemu_profile::Profile;
use posemu_runtime::Machine;

/// The device session on screen: its two machines, stepped only here and in `sale`. The device
/// machine and the payment machine over the same [`DeviceState`] live together, so one restart
/// or one re-attach ends both.
pub struct Device {
    pub(super) generation: u64,
    pub(super) machine: Machine,
    /// The payment machine ([`posemu_device::payment`]): the operation under way, if any.
    pub(super) pay: Payments,
    pub(super) profile: Profile,
    pub(super) server: String,
    /// The embedded sandbox's merchant portal, if embedded.
    pub(super) portal: Option<String>,
    trouble: Option<Trouble>,
    step_times: HashMap<Step, Duration>,
    /// The code before the one on screen, when it expired.
    expired_code: Option<String>,
    /// The portal link on screen and its QR code.
    qr: Option<(String, Option<QrMatrix>)>,
}

impl Device {
    pub fn state(&self) -> &DeviceState {
        self.machine.state()
    }

    /// The last transient failure, while the device waits to retry.
    pub fn trouble(&self) -> Option<&Trouble> {
        self.trouble.as_ref()
    }

    /// How long a finished step took.
    pub fn step_time(&self, step: Step) -> Option<Duration> {
        self.step_times.get(&step).copied()
    }

    /// The code before the one on screen, when it expired.
    pub fn expired_code(&self) -> Option<&str> {
        self.expired_code.as_deref()
    }

    /// The portal link on screen and its QR code.
    pub fn qr(&self) -> Option<&(String, Option<QrMatrix>)> {
        self.qr.as_ref()
    }

    /// Forgets what the screen showed of the last run (a restart from scratch).
    pub(super) fn forget(&mut self) {
        self.step_times.clear();
        self.trouble = None;
        self.expired_code = None;
        self.qr = None;
    }

    fn portal_link(&self, code: &str) -> String {
        match &self.portal {
            Some(portal) => format!("{portal}?code={code}"),
            None => format!("{}/portal?code={code}", self.server),
        }
    }
}

impl Model {
    /// Makes `a` the running device and powers it on.
    pub(super) fn attach(&mut self, a: Attached) {
        if let Some(options) = a.options {
            self.options = options;
        }
        self.opening = None;
        self.timeline.clear();
        self.debug.reset(a.exchanges, self.theme);
        self.epoch = Instant::now();
        let what = format!("{} ({})", a.profile.device_id, a.profile.name);
        self.device = Some(Device {
            generation: a.generation,
            machine: a.machine,
            pay: Payments::new(),
            profile: a.profile,
            server: a.server,
            portal: a.portal,
            trouble: None,
            step_times: HashMap::new(),
            expired_code: None,
            qr: None,
        });
        self.log(Level::Info, format!("power on: {what}"));
        if let Some(notice) = a.notice {
            self.log(Level::Info, notice.clone());
            self.toast_(Level::Info, notice);
        }
        if let Some(problem) = a.resume_problem {
            self.log(Level::Warn, problem.clone());
            self.toast_(Level::Warn, problem);
        }
        self.demo_notice();
        self.sale = super::sale::Sale::default();
        self.device_event(DeviceEvent::Start);
    }

    /// The running device's generation (messages from an older one are stale).
    pub(super) fn generation(&self) -> Option<u64> {
        self.device.as_ref().map(|d| d.generation)
    }

    /// Steps the machine; its calls, timers and saves become commands, its notes are shown.
    pub(super) fn device_event(&mut self, event: DeviceEvent) {
        let Some(d) = self.device.as_mut() else {
            return;
        };
        let generation = d.generation;
        if matches!(event, DeviceEvent::Restart) {
            // one restart for both machines: the payment under way ends with the device (its
            // call ids go on, so an answer still on the way is stale), its retry timer goes,
            // and the sale screens start over
            self.pay_event(PayEvent::Abort("the terminal restarted".into()));
            self.out.push(Cmd::Cancel(crate::tui::cmd::Slot::Pay));
            self.sale = super::sale::Sale::default();
        }
        let Some(d) = self.device.as_mut() else {
            return;
        };
        let mut notes = Vec::new();
        for effect in d.machine.step(event) {
            match effect {
                Effect::Note(n) => notes.push(n),
                Effect::Save => self.out.push(Cmd::Save {
                    generation,
                    progress: Box::new(d.machine.state().progress.clone()),
                }),
                effect => self.out.push(Cmd::Device { generation, effect }),
            }
        }
        for n in notes {
            self.on_note(n);
        }
        self.pay_keys_check();
    }

    /// A note of the machine: its one text (`Note::describe`, as `activate` prints it) on the
    /// timeline, at the note's level, and what it changes on screen.
    fn on_note(&mut self, note: Note) {
        self.demo_note(&note);
        let text = note.describe();
        match note {
            Note::StepStarted(step) => {
                if step == Step::Bootstrap {
                    self.with_dev(|d| d.step_times.clear());
                }
            }
            Note::StepDone { step, took } => {
                self.with_dev(|d| d.trouble = None);
                self.with_dev(|d| {
                    d.step_times.insert(step, took);
                });
                self.log(Level::Good, text);
            }
            Note::ClockOffset { offset_ms } => {
                if offset_ms.abs() >= 1000 {
                    self.log(Level::Warn, text);
                }
            }
            Note::CodeShown { code, .. } => {
                self.with_dev(|d| d.trouble = None);
                self.with_dev(|d| {
                    let link = d.portal_link(&code);
                    let qr = QrMatrix::encode(&link);
                    d.qr = Some((link, qr));
                });
                self.log(Level::Info, text);
                if let Some(old) = self.device.as_ref().and_then(|d| d.expired_code.as_ref()) {
                    let text = format!("Code {old} expired: here is a new one");
                    self.toast_(Level::Warn, text);
                }
            }
            Note::Polled { .. } => {
                // one line that counts up, not a line per poll
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
                self.with_dev(|d| d.trouble = None);
            }
            Note::CodeExpired { code, .. } => {
                self.log(Level::Warn, text);
                self.with_dev(|d| d.expired_code = Some(code));
                self.with_dev(|d| d.qr = None);
            }
            Note::SlowDown { .. } => {
                self.log(Level::Warn, text.clone());
                self.toast_(Level::Warn, format!("429: {text}"));
            }
            Note::Backoff {
                step,
                attempt,
                error,
                ..
            } => {
                self.log(Level::Warn, text);
                self.with_dev(|d| {
                    d.trouble = Some(Trouble {
                        step,
                        attempt,
                        error: error.to_string(),
                    })
                });
            }
            Note::Claimed => {
                self.with_dev(|d| d.expired_code = None);
                self.log(Level::Good, text);
            }
            Note::Repair { .. } | Note::ReAttest { .. } | Note::UpdateRequired { .. } => {
                self.log(Level::Warn, text)
            }
            Note::KeysInstalled { .. } | Note::ReadyFromSaved => self.log(Level::Good, text),
            Note::Activated { terminal_id, .. } => {
                self.log(Level::Good, text);
                self.toast_(Level::Good, format!("Activated: {terminal_id}"));
            }
            Note::Failed(_) => {
                self.with_dev(|d| d.trouble = None);
                self.log(Level::Bad, text);
            }
        }
    }
}

impl Model {
    /// Changes the running device's screen state, if a device runs.
    fn with_dev(&mut self, f: impl FnOnce(&mut Device)) {
        if let Some(d) = self.device.as_mut() {
            f(d);
        }
    }
}
