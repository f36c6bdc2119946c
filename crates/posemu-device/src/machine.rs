//! The activation state machine (spec sections 1 and 4.1–4.11): `update(state, now, event)`
//! returns the effects the runtime must carry out. No I/O, no clock reads, no randomness:
//! time and a random number arrive in [`Now`] with every event.
//!
//! One call is in flight at a time. Timers are deadlines the machine keeps itself, so a timer
//! that fires late or stale is simply ignored.

use std::sync::Arc;
use std::time::Duration;

pub use super::events::{CodeGone, DeviceEvent, Effect, Note, Now, Phase, Step, Timer};
use super::failure::{Failure, FailureKind};
use super::keyset::{unwrap_key_set, InstalledKeys};
use super::poll::{
    backoff_delay, clamp_interval, deadline, server_secs, MAX_CODE_LIFETIME, MAX_RETRY_AFTER,
    MAX_SLOW_DOWN, MAX_TOKEN_LIFETIME, POLL_DEFAULT, SLOW_DOWN,
};
use super::progress::{Progress, SavedCode, SavedParameters};
use posemu_protocol::api::{ApiAnswer, ApiCall, CallError, Secret};
use posemu_protocol::crypto::Key;
use posemu_protocol::rules::is_valid_code;
use posemu_protocol::version::is_below;
use posemu_protocol::wire::{ActivationChecks, ConfigSummary, DeviceStatus, PairingCodeStatus};

/// What the device is, beyond its state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    pub device_id: String,
    /// The server URL (saved progress belongs to one server), without credentials. Shared:
    /// a fleet's devices clone one config's (see [`DeviceConfig::for_device`]).
    pub server: Arc<str>,
    pub app_version: Arc<str>,
    pub zmk: Secret<Key>,
    /// Poll interval, clamped to 3–5 s.
    pub poll_interval: Duration,
    /// Go on even when the app is below `min_supported_version`.
    pub ignore_min_version: bool,
    /// The first poll of each code comes at a random point within one interval (fleets), not
    /// after exactly one interval.
    pub spread_first_poll: bool,
    /// What the device reports at activation (spec 4.11); all true unless a fault says otherwise.
    pub checks: ActivationChecks,
}

impl DeviceConfig {
    pub fn new(device_id: &str, server: &str, app_version: &str, zmk: Key) -> DeviceConfig {
        DeviceConfig {
            device_id: device_id.to_string(),
            server: posemu_protocol::text::strip_userinfo(server).into(),
            app_version: app_version.into(),
            zmk: Secret(zmk),
            poll_interval: POLL_DEFAULT,
            ignore_min_version: false,
            spread_first_poll: false,
            checks: ActivationChecks::ALL_OK,
        }
    }

    /// The same config for another device of a fleet: its own id and ZMK, the rest (server,
    /// app version, poll settings) shared with this one, the strings without a copy.
    pub fn for_device(&self, device_id: &str, zmk: Key) -> DeviceConfig {
        DeviceConfig {
            device_id: device_id.to_string(),
            zmk: Secret(zmk),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone)]
pub struct PairingCode {
    pub code: String,
    pub expires_at_ms: u64,
    pub lifetime: Duration,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    id: u32,
    step: Step,
}

/// The device's whole state. The runtime reads it for display; only [`update`] changes it.
#[derive(Debug, Clone)]
pub struct DeviceState {
    pub config: DeviceConfig,
    pub phase: Phase,
    /// What is saved to disk; also the source of status, terminal id, merchant and config.
    pub progress: Progress,
    pub code: Option<PairingCode>,
    pub polls: u32,
    pub last_poll_ms: Option<u64>,
    pub poll_due_ms: Option<u64>,
    /// Added to the interval by 429 answers, for the rest of this code's life.
    pub slow_down: Duration,
    pub clock_offset_ms: i64,
    /// Consecutive transient failures of the current step.
    pub attempt: u32,
    pub retry_due_ms: Option<u64>,
    token: Option<(Secret<String>, u64)>,
    /// The installed key set: memory only, never in `progress` (key bytes are redacted in Debug).
    keys: Option<Box<InstalledKeys>>,
    /// Attest → keys for an activated device without keys in memory (see `DeviceEvent::Rekey`).
    rekeying: bool,
    in_flight: Option<InFlight>,
    next_call_id: u32,
    reattested: bool,
    need_new_code: bool,
    step_started_ms: u64,
    flow_started_ms: u64,
}

impl DeviceState {
    pub fn new(config: DeviceConfig) -> DeviceState {
        let progress = Progress::new(&config.device_id, config.server.clone());
        DeviceState::resume(config, progress)
    }

    /// A device that remembers `progress` (from disk); `Start` picks up from there.
    pub fn resume(mut config: DeviceConfig, progress: Progress) -> DeviceState {
        config.poll_interval = clamp_interval(config.poll_interval);
        DeviceState {
            config,
            phase: Phase::Off,
            progress,
            code: None,
            polls: 0,
            last_poll_ms: None,
            poll_due_ms: None,
            slow_down: Duration::ZERO,
            clock_offset_ms: 0,
            attempt: 0,
            retry_due_ms: None,
            token: None,
            keys: None,
            rekeying: false,
            in_flight: None,
            next_call_id: 0,
            reattested: false,
            need_new_code: false,
            step_started_ms: 0,
            flow_started_ms: 0,
        }
    }

    pub fn status(&self) -> DeviceStatus {
        self.progress.status
    }

    /// The poll interval now in force (configured plus any slow-down).
    pub fn effective_interval(&self) -> Duration {
        self.config.poll_interval.saturating_add(self.slow_down)
    }

    /// Time left on the pairing code by the device's own clock.
    pub fn code_remaining(&self, now_ms: u64) -> Option<Duration> {
        self.code
            .as_ref()
            .map(|c| Duration::from_millis(c.expires_at_ms.saturating_sub(now_ms)))
    }

    /// The step whose call is in flight, if any.
    pub fn in_flight(&self) -> Option<Step> {
        self.in_flight.map(|f| f.step)
    }

    /// The installed key set, if this run of the device installed one.
    pub fn keys(&self) -> Option<&InstalledKeys> {
        self.keys.as_deref()
    }

    /// Activated and holding its keys: it can take payments.
    pub fn can_pay(&self) -> bool {
        self.phase == Phase::Ready && self.keys.is_some() && self.progress.terminal_id.is_some()
    }

    /// Whether the device is done (ready) or stopped and waiting for a person.
    pub fn is_settled(&self) -> bool {
        matches!(
            self.phase,
            Phase::Ready | Phase::Failed(_) | Phase::UpdateRequired { .. }
        )
    }
}

/// Advances the machine by one event.
pub fn update(state: &mut DeviceState, now: Now, event: DeviceEvent) -> Vec<Effect> {
    let mut m = Run {
        s: state,
        now,
        fx: Vec::new(),
    };
    m.handle(event);
    m.fx
}

struct Run<'a> {
    s: &'a mut DeviceState,
    now: Now,
    fx: Vec<Effect>,
}

impl Run<'_> {
    fn handle(&mut self, event: DeviceEvent) {
        match event {
            DeviceEvent::Start => self.start(),
            DeviceEvent::Restart => self.restart(),
            DeviceEvent::Retry => self.retry(),
            DeviceEvent::Answer { call, result } => {
                let Some(f) = self.s.in_flight.filter(|f| f.id == call) else {
                    return; // an answer to a call abandoned by a restart
                };
                self.s.in_flight = None;
                match result {
                    Ok(answer) => self.on_answer(f.step, answer),
                    Err(e) => self.on_error(f.step, e),
                }
            }
            DeviceEvent::Timer(t) => self.on_timer(t),
            DeviceEvent::SetPollInterval(d) => self.set_interval(d),
            DeviceEvent::Rekey => self.rekey(),
        }
    }

    fn note(&mut self, n: Note) {
        self.fx.push(Effect::Note(n));
    }

    fn wait(&mut self, timer: Timer, after: Duration) {
        self.fx.push(Effect::Wait { timer, after });
    }

    fn start(&mut self) {
        if self.s.phase != Phase::Off {
            return;
        }
        self.s.flow_started_ms = self.now.mono_ms;
        if self.s.progress.status == DeviceStatus::Activated {
            self.s.phase = Phase::Ready;
            self.note(Note::ReadyFromSaved);
            return;
        }
        self.begin(Step::Bootstrap);
    }

    /// [POSEMU] An activated device holds no keys after a restart (they are never saved): before
    /// its first payment it bootstraps (clock offset, minimum version), attests and fetches its
    /// key set again, then is `Ready` with keys. Nothing else changes.
    fn rekey(&mut self) {
        if self.s.phase != Phase::Ready || self.s.keys.is_some() || self.s.in_flight.is_some() {
            return;
        }
        self.s.rekeying = true;
        self.s.flow_started_ms = self.now.mono_ms;
        self.begin(Step::Bootstrap);
    }

    fn restart(&mut self) {
        let config = self.s.config.clone();
        let fresh = Progress::new(&config.device_id, config.server.clone());
        let next_id = self.s.next_call_id;
        *self.s = DeviceState::resume(config, fresh);
        self.s.next_call_id = next_id; // answers to abandoned calls must not match
        for t in [Timer::Poll, Timer::CodeExpiry, Timer::Retry] {
            self.fx.push(Effect::Cancel(t));
        }
        self.fx.push(Effect::Save);
        self.start();
    }

    fn retry(&mut self) {
        match self.s.phase.clone() {
            Phase::Failed(f) => {
                if f.step == Step::Status && self.s.code.is_some() {
                    self.s.phase = Phase::Pairing;
                    self.s.attempt = 0;
                    self.issue(Step::Status);
                } else {
                    self.begin(f.step);
                }
            }
            Phase::UpdateRequired { .. } => self.begin(Step::Bootstrap),
            _ => {}
        }
    }

    fn set_interval(&mut self, d: Duration) {
        self.s.config.poll_interval = clamp_interval(d);
        if self.s.phase != Phase::Pairing || self.s.in_flight.is_some() {
            return;
        }
        if let (Some(last), Some(_)) = (self.s.last_poll_ms, self.s.poll_due_ms) {
            let due = deadline(last, self.s.effective_interval()).max(self.now.mono_ms);
            self.schedule_poll_at(due);
        }
    }

    fn schedule_poll_at(&mut self, due_ms: u64) {
        self.s.poll_due_ms = Some(due_ms);
        self.wait(
            Timer::Poll,
            Duration::from_millis(due_ms.saturating_sub(self.now.mono_ms)),
        );
    }

    /// Enters `step` afresh: new attempt count, its timing starts now.
    fn begin(&mut self, step: Step) {
        self.s.phase = if step == Step::Status {
            Phase::Pairing
        } else {
            Phase::Step(step)
        };
        self.s.attempt = 0;
        self.s.retry_due_ms = None;
        self.s.reattested = false;
        self.s.step_started_ms = self.now.mono_ms;
        if step != Step::Status {
            self.note(Note::StepStarted(step));
        }
        self.issue(step);
    }

    fn done(&mut self, step: Step) {
        let took = Duration::from_millis(self.now.mono_ms.saturating_sub(self.s.step_started_ms));
        self.note(Note::StepDone { step, took });
    }

    /// Sends the call of `step` (attesting first if the step needs a token we lack).
    fn issue(&mut self, step: Step) {
        if step.needs_token() {
            let valid = matches!(&self.s.token, Some((_, exp)) if *exp > self.now.mono_ms);
            if !valid {
                if self.s.token.is_some() {
                    // expired mid-way: attest again, then carry on with `step`
                    if self.s.reattested {
                        return self.fail(step, FailureKind::TokenExpiredTwice);
                    }
                    self.s.reattested = true;
                    self.note(Note::ReAttest { step });
                }
                return self.send(Step::Attest);
            }
        }
        if matches!(
            step,
            Step::Config | Step::TerminalParameters | Step::Activate
        ) && self.s.keys.is_none()
        {
            return self.begin(Step::Keys);
        }
        self.send(step)
    }

    fn send(&mut self, step: Step) {
        let token = || {
            Secret(
                self.s
                    .token
                    .as_ref()
                    .map(|t| t.0 .0.clone())
                    .unwrap_or_default(),
            )
        };
        let msk = || {
            self.s
                .keys
                .as_ref()
                .map(|k| k.msk.clone())
                .unwrap_or(Secret([0; 32]))
        };
        let call = match step {
            Step::Bootstrap => ApiCall::Bootstrap,
            Step::PairingCode => ApiCall::PairingCode,
            Step::Status => ApiCall::Status,
            Step::Attest => ApiCall::Attest {
                clock_offset_ms: self.s.clock_offset_ms,
            },
            Step::Keys => ApiCall::Keys { token: token() },
            Step::Config => ApiCall::Config {
                token: token(),
                msk: msk(),
            },
            Step::TerminalParameters => ApiCall::TerminalParameters {
                token: token(),
                msk: msk(),
            },
            Step::Activate => ApiCall::Activate {
                token: token(),
                msk: msk(),
                checks: self.s.config.checks,
            },
        };
        self.s.next_call_id = self.s.next_call_id.wrapping_add(1);
        let id = self.s.next_call_id;
        self.s.in_flight = Some(InFlight { id, step });
        self.s.retry_due_ms = None;
        if step == Step::Status {
            self.s.poll_due_ms = None;
        }
        self.fx.push(Effect::Call { id, call });
    }

    fn fail(&mut self, step: Step, kind: FailureKind) {
        let f = Failure { step, kind };
        self.s.phase = Phase::Failed(Box::new(f.clone()));
        self.s.retry_due_ms = None;
        self.s.poll_due_ms = None;
        for t in [Timer::Poll, Timer::Retry] {
            self.fx.push(Effect::Cancel(t));
        }
        self.note(Note::Failed(f));
    }

    fn on_timer(&mut self, timer: Timer) {
        if self.s.in_flight.is_some() {
            if timer == Timer::CodeExpiry && self.code_expired() {
                self.s.need_new_code = true;
            }
            return;
        }
        let now = self.now.mono_ms;
        match timer {
            Timer::Poll => {
                if self.s.phase == Phase::Pairing && self.s.poll_due_ms.is_some_and(|d| d <= now) {
                    self.issue(Step::Status);
                }
            }
            Timer::CodeExpiry => {
                if self.s.phase == Phase::Pairing && self.code_expired() {
                    self.new_code(CodeGone::DeviceTimer);
                }
            }
            Timer::Retry => {
                if self.s.retry_due_ms.is_some_and(|d| d <= now) {
                    match self.s.phase {
                        Phase::Pairing => self.issue(Step::Status),
                        Phase::Step(step) => self.issue(step),
                        _ => {}
                    }
                }
            }
        }
    }

    fn code_expired(&self) -> bool {
        self.s
            .code
            .as_ref()
            .is_some_and(|c| c.expires_at_ms <= self.now.mono_ms)
    }

    /// The code is gone (expired by either clock, or replaced): ask for a new one.
    fn new_code(&mut self, why: CodeGone) {
        if let Some(c) = self.s.code.take() {
            self.note(Note::CodeExpired { code: c.code, why });
        }
        self.s.need_new_code = false;
        self.s.poll_due_ms = None;
        self.fx.push(Effect::Cancel(Timer::Poll));
        self.begin(Step::PairingCode);
    }
}

/// Server text the state keeps for display (ready screen, update screen), escaped at the source
/// so no screen can print it raw.
fn shown(s: String) -> String {
    match posemu_protocol::text::escape_control(&s) {
        std::borrow::Cow::Borrowed(_) => s,
        std::borrow::Cow::Owned(e) => e,
    }
}

mod answers;
mod errors;

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
