//! The running device: attaching an opened session (its events and exchange log feed the
//! model's channel), feeding it events, and turning its notes into the timeline, messages and
//! the pairing QR code.

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::format::status_word;
use super::{Live, Model, Msg, Trouble};
use crate::cli::device_args::OpenDevice;
use crate::tui::qr::QrMatrix;
use crate::tui::theme::Level;
use posemu_device::{DeviceEvent, Note, Step};

impl Model {
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
        self.demo_notice();
        self.device_event(DeviceEvent::Start);
    }

    pub(super) fn device_event(&mut self, event: DeviceEvent) {
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
        self.demo_note(&note);
        match note {
            Note::StepStarted(step) => {
                if step == Step::Bootstrap {
                    self.step_times.clear();
                }
            }
            Note::StepDone { step, took } => {
                self.trouble = None;
                self.step_times.insert(step, took);
                self.log(
                    Level::Good,
                    format!("{} {}", step.name(), posemu_protocol::duration::took(took)),
                );
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
                    format!(
                        "code {code} {how}, expires in {}",
                        posemu_protocol::duration::countdown(expires_in)
                    ),
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
                    posemu_protocol::duration::took(wait),
                    posemu_protocol::duration::took(interval)
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
                        posemu_protocol::duration::took(delay)
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
                    format!(
                        "activated as {terminal_id} in {}",
                        posemu_protocol::duration::took(total)
                    ),
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
}
