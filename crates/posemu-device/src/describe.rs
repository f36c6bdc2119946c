//! Notes in words (for `posemu activate`, the POS screen's timeline) and as JSON (for
//! `--json` and scripts). Pure formatting: no secrets are in notes to begin with.

use std::borrow::Cow;

use posemu_protocol::text::escape_control;
use serde_json::{json, Value};

use super::events::{CodeGone, Note};

impl Note {
    /// A short machine name of the kind of note.
    pub fn kind(&self) -> &'static str {
        match self {
            Note::StepStarted(_) => "step_started",
            Note::StepDone { .. } => "step_done",
            Note::ClockOffset { .. } => "clock_offset",
            Note::CodeShown { .. } => "code_shown",
            Note::Polled { .. } => "polled",
            Note::CodeExpired { .. } => "code_expired",
            Note::SlowDown { .. } => "slow_down",
            Note::Backoff { .. } => "backoff",
            Note::Claimed => "claimed",
            Note::Repair { .. } => "repair",
            Note::ReAttest { .. } => "re_attest",
            Note::KeysInstalled { .. } => "keys_installed",
            Note::Activated { .. } => "activated",
            Note::ReadyFromSaved => "ready_from_saved",
            Note::UpdateRequired { .. } => "update_required",
            Note::Failed(_) => "failed",
        }
    }

    /// One line for a person, safe to print: control characters in anything the server chose
    /// (codes, ids, messages) are escaped ([`escape_control`]).
    pub fn describe(&self) -> String {
        let text = self.describe_raw();
        match escape_control(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(escaped) => escaped,
        }
    }

    fn describe_raw(&self) -> String {
        match self {
            Note::StepStarted(s) => format!("{}…", s.title()),
            Note::StepDone { step, took } => format!(
                "{} ({})",
                step.name(),
                posemu_protocol::duration::took(*took)
            ),
            Note::ClockOffset { offset_ms } => format!(
                "server clock is {:+.1} s from the device's",
                *offset_ms as f64 / 1000.0
            ),
            Note::CodeShown {
                code,
                expires_in,
                resumed,
            } => format!(
                "pairing code {code} (expires in {}){}",
                posemu_protocol::duration::countdown(*expires_in),
                if *resumed { ", resumed" } else { "" }
            ),
            Note::Polled { count, status } => {
                format!(
                    "waiting for merchant (polled {count}×, code {})",
                    status.as_str()
                )
            }
            Note::CodeExpired { code, why } => match why {
                CodeGone::DeviceTimer => {
                    format!("code {code} expired (device timer); asking for a new one")
                }
                CodeGone::ServerExpired => {
                    format!("code {code} expired (server says so); asking for a new one")
                }
                CodeGone::ServerForgot => format!(
                    "code {code} is unknown to the server (none pending: a restarted or reset \
                     server); asking for a new one"
                ),
            },
            Note::SlowDown { wait, interval } => format!(
                "server asked to slow down: next poll in {}, interval now {}",
                posemu_protocol::duration::took(*wait),
                posemu_protocol::duration::took(*interval)
            ),
            Note::Backoff {
                step,
                attempt,
                delay,
                error,
            } => format!(
                "{} failed ({error}); retry {attempt} in {}",
                step.name(),
                posemu_protocol::duration::took(*delay)
            ),
            Note::Claimed => "claimed by the merchant".into(),
            Note::Repair { step, took } => format!(
                "{} answered 409 ({}): the server no longer knows the claim; pairing again",
                step.name(),
                posemu_protocol::duration::took(*took)
            ),
            Note::ReAttest { step } => {
                format!(
                    "attestation token expired before {}; attesting again",
                    step.name()
                )
            }
            Note::KeysInstalled { key_set_id } => {
                format!("key set {key_set_id} installed, every KCV checked")
            }
            Note::Activated {
                terminal_id, total, ..
            } => format!(
                "activated as {terminal_id} in {} — ready for payments",
                posemu_protocol::duration::took(*total)
            ),
            Note::ReadyFromSaved => {
                "already activated (saved progress) — ready for payments".into()
            }
            Note::UpdateRequired { version, min } => {
                format!("update required: app {version} is below the server's minimum {min}")
            }
            Note::Failed(f) => format!("{} — {}", f.message(), f.hint()),
        }
    }

    /// The note as one JSON object (`--json`, one per line).
    pub fn to_json(&self) -> Value {
        let mut v = match self {
            Note::StepStarted(s) => json!({ "step": s.name() }),
            Note::StepDone { step, took } => {
                json!({ "step": step.name(), "ms": took.as_millis() as u64 })
            }
            Note::ClockOffset { offset_ms } => json!({ "offset_ms": offset_ms }),
            Note::CodeShown {
                code,
                expires_in,
                resumed,
            } => {
                json!({ "code": code, "expires_in_sec": expires_in.as_secs(), "resumed": resumed })
            }
            Note::Polled { count, status } => {
                json!({ "count": count, "code_status": status.as_str() })
            }
            Note::CodeExpired { code, why } => json!({
                "code": code,
                "why": why.as_str(),
                "by_device_clock": *why == CodeGone::DeviceTimer,
            }),
            Note::SlowDown { wait, interval } => json!({
                "wait_ms": wait.as_millis() as u64, "interval_ms": interval.as_millis() as u64
            }),
            Note::Backoff {
                step,
                attempt,
                delay,
                error,
            } => json!({
                "step": step.name(), "attempt": attempt, "delay_ms": delay.as_millis() as u64,
                "error": error.to_string(), "status": error.status()
            }),
            Note::Claimed | Note::ReadyFromSaved => json!({}),
            Note::ReAttest { step } => json!({ "step": step.name() }),
            Note::Repair { step, took } => {
                json!({ "step": step.name(), "ms": took.as_millis() as u64, "status": 409 })
            }
            Note::KeysInstalled { key_set_id } => json!({ "key_set_id": key_set_id }),
            Note::Activated {
                terminal_id,
                activated_at,
                total,
            } => json!({
                "terminal_id": terminal_id, "activated_at": activated_at,
                "total_ms": total.as_millis() as u64
            }),
            Note::UpdateRequired { version, min } => json!({ "version": version, "min": min }),
            Note::Failed(f) => json!({
                "step": f.step.name(), "message": f.message(), "hint": f.hint(),
                "status": f.http_status(), "code": f.code(), "trace_id": f.trace_id()
            }),
        };
        v["event"] = json!(self.kind());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Step;
    use std::time::Duration;

    #[test]
    fn notes_read_well_and_serialize_with_their_kind() {
        let n = Note::CodeShown {
            code: "K7M3NP".into(),
            expires_in: Duration::from_secs(300),
            resumed: false,
        };
        assert_eq!(n.describe(), "pairing code K7M3NP (expires in 5:00)");
        assert_eq!(n.to_json()["event"], "code_shown");
        assert_eq!(n.to_json()["expires_in_sec"], 300);
        let d = Note::StepDone {
            step: Step::Keys,
            took: Duration::from_millis(42),
        };
        assert_eq!(d.describe(), "keys (42 ms)");
    }

    #[test]
    fn server_chosen_text_is_escaped() {
        let n = Note::KeysInstalled {
            key_set_id: "ks-\x1b]52;c;aGk=\x07\x1b[2J".into(),
        };
        let text = n.describe();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.contains("\\e]52;c;aGk="), "{text}");
    }
}
