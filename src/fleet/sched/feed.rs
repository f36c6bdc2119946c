//! Feeding a device's state machine: its effects become queued calls and timers, its notes
//! become statistics (and a claim timer), and a failure becomes one line per kind.

use super::*;

impl Worker {
    /// Feeds one event to device `j`'s machine and carries out the effects.
    pub(super) fn feed(&mut self, j: usize, event: DeviceEvent, poll_deadline: Option<u64>) {
        let Slot::Live(mut dev) = std::mem::replace(&mut self.slots[j], Slot::Done) else {
            return;
        };
        let now = Now {
            mono_ms: self.plan.now_ms(),
            wall_ms: Utc::now().timestamp_millis(),
            random: self.rng.random(),
        };
        for effect in update(&mut dev.state, now, event) {
            match effect {
                Effect::Call { id, call } => {
                    // lateness is measured for the polls the poll timer sent
                    let poll_deadline = poll_deadline.filter(|_| matches!(call, ApiCall::Status));
                    self.queue.push_back(Queued::Call {
                        slot: j as u32,
                        id,
                        call,
                        poll_deadline,
                    });
                }
                Effect::Wait { timer, after } => {
                    let at = deadline(now.mono_ms, after);
                    let k = timer_slot(timer);
                    dev.due[k] = at;
                    self.timers.push(at, j as u32, k as u8);
                }
                Effect::Cancel(timer) => dev.due[timer_slot(timer)] = NO_DEADLINE,
                Effect::Save => {}
                Effect::Note(n) => self.note(j, &mut dev, now.mono_ms, n),
            }
        }
        let st = State::of(&dev.state.phase);
        let was = dev.st;
        if st != was {
            self.stats.lock().moved(was, st);
            dev.st = st;
        }
        if st.is_settled() && !was.is_settled() {
            self.settled_one();
        }
        if st == State::Ready && self.plan.charges.is_some() {
            // an activated terminal stays to take payments
            if dev.till.is_none() {
                self.charging += 1;
                self.open_till(j, &mut dev);
            }
            self.slots[j] = Slot::Live(dev);
        } else if !st.is_settled() {
            self.slots[j] = Slot::Live(dev);
        }
        // else: only counted from here on, a settled device costs no memory
    }

    fn note(&mut self, j: usize, dev: &mut Dev, now_ms: u64, n: Note) {
        match n {
            Note::CodeShown { .. } => {
                if let Some((_, dist)) = &self.plan.claim {
                    let at = now_ms + dist.sample(self.rng.random()).as_millis() as u64;
                    dev.due[CLAIM] = at;
                    self.timers.push(at, j as u32, CLAIM as u8);
                }
            }
            Note::Activated { total, .. } => {
                self.stats
                    .lock()
                    .time_to_activate
                    .record(total.as_micros() as u64);
            }
            Note::Failed(f) => self.stats.lock().failure(failure_reason(&f)),
            Note::UpdateRequired { version, min } => self
                .stats
                .lock()
                .failure(format!("update required: app {version} is below {min}")),
            _ => {}
        }
    }
}

/// One line per kind of failure, without per-request detail (ports, trace ids), so that a
/// thousand devices failing the same way are counted together.
pub fn failure_reason(f: &posemu_device::Failure) -> String {
    use posemu_device::FailureKind;
    match &f.kind {
        FailureKind::Call { step, error } => match error {
            CallError::Http {
                status,
                error: Some(b),
                ..
            } => truncate_chars(
                format!(
                    "{}: HTTP {status} {} {}",
                    step.name(),
                    escape_control(&b.code),
                    escape_control(&b.message)
                ),
                MAX_REASON_CHARS,
            ),
            CallError::Http { status, .. } => format!("{}: HTTP {status}", step.name()),
            CallError::Network(_) => format!("{}: network error", step.name()),
            CallError::Timeout(_) => format!("{}: timeout", step.name()),
            CallError::Decode(_) => format!("{}: unusable answer", step.name()),
        },
        // cut on a character boundary (a byte cut panics inside a multi-byte character)
        _ => truncate_chars(f.message(), MAX_REASON_CHARS),
    }
}
