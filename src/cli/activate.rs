//! `posemu activate`: one device from power-on to activated, headless, a line per step
//! (or one JSON object per event with `--json`).

use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::mpsc;

use super::device_args::DeviceArgs;
use posemu_client::merchant::{claim_code, ClaimOutcome, ClaimVia};
use posemu_device::{DeviceEvent, Note, Phase, Step};
use posemu_protocol::text::escape_control;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Claim the code through the sandbox helper (`/sandbox/devices/{id}/claim`) after DELAY
    /// (default at once), so the command completes unattended.
    #[arg(long, value_name = "DELAY", num_args = 0..=1, default_missing_value = "0s", value_parser = posemu_protocol::duration::parse)]
    pub auto_claim: Option<Duration>,
    /// One JSON object per event (JSON Lines) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Fault: crash (exit 137 at once, as if the power went) when STEP is about to start, e.g.
    /// `keys`; run again to see the device resume from its saved progress.
    #[arg(long, value_name = "STEP", value_parser = parse_step, help_heading = "Device faults")]
    pub crash_at: Option<Step>,
}

fn parse_step(s: &str) -> Result<Step, String> {
    Step::ALL
        .into_iter()
        .find(|st| st.name() == s)
        .ok_or_else(|| {
            let names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
            format!("{s:?} is not a step; one of: {}", names.join(", "))
        })
}

/// Exit codes: 0 activated; 1 the device stopped on an error; 2 bad flags or files;
/// 3 update required; 130 interrupted.
pub async fn run(args: Args) -> ExitCode {
    let mut out = Output {
        json: args.json,
        started: Instant::now(),
    };
    let opened = match args.device.open().await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("posemu activate: {e}");
            return ExitCode::from(2);
        }
    };
    let mut session = opened.session;
    // the server as shown: no credentials (they go out as basic auth only), no escapes
    let server = escape_control(session.transport.base_url()).into_owned();
    let device_id = session.profile.device_id.clone();
    out.info(
        "device",
        format!(
            "{device_id} ({}, {}, app {}) → {}{}",
            session.profile.model,
            session.profile.os,
            session.profile.app_version,
            server,
            if opened.sandbox.is_some() {
                " (embedded sandbox)"
            } else {
                ""
            }
        ),
        json!({ "device_id": device_id, "server": server, "embedded_sandbox": opened.sandbox.is_some() }),
    );
    if let Some(problem) = &session.resume_problem {
        out.info(
            "warning",
            escape_control(problem).into_owned(),
            json!({ "message": problem }),
        );
    }
    for f in args.device.faults().describe() {
        out.info("fault", format!("device fault: {f}"), json!({ "fault": f }));
    }

    let (claims_tx, mut claims) =
        mpsc::unbounded_channel::<(String, Result<ClaimOutcome, String>)>();
    // the code on screen, for auto-claims that wake up after it changed; one claim per code
    let current_code: Arc<Mutex<Option<String>>> = Arc::default();
    let mut claimed_codes = HashSet::new();
    let events = session.driver.sender();
    let _ = events.send(DeviceEvent::Start);
    loop {
        tokio::select! {
            ev = session.events.recv() => {
                let Some(ev) = ev else { break };
                for note in session.driver.handle(ev) {
                    if let (Note::StepStarted(step), Some(crash)) = (&note, args.crash_at) {
                        if *step == crash {
                            out.info("crash", format!("✗ simulated crash before {}", step.name()), json!({ "step": step.name() }));
                            std::process::exit(137);
                        }
                    }
                    if let Note::CodeShown { code, .. } = &note {
                        out.note(&note);
                        match args.auto_claim {
                            Some(delay) => {
                                *current_code.lock() = Some(code.clone());
                                if claimed_codes.insert(code.clone()) {
                                    let transport = session.transport.clone();
                                    let (id, tx, code) = (device_id.clone(), claims_tx.clone(), code.clone());
                                    let current = current_code.clone();
                                    tokio::spawn(async move {
                                        let still = || current.lock().as_deref() == Some(code.as_str());
                                        let r = claim_code(&ClaimVia::SandboxHelper, &transport, &id, &code, delay, still, None).await;
                                        let _ = tx.send((code, r.map_err(|e| e.to_string())));
                                    });
                                }
                            }
                            None => out.info("how_to_claim", format!(
                                "  a merchant claims it at {}/portal?code={code}\n  or: curl -X POST {}/sandbox/devices/{device_id}/claim",
                                server, server
                            ), json!({ "portal": format!("{server}/portal?code={code}") })),
                        }
                        continue;
                    }
                    // a line per poll would drown the rest: the first, then every tenth
                    if let Note::Polled { count, .. } = &note {
                        if *count != 1 && count % 10 != 0 {
                            continue;
                        }
                    }
                    out.note(&note);
                }
                *current_code.lock() = session.driver.state().code.as_ref().map(|c| c.code.clone());
                if let Some(e) = session.driver.take_save_error() {
                    out.info("warning", format!("cannot save progress: {}", escape_control(&e.to_string())), json!({ "message": e.to_string() }));
                }
                if let Some(code) = settled(&session.driver.state().phase) {
                    return code;
                }
            }
            Some((code, r)) = claims.recv() => match r {
                Ok(ClaimOutcome::Claimed) => out.info("auto_claim", format!("claimed {code} through the sandbox helper"), json!({ "code": code })),
                // the code changed before or while the claim went out: the new code has its own
                Ok(ClaimOutcome::NotCurrent(_)) => out.info("auto_claim_stale", format!("… code {code} is no longer pending; its successor gets its own claim"), json!({ "code": code })),
                Err(e) => {
                    out.info("error", format!("auto-claim failed: {} (--auto-claim needs a posemu sandbox)", escape_control(&e)), json!({ "message": e }));
                    return ExitCode::from(1);
                }
            },
            _ = tokio::signal::ctrl_c() => {
                out.info("interrupted", "interrupted; progress is saved, run again to resume".into(), json!({}));
                return ExitCode::from(130);
            }
        }
    }
    ExitCode::from(1)
}

fn settled(phase: &Phase) -> Option<ExitCode> {
    match phase {
        Phase::Ready => Some(ExitCode::SUCCESS),
        Phase::Failed(_) => Some(ExitCode::from(1)),
        Phase::UpdateRequired { .. } => Some(ExitCode::from(3)),
        _ => None,
    }
}

struct Output {
    json: bool,
    started: Instant,
}

impl Output {
    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn note(&mut self, n: &Note) {
        if self.json {
            let mut v = n.to_json();
            v["t_ms"] = json!(self.elapsed_ms());
            self.line(&v.to_string());
            return;
        }
        let mark = match n {
            Note::StepStarted(_) | Note::ClockOffset { .. } => return,
            Note::StepDone { .. }
            | Note::CodeShown { .. }
            | Note::Claimed
            | Note::KeysInstalled { .. }
            | Note::Activated { .. }
            | Note::ReadyFromSaved => "✓",
            Note::Failed(_) | Note::UpdateRequired { .. } => "✗",
            _ => "…",
        };
        let mut text = format!("{mark} {}", n.describe());
        if let Note::Failed(f) = n {
            if let Some(t) = f.trace_id() {
                text.push_str(&format!("\n  trace id {}", escape_control(t)));
            }
        }
        self.line(&text);
    }

    fn info(&mut self, kind: &str, text: String, mut v: serde_json::Value) {
        if self.json {
            v["event"] = json!(kind);
            v["t_ms"] = json!(self.elapsed_ms());
            self.line(&v.to_string());
        } else {
            self.line(&text);
        }
    }

    fn line(&mut self, s: &str) {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{s}");
        let _ = o.flush();
    }
}
