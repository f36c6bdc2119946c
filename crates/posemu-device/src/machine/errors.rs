//! What the machine does with a failed call: retries with backoff, `429` slow-down, the
//! documented errors of each step (spec 2, 4.1–4.11).

use super::*;

impl Run<'_> {
    pub(super) fn on_error(&mut self, step: Step, e: CallError) {
        let status = e.status();
        if status == Some(429) {
            return self.slow_down(step, e);
        }
        if e.is_transient() {
            if step == Step::Status && (self.s.need_new_code || self.code_expired()) {
                return self.new_code(CodeGone::DeviceTimer);
            }
            self.s.attempt = self.s.attempt.saturating_add(1);
            let delay = backoff_delay(self.s.attempt, self.now.random);
            self.s.retry_due_ms = Some(deadline(self.now.mono_ms, delay));
            self.wait(Timer::Retry, delay);
            self.note(Note::Backoff {
                step,
                attempt: self.s.attempt,
                delay,
                error: e,
            });
            return;
        }
        match (step, status) {
            (_, Some(426)) => {
                // `details.min_supported_version` if given, else the message's last word
                let body = e.error_body();
                let min = body
                    .and_then(|b| b.details.as_ref()?.get("min_supported_version")?.as_str())
                    .map(str::to_string)
                    .or_else(|| body.and_then(|b| b.message.rsplit(' ').next().map(str::to_string)))
                    .unwrap_or_else(|| "a newer version".into());
                self.update_required(self.s.config.app_version.to_string(), min);
            }
            // "Device already claimed": a device that lost its progress picks up at attest
            (Step::PairingCode, Some(409)) => {
                self.s.progress.status = DeviceStatus::Claimed;
                self.s.progress.pending_code = None;
                self.note(Note::Claimed);
                self.fx.push(Effect::Save);
                self.begin(Step::Attest);
            }
            // the server forgot the claim (reset, or a new sandbox): pair again
            (Step::Attest, Some(409)) if self.s.phase == Phase::Step(Step::Attest) => {
                let took =
                    Duration::from_millis(self.now.mono_ms.saturating_sub(self.s.step_started_ms));
                self.note(Note::Repair { step, took });
                self.s.rekeying = false;
                self.s.progress =
                    Progress::new(&self.s.config.device_id, self.s.config.server.clone());
                self.fx.push(Effect::Save);
                self.begin(Step::PairingCode);
            }
            (s, Some(401)) if s.needs_token() && !self.s.reattested => {
                self.s.reattested = true;
                self.s.token = None;
                self.note(Note::ReAttest { step: s });
                self.send(Step::Attest);
            }
            _ => {
                // a failed attest on the way to a later step belongs to that step's attempt
                let shown = match self.s.phase {
                    Phase::Step(s) if s.needs_token() && step == Step::Attest => s,
                    _ => step,
                };
                self.fail(shown, FailureKind::Call { step, error: e });
            }
        }
    }

    fn slow_down(&mut self, step: Step, e: CallError) {
        let retry_after = match &e {
            CallError::Http { retry_after, .. } => retry_after.map(|d| d.min(MAX_RETRY_AFTER)),
            _ => None,
        };
        if step == Step::Status {
            self.s.slow_down = (self.s.slow_down + SLOW_DOWN).min(MAX_SLOW_DOWN);
            let wait = retry_after.unwrap_or_else(|| self.s.effective_interval());
            self.note(Note::SlowDown {
                wait,
                interval: self.s.effective_interval(),
            });
            self.schedule_poll_at(deadline(self.now.mono_ms, wait));
            return;
        }
        self.s.attempt = self.s.attempt.saturating_add(1);
        let wait = retry_after.unwrap_or_else(|| backoff_delay(self.s.attempt, self.now.random));
        self.s.retry_due_ms = Some(deadline(self.now.mono_ms, wait));
        self.wait(Timer::Retry, wait);
        self.note(Note::Backoff {
            step,
            attempt: self.s.attempt,
            delay: wait,
            error: e,
        });
    }
}
