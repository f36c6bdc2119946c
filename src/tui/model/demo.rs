//! Demo mode (`posemu demo`): the portal banner's facts, and the kiosk's own moves. With
//! `--auto-claim` each code shown is claimed through the sandbox helper after a while; with
//! `--loop` the device starts over from power-on a while after the ready screen shows. Each
//! move is one delayed [`Msg::Demo`] ([`Cmd::After`] in the demo's slot); a newer move (or a
//! restart) replaces it.

use std::time::Duration;

use tokio::time::Instant;

use super::effects::{auto_claim, restart};
use super::{Cmd, Model, Msg};
use crate::tui::cmd::Slot;
use crate::tui::theme::Level;
use posemu_device::{Note, Phase, Step};

/// What `posemu demo` asks of the screen.
#[derive(Debug, Clone, Default)]
pub struct DemoMode {
    /// Claim each code shown, through the sandbox helper, after this long.
    pub auto_claim: Option<Duration>,
    /// Start over (sandbox reset, then power-on) this long after the ready screen shows.
    pub loop_after: Option<Duration>,
    /// Said once the screen is up (e.g. that the asked port was busy).
    pub notice: Option<String>,
}

/// A move the kiosk makes by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoDue {
    Claim { code: String },
    Loop,
}

/// The demo's state in the model.
pub struct Demo {
    pub mode: DemoMode,
    /// The next move and when it is due (the banner counts down to it).
    pub next: Option<(DemoDue, Instant)>,
    /// Tells a live timer's message from one a newer move replaced.
    seq: u64,
}

impl Demo {
    pub fn new(mode: DemoMode) -> Demo {
        Demo {
            mode,
            next: None,
            seq: 0,
        }
    }
}

impl Model {
    /// The kiosk's reaction to a device note: schedule, or forget, its next move.
    pub(super) fn demo_note(&mut self, note: &Note) {
        let Some(demo) = self.demo.as_ref() else {
            return;
        };
        let (claim, again) = (demo.mode.auto_claim, demo.mode.loop_after);
        match note {
            Note::StepStarted(Step::Bootstrap) => self.demo_cancel(),
            Note::CodeShown { code, .. } => match claim {
                Some(after) => self.demo_schedule(DemoDue::Claim { code: code.clone() }, after),
                None => self.demo_cancel(),
            },
            Note::Claimed | Note::CodeExpired { .. } => self.demo_cancel(),
            // an unattended kiosk must not stay stopped either
            Note::Activated { .. }
            | Note::ReadyFromSaved
            | Note::Failed(_)
            | Note::UpdateRequired { .. } => {
                if let Some(after) = again {
                    self.demo_schedule(DemoDue::Loop, after);
                }
            }
            _ => {}
        }
    }

    fn demo_cancel(&mut self) {
        if let Some(d) = self.demo.as_mut() {
            if d.next.take().is_some() {
                self.out.push(Cmd::Cancel(Slot::Demo));
            }
        }
    }

    fn demo_schedule(&mut self, due: DemoDue, after: Duration) {
        let Some(generation) = self.generation() else {
            return;
        };
        let Some(demo) = self.demo.as_mut() else {
            return;
        };
        demo.seq += 1;
        let seq = demo.seq;
        demo.next = Some((due.clone(), Instant::now() + after));
        self.out.push(Cmd::After {
            slot: Slot::Demo,
            after,
            msg: Box::new(Msg::Demo {
                generation,
                seq,
                due,
            }),
        });
    }

    /// Says the demo's notice once, after the device is attached.
    pub(super) fn demo_notice(&mut self) {
        if let Some(text) = self.demo.as_mut().and_then(|d| d.mode.notice.take()) {
            self.log(Level::Warn, text.clone());
            self.toast_(Level::Warn, text);
        }
    }
}

/// A kiosk move came due: carry it out if the device is still where it was scheduled.
pub(super) fn on_due(m: &mut Model, generation: u64, seq: u64, due: DemoDue) -> Vec<Cmd> {
    let current = m.generation() == Some(generation)
        && m.demo
            .as_ref()
            .is_some_and(|d| d.seq == seq && d.next.is_some());
    if !current {
        return Vec::new();
    }
    if let Some(d) = m.demo.as_mut() {
        d.next = None;
    }
    let Some(phase) = m.device().map(|d| d.phase.clone()) else {
        return Vec::new();
    };
    match due {
        DemoDue::Claim { code } => {
            let shown = m.device().and_then(|d| d.code.as_ref()).map(|c| &c.code);
            if phase != Phase::Pairing || shown != Some(&code) {
                return Vec::new();
            }
            let after = m.demo.as_ref().and_then(|d| d.mode.auto_claim);
            m.log(
                Level::Info,
                format!(
                    "auto-claim after {}",
                    posemu_protocol::duration::took(after.unwrap_or_default())
                ),
            );
            auto_claim(m)
        }
        DemoDue::Loop => {
            if !matches!(
                phase,
                Phase::Ready | Phase::Failed(_) | Phase::UpdateRequired { .. }
            ) {
                return Vec::new();
            }
            m.log(Level::Info, "demo loop: starting over from power-on");
            restart(m)
        }
    }
}
