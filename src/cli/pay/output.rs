//! What the payment commands print: notes as text or JSON Lines, and the PIN keypad.

use std::io::Write;
use std::time::Instant;

use serde_json::{json, Value};

use posemu_device::payment::{PayNote, PayOutcome};
use posemu_device::Note;
use posemu_protocol::api::Secret;
use posemu_runtime::Shown;

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
    pub(super) json: bool,
    pub(super) started: Instant,
    /// Server and device id, to tell how to claim a shown code (without `--auto-claim`).
    pub(super) claim_hint: Option<(String, String)>,
}

impl Output {
    fn t_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(super) fn shown(&mut self, s: Shown) {
        match s {
            Shown::Device(n) => self.device_note(n),
            Shown::Pay(n) => self.pay_note(n),
            Shown::AutoClaimed => self.info(
                "auto_claim",
                "claimed through the sandbox helper".into(),
                json!({}),
            ),
        }
    }

    fn device_note(&mut self, n: &Note) {
        if let Note::Polled { count, .. } = n {
            if *count != 1 && count % 10 != 0 {
                return;
            }
        }
        if self.json {
            let mut v = n.to_json();
            v["t_ms"] = json!(self.t_ms());
            return self.line(&v.to_string());
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
            Note::Polled { .. } | Note::Backoff { .. } | Note::SlowDown { .. } => "…",
            _ => "✓",
        };
        self.line(&format!("{mark} {}", n.describe()));
    }

    fn pay_note(&mut self, n: &PayNote) {
        if self.json {
            let mut v: Value = n.to_json();
            v["t_ms"] = json!(self.t_ms());
            return self.line(&v.to_string());
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

    pub(super) fn info(&mut self, kind: &str, text: String, mut v: Value) {
        if self.json {
            v["event"] = json!(kind);
            v["t_ms"] = json!(self.t_ms());
            self.line(&v.to_string());
        } else {
            self.line(&text);
        }
    }

    pub(super) fn line(&mut self, s: &str) {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{s}");
        let _ = o.flush();
    }
}
