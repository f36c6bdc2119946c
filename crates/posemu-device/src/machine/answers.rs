//! What the machine does with each step's answer (spec 4.1–4.11).

use super::*;

impl Run<'_> {
    pub(super) fn on_answer(&mut self, step: Step, answer: ApiAnswer) {
        self.s.attempt = 0;
        match (step, answer) {
            (Step::Bootstrap, ApiAnswer::Bootstrap(b)) => self.bootstrapped(b),
            (Step::PairingCode, ApiAnswer::PairingCode(p)) => self.code_issued(p),
            (Step::Status, ApiAnswer::Status(st)) => self.polled(st),
            (Step::Attest, ApiAnswer::Attest(a)) => {
                let life = server_secs(a.expires_in_sec, MAX_TOKEN_LIFETIME);
                let exp = deadline(self.now.mono_ms, life);
                self.s.token = Some((Secret(a.attestation_token), exp));
                match self.s.phase {
                    // attested on the way to a later step (first time or again): carry on
                    Phase::Step(s) if s.needs_token() => self.issue(s),
                    _ => {
                        self.done(Step::Attest);
                        self.begin(Step::Keys);
                    }
                }
            }
            (Step::Keys, ApiAnswer::Keys(k)) => {
                match unwrap_key_set(self.s.config.zmk.expose(), &k) {
                    Ok(keys) => {
                        self.s.progress.key_set = Some(Box::new(keys.summary()));
                        self.s.keys = Some(Box::new(keys));
                        self.done(Step::Keys);
                        self.note(Note::KeysInstalled {
                            key_set_id: k.key_set.key_set_id.clone(),
                        });
                        self.fx.push(Effect::Save);
                        if std::mem::take(&mut self.s.rekeying) {
                            self.s.phase = Phase::Ready;
                        } else {
                            self.begin(Step::Config);
                        }
                    }
                    Err(e) => self.fail(Step::Keys, FailureKind::KeySet(e.to_string())),
                }
            }
            (Step::Config, ApiAnswer::Config(v)) => {
                match serde_json::from_value::<ConfigSummary>(v.clone()) {
                    Ok(c) => {
                        self.s.progress.terminal_id = Some(shown(c.terminal_id));
                        self.s.progress.merchant_name =
                            Some(shown(c.merchant.name)).filter(|n| !n.is_empty());
                        self.s.progress.config = Some(Box::new(v));
                        self.done(Step::Config);
                        self.fx.push(Effect::Save);
                        self.begin(Step::TerminalParameters);
                    }
                    Err(e) => self.fail(
                        Step::Config,
                        FailureKind::BadAnswer(format!(
                            "the config lacks what a terminal needs: {e}"
                        )),
                    ),
                }
            }
            (Step::TerminalParameters, ApiAnswer::TerminalParameters { sha256_hex, bytes }) => {
                self.s.progress.parameters = Some(Box::new(SavedParameters { sha256_hex, bytes }));
                self.done(Step::TerminalParameters);
                self.fx.push(Effect::Save);
                self.begin(Step::Activate);
            }
            (Step::Activate, ApiAnswer::Activate(r)) => {
                let p = &mut self.s.progress;
                p.status = DeviceStatus::Activated;
                if !r.terminal_id.is_empty() || p.terminal_id.is_none() {
                    p.terminal_id = Some(shown(r.terminal_id.clone()));
                }
                let terminal_id = p.terminal_id.clone().unwrap_or_default();
                p.activated_at = Some(shown(r.activated_at.clone()));
                p.pending_code = None;
                self.done(Step::Activate);
                self.s.phase = Phase::Ready;
                self.fx.push(Effect::Save);
                let total =
                    Duration::from_millis(self.now.mono_ms.saturating_sub(self.s.flow_started_ms));
                self.note(Note::Activated {
                    terminal_id,
                    activated_at: r.activated_at,
                    total,
                });
            }
            (step, other) => self.fail(
                step,
                FailureKind::BadAnswer(format!(
                    "expected the answer of {}, got one of {}",
                    step.name(),
                    other.step().name()
                )),
            ),
        }
    }

    fn bootstrapped(&mut self, b: posemu_protocol::wire::BootstrapResponse) {
        let Some(server) = posemu_protocol::clock::parse_rfc3339(&b.server_time) else {
            return self.fail(
                Step::Bootstrap,
                FailureKind::BadAnswer(format!(
                    "server_time {:?} is not an RFC 3339 time",
                    b.server_time
                )),
            );
        };
        self.s.clock_offset_ms = server.timestamp_millis().saturating_sub(self.now.wall_ms);
        self.note(Note::ClockOffset {
            offset_ms: self.s.clock_offset_ms,
        });
        let version = self.s.config.app_version.to_string();
        match is_below(&version, &b.min_supported_version) {
            Some(true) if !self.s.config.ignore_min_version => {
                return self.update_required(version, b.min_supported_version);
            }
            None => {
                return self.fail(
                    Step::Bootstrap,
                    FailureKind::BadAnswer(format!(
                        "min_supported_version {:?} or app version {version:?} is not a version",
                        b.min_supported_version
                    )),
                )
            }
            _ => {}
        }
        self.done(Step::Bootstrap);
        if self.s.progress.status != DeviceStatus::Inactive {
            return self.begin(Step::Attest);
        }
        match self.s.progress.pending_code.clone() {
            // a saved code is read from a file: it must be a code, and its life is clamped
            Some(saved) if saved.expires_at_ms > self.now.wall_ms && is_valid_code(&saved.code) => {
                let left = saved
                    .expires_at_ms
                    .saturating_sub(self.now.wall_ms)
                    .unsigned_abs();
                let left = Duration::from_millis(left).min(MAX_CODE_LIFETIME);
                self.show_code(saved.code, left, true);
                // a resumed code is polled at once: the merchant may have claimed it meanwhile
                self.s.phase = Phase::Pairing;
                self.issue(Step::Status);
            }
            _ => self.begin(Step::PairingCode),
        }
    }

    pub(super) fn update_required(&mut self, version: String, min: String) {
        let min = shown(min);
        self.s.phase = Phase::UpdateRequired {
            version: version.clone(),
            min: min.clone(),
        };
        self.note(Note::UpdateRequired { version, min });
    }

    fn show_code(&mut self, code: String, lifetime: Duration, resumed: bool) {
        let expires_at_ms = deadline(self.now.mono_ms, lifetime);
        let life_ms = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX);
        self.s.progress.pending_code = Some(SavedCode {
            code: code.clone(),
            expires_at_ms: self.now.wall_ms.saturating_add(life_ms),
        });
        self.s.code = Some(PairingCode {
            code: code.clone(),
            expires_at_ms,
            lifetime,
        });
        self.s.polls = 0;
        self.s.last_poll_ms = None;
        self.s.slow_down = Duration::ZERO;
        self.s.need_new_code = false;
        self.note(Note::CodeShown {
            code,
            expires_in: lifetime,
            resumed,
        });
        self.wait(Timer::CodeExpiry, lifetime);
        self.fx.push(Effect::Save);
    }

    fn code_issued(&mut self, p: posemu_protocol::wire::PairingCodeResponse) {
        // spec 4.2: 6 characters of the pairing alphabet; anything else is not shown at all
        if !is_valid_code(&p.pairing_code) || p.expires_in_sec == 0 {
            let mut code = p.pairing_code;
            if code.chars().count() > 16 {
                code = code.chars().take(16).chain(['…']).collect();
            }
            return self.fail(
                Step::PairingCode,
                FailureKind::BadAnswer(format!(
                    "pairing code {code:?} with expires_in_sec {} is not a code of spec 4.2",
                    p.expires_in_sec
                )),
            );
        }
        self.done(Step::PairingCode);
        let lifetime = server_secs(p.expires_in_sec, MAX_CODE_LIFETIME);
        self.show_code(p.pairing_code, lifetime, false);
        self.s.phase = Phase::Pairing;
        let interval = self.s.effective_interval();
        let first = if self.s.config.spread_first_poll {
            Duration::from_millis(self.now.random % (interval.as_millis() as u64 + 1))
        } else {
            interval
        };
        self.schedule_poll_at(deadline(self.now.mono_ms, first));
    }

    fn polled(&mut self, st: posemu_protocol::wire::StatusResponse) {
        self.s.polls = self.s.polls.saturating_add(1);
        self.s.last_poll_ms = Some(self.now.mono_ms);
        self.note(Note::Polled {
            count: self.s.polls,
            status: st.pairing_code_status,
        });
        if st.is_claimed || st.pairing_code_status == PairingCodeStatus::Used {
            self.s.code = None;
            self.s.progress.status = if st.device_status == DeviceStatus::Activated {
                DeviceStatus::Activated
            } else {
                DeviceStatus::Claimed
            };
            self.s.progress.pending_code = None;
            self.s.poll_due_ms = None;
            self.fx.push(Effect::Cancel(Timer::Poll));
            self.fx.push(Effect::Cancel(Timer::CodeExpiry));
            self.note(Note::Claimed);
            self.fx.push(Effect::Save);
            return self.begin(Step::Attest);
        }
        match st.pairing_code_status {
            PairingCodeStatus::Expired => self.new_code(CodeGone::ServerExpired),
            PairingCodeStatus::None => self.new_code(CodeGone::ServerForgot),
            _ if self.s.need_new_code || self.code_expired() => {
                self.new_code(CodeGone::DeviceTimer)
            }
            _ => {
                let due = deadline(self.now.mono_ms, self.s.effective_interval());
                self.schedule_poll_at(due);
            }
        }
    }
}
