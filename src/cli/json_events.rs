//! The JSON Lines of the one-device commands (`activate`, `pay`, `refund` and `cancel` with
//! `--json`): one object a line, `event` its kind and `t_ms` the device's time.
//!
//! `t_ms` is the device's clock (its machine's, ms since the device started this run; warped
//! with `--time-warp`), read once per machine step: an event made by a step carries that step's
//! reading, the very one its `ms` (a step's `took`, a difference of two such readings) comes
//! from, so a step's `ms` is exactly the `t_ms` gap from its `step_started` to its `step_done`.
//! The payment machine's notes carry the reading of its own step on the same clock (a retry's
//! `delay_ms` has passed on it by the event after the retry). `t_ms` never goes back.

use std::io::Write;

use serde_json::{json, Value};

use posemu_device::payment::PayNote;
use posemu_device::{DeviceState, Note};

#[derive(Debug, Default)]
pub(super) struct JsonEvents {
    /// The `t_ms` of what is printed next.
    t_ms: u64,
}

impl JsonEvents {
    /// Stamps what is printed next with the device's time `t_ms` (a machine step's reading for
    /// its notes, a fresh reading for anything else); never earlier than what went before.
    pub(super) fn at(&mut self, t_ms: u64) {
        self.t_ms = self.t_ms.max(t_ms);
    }

    /// A note of the device machine.
    pub(super) fn note(&self, n: &Note) {
        self.print(n.to_json());
    }

    /// A status poll, with the next poll and the code's expiry counted from its own `t_ms`.
    pub(super) fn poll(&self, n: &Note, d: &DeviceState) {
        let now = self.t_ms;
        let mut v = n.to_json();
        v["next_poll_in_ms"] = json!(d.poll_due_ms.map(|t| t.saturating_sub(now)));
        v["code_expires_in_ms"] = json!(d.code_remaining(now).map(|l| l.as_millis() as u64));
        self.print(v);
    }

    /// A note of the payment machine.
    pub(super) fn pay_note(&self, n: &PayNote) {
        self.print(n.to_json());
    }

    /// An event of the command itself (`device`, `warning`, `error`, …).
    pub(super) fn info(&self, kind: &str, mut v: Value) {
        v["event"] = json!(kind);
        self.print(v);
    }

    fn print(&self, mut v: Value) {
        v["t_ms"] = json!(self.t_ms);
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{v}");
        let _ = o.flush();
    }
}
