//! What the payment commands print: notes as text or JSON Lines, and the PIN keypad.

use std::io::Write;

use serde_json::{json, Value};

use crate::cli::activate::{join_long, waiting_parts, Waiting};
use crate::cli::json_events::JsonEvents;
use posemu_device::payment::{PayNote, PayOutcome};
use posemu_device::{DeviceState, Note};
use posemu_protocol::api::Secret;
use posemu_runtime::{Showing, Shown};

/// The keypad: one `*` per digit, Enter to confirm, Esc to refuse.
pub(super) fn prompt_pin() -> Option<Secret<String>> {
    use crossterm::event::{read, Event, KeyCode, KeyEventKind};
    use crossterm::terminal::{disable_raw_mode, enable_raw_mode};
    let mut o = std::io::stdout();
    let _ = write!(
        o,
        "Enter PIN (4–12 digits, Enter to confirm, Esc to refuse): "
    );
    let _ = o.flush();
    enable_raw_mode().ok()?;
    let mut pin = String::new();
    let result = loop {
        let Ok(Event::Key(k)) = read() else { continue };
        if k.kind != KeyEventKind::Press {
            continue;
        }
        match k.code {
            KeyCode::Char(c) if c.is_ascii_digit() && pin.len() < 12 => {
                pin.push(c);
                let _ = write!(o, "*");
            }
            KeyCode::Backspace if !pin.is_empty() => {
                pin.pop();
                let _ = write!(o, "\x08 \x08");
            }
            KeyCode::Enter if pin.len() >= 4 => break Some(Secret(pin)),
            KeyCode::Esc => break None,
            KeyCode::Char('c')
                if k.modifiers
                    .contains(crossterm::event::KeyModifiers::CONTROL) =>
            {
                break None
            }
            _ => {}
        }
        let _ = o.flush();
    };
    let _ = disable_raw_mode();
    let _ = writeln!(o, "\r");
    result
}

pub(super) struct Output {
    /// `--json`: the events, stamped with the device's time ([`JsonEvents`]).
    pub(super) json: Option<JsonEvents>,
    /// Server and device id, to tell how to claim a shown code (without `--auto-claim`).
    pub(super) claim_hint: Option<(String, String)>,
    /// The polls while the device waits for the merchant: which of them are shown.
    pub(super) waiting: Waiting,
}

impl Output {
    /// Stamps what is printed next with the device's time `t_ms` ([`JsonEvents::at`]).
    pub(super) fn at(&mut self, t_ms: u64) {
        if let Some(j) = &mut self.json {
            j.at(t_ms);
        }
    }

    pub(super) fn shown(&mut self, s: Shown) {
        self.at(s.at_ms);
        match s.what {
            Showing::Device(n, d) => self.device_note(n, d, s.at_ms),
            Showing::Pay(n) => self.pay_note(n),
            Showing::AutoClaimed => self.info(
                "auto_claim",
                "claimed through the sandbox helper".into(),
                json!({}),
            ),
        }
    }

    fn device_note(&mut self, n: &Note, d: &DeviceState, at_ms: u64) {
        match n {
            Note::Polled { count, status } => {
                if !self.waiting.polled(*count, *status) {
                    return;
                }
                return match &self.json {
                    Some(j) => j.poll(n, d),
                    None => self.line(&join_long(&waiting_parts(*count, *status, d, at_ms))),
                };
            }
            Note::SlowDown { .. } | Note::Backoff { .. } => self.waiting.trouble(),
            _ => {}
        }
        if let Some(j) = &self.json {
            return j.note(n);
        }
        if let (Note::CodeShown { code, .. }, Some((server, id))) = (n, self.claim_hint.clone()) {
            self.line(&format!("✓ {}", n.describe()));
            return self.line(&format!(
                "  a merchant claims it at {server}/portal?code={code}\n  or: curl -X POST {server}/sandbox/devices/{id}/claim (or run with --auto-claim)"
            ));
        }
        let mark = match n {
            Note::StepStarted(_) | Note::ClockOffset { .. } => return,
            Note::Failed(_) | Note::UpdateRequired { .. } => "✗",
            Note::Backoff { .. } | Note::SlowDown { .. } => "…",
            _ => "✓",
        };
        self.line(&format!("{mark} {}", n.describe()));
    }

    fn pay_note(&mut self, n: &PayNote) {
        if let Some(j) = &self.json {
            return j.pay_note(n);
        }
        let mark = match n {
            PayNote::Finished { outcome, .. } => match outcome {
                PayOutcome::Approved(_) | PayOutcome::Refunded(_) | PayOutcome::Cancelled(_) => "✓",
                _ => "✗",
            },
            _ => "…",
        };
        self.line(&format!("{mark} {}", n.describe()));
    }

    pub(super) fn info(&mut self, kind: &str, text: String, v: Value) {
        match &self.json {
            Some(j) => j.info(kind, v),
            None => self.line(&text),
        }
    }

    pub(super) fn line(&mut self, s: &str) {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{s}");
        let _ = o.flush();
    }
}
