//! `posemu activate`: one device from power-on to activated, headless, a line per step
//! (or one JSON object per event with `--json`).
//!
//! While the device waits for the merchant, its progress (polls so far, next poll, the code's
//! time left) stays current: on a terminal as one line rewritten in place (each poll and each
//! second); into a pipe or file as plain lines, one for the first poll, one every
//! [`POLL_LINE_EVERY`] polls and one whenever something changes (the code's status, the first
//! poll after a slow-down or a retry), so a log tailed by a person shows a heartbeat every
//! 15–25 s without a line per poll.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::mpsc;

use super::device_args::DeviceArgs;
use super::json_events::JsonEvents;
use posemu_client::merchant::{claim_code, ClaimOutcome, ClaimVia};
use posemu_device::{DeviceEvent, DeviceState, Note, Phase, Step};
use posemu_protocol::duration::{countdown, took};
use posemu_protocol::text::escape_control;
use posemu_protocol::wire::PairingCodeStatus;

/// Into a pipe or file, a progress line every this many polls (about every 15–25 s at the
/// spec's 3–5 s interval), besides the first poll and every change.
pub const POLL_LINE_EVERY: u32 = 5;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Claim the code through the sandbox helper (`/sandbox/devices/{id}/claim`) after DELAY
    /// (default at once), so the command completes unattended.
    #[arg(long, value_name = "DELAY", num_args = 0..=1, default_missing_value = super::AUTO_CLAIM_AT_ONCE, value_parser = posemu_protocol::duration::parse)]
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
        json: args.json.then(JsonEvents::default),
        tty: !args.json && std::io::stdout().is_terminal(),
        live: None,
    };
    let opened = match args.device.open().await {
        Ok(o) => o,
        Err(e) => return super::usage(e),
    };
    let mut session = opened.session;
    // the server as shown: no credentials (they go out as basic auth only), no escapes
    let server = escape_control(session.transport.base_url()).into_owned();
    let device_id = session.profile.device_id.clone();
    out.at(session.driver.now_ms());
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
    let mut waiting = Waiting::default();
    // on a terminal, the waiting line's countdowns move every second between polls
    let mut refresh = tokio::time::interval(Duration::from_secs(1));
    let events = session.driver.sender();
    let _ = events.send(DeviceEvent::Start);
    loop {
        tokio::select! {
            ev = session.events.recv() => {
                let Some(ev) = ev else { break };
                let notes = session.driver.handle(ev);
                out.at(session.driver.stepped_ms());
                for note in notes {
                    if let (Note::StepStarted(step), Some(crash)) = (&note, args.crash_at) {
                        if *step == crash {
                            out.info("crash", format!("✗ simulated crash before {}", step.name()), json!({ "step": step.name() }));
                            out.finish();
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
                    if let Note::Polled { count, status } = note {
                        let due = waiting.polled(count, status);
                        out.poll(&note, session.driver.state(), session.driver.stepped_ms(), due);
                        continue;
                    }
                    if matches!(note, Note::SlowDown { .. } | Note::Backoff { .. }) {
                        waiting.trouble();
                    }
                    out.note(&note);
                }
                *current_code.lock() = session.driver.state().code.as_ref().map(|c| c.code.clone());
                if let Some(e) = session.driver.take_save_error() {
                    out.info("warning", format!("cannot save progress: {}", escape_control(&e.to_string())), json!({ "message": e.to_string() }));
                }
                if let Some(code) = settled(&session.driver.state().phase) {
                    out.finish();
                    return code;
                }
            }
            _ = refresh.tick(), if out.live.is_some() => {
                if let Some(status) = waiting.status {
                    out.status(waiting_parts(waiting.polls, status, session.driver.state(), session.driver.now_ms()));
                }
            }
            Some((code, r)) = claims.recv() => {
                out.at(session.driver.now_ms());
                match r {
                    Ok(ClaimOutcome::Claimed) => out.info("auto_claim", format!("claimed {code} through the sandbox helper"), json!({ "code": code })),
                    // the code changed before or while the claim went out: the new code has its own
                    Ok(ClaimOutcome::NotCurrent(_)) => out.info("auto_claim_stale", format!("… code {code} is no longer pending; its successor gets its own claim"), json!({ "code": code })),
                    Err(e) => {
                        out.info("error", format!("auto-claim failed: {} (--auto-claim needs a posemu sandbox)", escape_control(&e)), json!({ "message": e }));
                        out.finish();
                        return ExitCode::from(1);
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => {
                out.at(session.driver.now_ms());
                out.info("interrupted", "interrupted; progress is saved, run again to resume".into(), json!({}));
                out.finish();
                return ExitCode::from(130);
            }
        }
    }
    out.finish();
    ExitCode::from(1)
}

/// The polls of the code on screen, to decide which go out as plain lines or JSON events
/// (`activate` and the activation part of `pay`).
#[derive(Debug, Default)]
pub(super) struct Waiting {
    polls: u32,
    /// The code's status at the last poll.
    status: Option<PairingCodeStatus>,
    /// The status of the last poll that went out as a line.
    shown_status: Option<PairingCodeStatus>,
    /// A slow-down, a retry or a new code since the last poll line.
    trouble: bool,
}

impl Waiting {
    /// Records a poll; answers whether it goes out as a plain line.
    pub(super) fn polled(&mut self, count: u32, status: PairingCodeStatus) -> bool {
        self.polls = count;
        self.status = Some(status);
        let due = poll_line_due(count, self.shown_status != Some(status), self.trouble);
        if due {
            self.shown_status = Some(status);
            self.trouble = false;
        }
        due
    }

    pub(super) fn trouble(&mut self) {
        self.trouble = true;
    }
}

/// Whether poll `count` goes out as a plain line: the first, every [`POLL_LINE_EVERY`]th,
/// and any poll that answers something new or follows trouble.
fn poll_line_due(count: u32, status_changed: bool, after_trouble: bool) -> bool {
    count <= 1 || count.is_multiple_of(POLL_LINE_EVERY) || status_changed || after_trouble
}

/// One part of the waiting line, in words and in fewer words for a narrow terminal.
pub(super) struct Part {
    long: String,
    short: String,
}

impl Part {
    fn new(long: String, short: String) -> Part {
        Part { long, short }
    }
}

/// `… waiting for merchant (polled 5×, code pending) · code expires in 4:47 · next poll in 3 s`
/// (on 80 columns: `… waiting for merchant (polled 5×, code pending) · expires 4:47 · next in
/// 3 s`): the parts in order of use, so a terminal too narrow even for the short forms drops
/// from the end.
pub(super) fn waiting_parts(
    polls: u32,
    status: PairingCodeStatus,
    d: &DeviceState,
    now_ms: u64,
) -> Vec<Part> {
    let whole_secs = |ms: u64| took(Duration::from_secs(ms.div_ceil(1000)));
    let polled = format!(
        "… {}",
        Note::Polled {
            count: polls,
            status
        }
        .describe()
    );
    let mut parts = vec![Part::new(polled.clone(), polled)];
    if let Some(left) = d.code_remaining(now_ms) {
        let left = countdown(left);
        parts.push(Part::new(
            format!("code expires in {left}"),
            format!("expires {left}"),
        ));
    }
    if d.in_flight() == Some(Step::Status) {
        parts.push(Part::new("polling now".into(), "polling now".into()));
    } else if let Some(due) = d.poll_due_ms {
        let left = whole_secs(due.saturating_sub(now_ms));
        parts.push(Part::new(
            format!("next poll in {left}"),
            format!("next in {left}"),
        ));
    } else if let Some(due) = d.retry_due_ms {
        let left = whole_secs(due.saturating_sub(now_ms));
        parts.push(Part::new(
            format!("retry in {left}"),
            format!("retry in {left}"),
        ));
    }
    parts
}

/// The parts in words, ` · ` between them.
pub(super) fn join_long(parts: &[Part]) -> String {
    parts
        .iter()
        .map(|p| p.long.as_str())
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The waiting line for a terminal `width` columns wide: in words if they fit, else in the
/// short forms, dropping parts from the end while even those do not fit; cut to `width`.
fn fit_waiting_line(parts: &[Part], width: usize) -> String {
    let long = join_long(parts);
    if long.chars().count() <= width {
        return long;
    }
    let mut short: Vec<&str> = parts.iter().map(|p| p.short.as_str()).collect();
    while short.len() > 1 && short.join(" · ").chars().count() > width {
        short.pop();
    }
    short.join(" · ").chars().take(width).collect()
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
    /// `--json`: the events, stamped with the device's time ([`JsonEvents`]).
    json: Option<JsonEvents>,
    /// Text mode on a terminal: the waiting line is rewritten in place.
    tty: bool,
    /// The waiting line on screen now (terminal only), under every other line.
    live: Option<String>,
}

impl Output {
    /// A status poll: JSON or a plain line when `due`; on a terminal the waiting line, always.
    fn poll(&mut self, n: &Note, d: &DeviceState, now_ms: u64, due: bool) {
        let Note::Polled { count, status } = *n else {
            return;
        };
        if let Some(j) = &self.json {
            if due {
                j.poll(n, d);
            }
            return;
        }
        let parts = waiting_parts(count, status, d, now_ms);
        if self.tty {
            self.status(parts);
        } else if due {
            self.line(&join_long(&parts));
        }
    }

    /// Rewrites the waiting line (terminal only) with as much of `parts` as fits the terminal's
    /// width ([`fit_waiting_line`]), so that `\r` still returns to its start.
    fn status(&mut self, parts: Vec<Part>) {
        // a terminal that reports no size (0 columns) is taken as 80 wide
        let width = match crossterm::terminal::size() {
            Ok((w, _)) if w > 0 => w as usize - 1,
            _ => 79,
        };
        let text = fit_waiting_line(&parts, width);
        let mut o = std::io::stdout().lock();
        let _ = write!(o, "\r\x1b[2K{text}");
        let _ = o.flush();
        self.live = Some(text);
    }

    /// Leaves the waiting line on screen as it last was, and ends it.
    fn finish(&mut self) {
        if self.live.take().is_some() {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o);
            let _ = o.flush();
        }
    }

    /// Stamps what is printed next with the device's time `now_ms` ([`JsonEvents::at`]).
    fn at(&mut self, now_ms: u64) {
        if let Some(j) = &mut self.json {
            j.at(now_ms);
        }
    }

    fn note(&mut self, n: &Note) {
        // a note that ends the wait (claimed, a new code, a failure) follows the last
        // waiting line; slow-downs and retries go above it
        if !matches!(
            n,
            Note::SlowDown { .. }
                | Note::Backoff { .. }
                | Note::StepStarted(_)
                | Note::ClockOffset { .. }
        ) {
            self.finish();
        }
        if let Some(j) = &self.json {
            return j.note(n);
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

    fn info(&mut self, kind: &str, text: String, v: serde_json::Value) {
        if let Some(j) = &self.json {
            j.info(kind, v);
        } else {
            self.line(&text);
        }
    }

    /// A line; on a terminal above the waiting line, which is drawn again under it.
    fn line(&mut self, s: &str) {
        let mut o = std::io::stdout().lock();
        match &self.live {
            Some(live) => {
                let _ = write!(o, "\r\x1b[2K{s}\n{live}");
            }
            None => {
                let _ = writeln!(o, "{s}");
            }
        }
        let _ = o.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3: on 80 columns (79 usable) the line keeps all three parts, in their short forms,
    /// up to 999 polls; wider terminals get the words.
    #[test]
    fn the_waiting_line_keeps_the_next_poll_on_80_columns() {
        let parts = |polls: u32| {
            let polled = format!(
                "… {}",
                Note::Polled {
                    count: polls,
                    status: PairingCodeStatus::Pending
                }
                .describe()
            );
            vec![
                Part::new(polled.clone(), polled),
                Part::new("code expires in 4:47".into(), "expires 4:47".into()),
                Part::new("next poll in 3 s".into(), "next in 3 s".into()),
            ]
        };
        assert_eq!(
            fit_waiting_line(&parts(5), 79),
            "… waiting for merchant (polled 5×, code pending) · expires 4:47 · next in 3 s"
        );
        assert!(fit_waiting_line(&parts(999), 79).ends_with(" · next in 3 s"));
        assert_eq!(
            fit_waiting_line(&parts(5), 119),
            "… waiting for merchant (polled 5×, code pending) · code expires in 4:47 · next poll in 3 s"
        );
        let narrow = fit_waiting_line(&parts(5), 64);
        assert_eq!(
            narrow,
            "… waiting for merchant (polled 5×, code pending) · expires 4:47"
        );
        assert_eq!(fit_waiting_line(&parts(5), 20).chars().count(), 20);
    }

    #[test]
    fn plain_poll_lines_are_a_heartbeat_not_a_flood() {
        let mut w = Waiting::default();
        let pending = PairingCodeStatus::Pending;
        let shown: Vec<u32> = (1..=21).filter(|&n| w.polled(n, pending)).collect();
        assert_eq!(shown, [1, 5, 10, 15, 20]);
        // trouble: the next poll says the device is polling again
        w.trouble();
        assert!(w.polled(22, pending));
        assert!(!w.polled(23, pending));
        // a new status goes out at once
        assert!(w.polled(24, PairingCodeStatus::Used));
    }
}
