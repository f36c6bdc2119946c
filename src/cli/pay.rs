//! `posemu pay`, `posemu refund` and `posemu cancel`: one payment operation of one device,
//! headless. A device that is not activated yet is activated first (`--auto-claim` as for
//! `activate`); a device activated before fetches its keys again first. Text mode ends with
//! the receipt; `--json` prints JSON Lines whose last line is the outcome.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::Datelike;
use serde_json::{json, Value};

use super::device_args::DeviceArgs;
use posemu_client::payments::is_safe_charge_id;
use posemu_device::payment::{receipt, ChargeInput, PayNote, PayOp, PayOutcome};
use posemu_device::Note;
use posemu_protocol::api::Secret;
use posemu_protocol::payments::money::{currency_decimals, MAX_REQUEST_DIGITS};
use posemu_protocol::payments::wire::CardData;
use posemu_protocol::payments::{
    is_valid_idempotency_key, luhn_ok, parse_major, EntryMode, RefundReason,
};
use posemu_runtime::{PayRunner, Shown, UpError};

/// Flags every payment command shares.
#[derive(Debug, clap::Args)]
pub struct Common {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Activate a device that is not activated yet, claiming its code through the sandbox
    /// helper after DELAY (default at once).
    #[arg(long, value_name = "DELAY", num_args = 0..=1, default_missing_value = "0s", value_parser = posemu_protocol::duration::parse)]
    pub auto_claim: Option<Duration>,
    /// One JSON object per event (JSON Lines); the last line is the outcome.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct PayArgs {
    /// The amount in major units of the terminal's currency, e.g. 15.00.
    #[arg(long, value_name = "AMOUNT", value_parser = parse_amount_syntax)]
    pub amount: String,
    /// A tip in major units, e.g. 1.50.
    #[arg(long, value_name = "AMOUNT", value_parser = parse_amount_syntax)]
    pub tip: Option<String>,
    /// The card number (12–19 digits); the sandbox's test cards are in spec 7.7, e.g.
    /// 4000000000000002 declines, 4000000000000655 asks for a PIN.
    #[arg(long, value_name = "PAN", default_value = "4242424242424242", value_parser = parse_pan)]
    pub card: String,
    /// Expiry MM/YY or MM/YYYY (default: December, three years ahead).
    #[arg(long, value_name = "MM/YY", value_parser = parse_expiry)]
    pub exp: Option<(u32, u32)>,
    /// How the card was read.
    #[arg(long, value_name = "MODE", default_value = "chip", value_parser = parse_entry)]
    pub entry: EntryMode,
    /// Answers a `pin_required` decline (4–12 digits; the sandbox's test PIN is 1234).
    #[arg(long, value_name = "PIN", value_parser = parse_pin)]
    pub pin: Option<String>,
    /// The merchant's order or receipt number (1–64 printable ASCII characters).
    #[arg(long, value_name = "R", value_parser = parse_reference)]
    pub reference: Option<String>,
    /// The first attempt's Idempotency-Key instead of a new UUID v4.
    #[arg(long, value_name = "K", value_parser = parse_key)]
    pub idempotency_key: Option<String>,
    /// Accept a partial approval.
    #[arg(long)]
    pub allow_partial: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct RefundArgs {
    /// The charge to refund (`ch_…`).
    #[arg(value_name = "CHARGE_ID", value_parser = parse_charge_id)]
    pub charge_id: String,
    /// The amount in major units; default what is left to refund (read through the sandbox
    /// helper `GET /sandbox/charges/{id}`).
    #[arg(long, value_name = "AMOUNT", value_parser = parse_amount_syntax)]
    pub amount: Option<String>,
    /// requested_by_customer, duplicate, fraudulent or other.
    #[arg(long, value_name = "REASON", value_parser = parse_reason)]
    pub reason: Option<RefundReason>,
    /// The Idempotency-Key instead of a new UUID v4.
    #[arg(long, value_name = "K", value_parser = parse_key)]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// The charge to cancel (`ch_…`).
    #[arg(value_name = "CHARGE_ID", value_parser = parse_charge_id)]
    pub charge_id: String,
    /// Use `/reverse` instead of `/cancel` (the same operation).
    #[arg(long)]
    pub reverse: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Exit codes: 0 approved, refunded or cancelled; 5 declined; 6 outcome unknown; 1 the server
/// refused or the device stopped on an error; 2 bad flags or files; 3 update required;
/// 130 interrupted.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const BAD_FLAGS: u8 = 2;
    pub const UPDATE_REQUIRED: u8 = 3;
    pub const DECLINED: u8 = 5;
    pub const UNKNOWN: u8 = 6;
    pub const INTERRUPTED: u8 = 130;
}

fn parse_amount_syntax(s: &str) -> Result<String, String> {
    // the currency (and so its decimals) is known once the device is activated; 3 is the most
    parse_major(s, 3)
        .map(|_| s.to_string())
        .ok_or_else(|| format!("{s:?} is not an amount in major units such as 15.00 or 0.68"))
}

fn parse_pan(s: &str) -> Result<String, String> {
    if !(12..=19).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a card number is 12 to 19 digits, nothing else".into());
    }
    Ok(s.to_string())
}

fn parse_expiry(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?} is not an expiry MM/YY or MM/YYYY, e.g. 12/30");
    let (m, y) = s.split_once('/').ok_or_else(bad)?;
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(m) || !digits(y) || m.len() > 2 || !(y.len() == 2 || y.len() == 4) {
        return Err(bad());
    }
    let month: u32 = m.parse().map_err(|_| bad())?;
    let mut year: u32 = y.parse().map_err(|_| bad())?;
    if y.len() == 2 {
        year += 2000;
    }
    if !(1..=12).contains(&month) || !(2000..=2099).contains(&year) {
        return Err(bad());
    }
    Ok((month, year))
}

fn parse_entry(s: &str) -> Result<EntryMode, String> {
    EntryMode::parse(s).ok_or_else(|| format!("{s:?} is not chip, contactless, swipe or manual"))
}

fn parse_pin(s: &str) -> Result<String, String> {
    if !(4..=12).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a PIN is 4 to 12 digits".into());
    }
    Ok(s.to_string())
}

fn parse_reference(s: &str) -> Result<String, String> {
    if !(1..=64).contains(&s.len()) || !s.bytes().all(|b| (0x20..=0x7E).contains(&b)) {
        return Err("a reference is 1 to 64 printable ASCII characters".into());
    }
    Ok(s.to_string())
}

fn parse_key(s: &str) -> Result<String, String> {
    if !is_valid_idempotency_key(s) {
        return Err("an Idempotency-Key is 1 to 255 visible ASCII characters".into());
    }
    Ok(s.to_string())
}

fn parse_charge_id(s: &str) -> Result<String, String> {
    if !is_safe_charge_id(s) {
        return Err(format!(
            "{s:?} is not a charge id such as ch_4fR9kT2mXq7LbN3vZp8sWc1D"
        ));
    }
    Ok(s.to_string())
}

fn parse_reason(s: &str) -> Result<RefundReason, String> {
    RefundReason::parse(s).ok_or_else(|| {
        "a reason is requested_by_customer, duplicate, fraudulent or other".to_string()
    })
}

/// `s` in minor units of `currency`: its decimals, more than 0, at most 10 digits.
fn minor_units(flag: &str, s: &str, currency: &str, zero_ok: bool) -> Result<u64, String> {
    let decimals = currency_decimals(currency);
    let v = parse_major(s, decimals).ok_or_else(|| {
        format!("{flag} {s}: the terminal's currency {currency} has {decimals} decimals")
    })?;
    let max = 10u64.pow(MAX_REQUEST_DIGITS as u32) - 1;
    if (v == 0 && !zero_ok) || v > max {
        return Err(format!(
            "{flag} {s}: must be more than 0 and at most {max} minor units"
        ));
    }
    Ok(v)
}

/// What one command asks of the device, once its currency is known.
enum Request {
    Pay(Box<PayArgs>),
    Refund(RefundArgs),
    Cancel(CancelArgs),
}

pub async fn run_pay(args: PayArgs) -> ExitCode {
    run(Request::Pay(Box::new(args))).await
}

pub async fn run_refund(args: RefundArgs) -> ExitCode {
    run(Request::Refund(args)).await
}

pub async fn run_cancel(args: CancelArgs) -> ExitCode {
    run(Request::Cancel(args)).await
}

fn common(r: &Request) -> &Common {
    match r {
        Request::Pay(a) => &a.common,
        Request::Refund(a) => &a.common,
        Request::Cancel(a) => &a.common,
    }
}

fn name(r: &Request) -> &'static str {
    match r {
        Request::Pay(_) => "pay",
        Request::Refund(_) => "refund",
        Request::Cancel(_) => "cancel",
    }
}

async fn run(req: Request) -> ExitCode {
    let cmd = name(&req);
    let c = common(&req);
    let mut out = Output {
        json: c.json,
        started: Instant::now(),
        claim_hint: None,
    };
    let opened = match c.device.open().await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("posemu {cmd}: {e}");
            return ExitCode::from(exit::BAD_FLAGS);
        }
    };
    let mut session = opened.session;
    let embedded = opened.sandbox.is_some();
    if c.auto_claim.is_none() {
        out.claim_hint = Some((opened.server.clone(), session.profile.device_id.clone()));
    }
    out.info(
        "device",
        format!(
            "{} ({}, app {}) → {}{}",
            session.profile.device_id,
            session.profile.model,
            session.profile.app_version,
            opened.server,
            if embedded { " (embedded sandbox)" } else { "" }
        ),
        json!({ "device_id": session.profile.device_id, "server": opened.server, "embedded_sandbox": embedded }),
    );
    if let Some(problem) = session.resume_problem.clone() {
        out.info("warning", problem.clone(), json!({ "message": problem }));
    }
    let faults = c.device.faults();
    let mut runner = match PayRunner::new(
        &mut session,
        faults,
        c.device.clock(),
        c.device.time_warp,
        c.auto_claim,
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("posemu {cmd}: {e}");
            return ExitCode::from(exit::BAD_FLAGS);
        }
    };
    let interactive = !c.json && std::io::stdin().is_terminal();
    tokio::select! {
        code = drive(&mut runner, &req, &mut out, interactive, embedded) => code,
        _ = tokio::signal::ctrl_c() => {
            out.info("interrupted", "interrupted; the outcome of a payment in flight is unknown".into(), json!({}));
            ExitCode::from(exit::INTERRUPTED)
        }
    }
}

async fn drive(
    runner: &mut PayRunner<'_>,
    req: &Request,
    out: &mut Output,
    interactive: bool,
    embedded: bool,
) -> ExitCode {
    let cmd = name(req);
    let mut show = |s: Shown| out.shown(s);
    if let Err(e) = runner.bring_up(&mut show).await {
        if let UpError::Failed(f) = &e {
            if let Some(t) = f.trace_id() {
                out.info("error", format!("  trace id {t}"), json!({ "trace_id": t }));
            }
        }
        out.info(
            "error",
            format!("✗ {e}"),
            json!({ "message": e.to_string() }),
        );
        return ExitCode::from(match e {
            UpError::UpdateRequired { .. } => exit::UPDATE_REQUIRED,
            _ => exit::ERROR,
        });
    }
    let Some(currency) = runner.currency() else {
        out.info(
            "error",
            "✗ the terminal's config has no emv.currency".into(),
            json!({ "message": "the terminal's config has no emv.currency" }),
        );
        return ExitCode::from(exit::ERROR);
    };
    let bad = |out: &mut Output, msg: String| {
        out.info(
            "error",
            format!("posemu {cmd}: {msg}"),
            json!({ "message": msg }),
        );
        ExitCode::from(exit::BAD_FLAGS)
    };
    let op = match req {
        Request::Pay(a) => {
            let amount = match minor_units("--amount", &a.amount, &currency, false) {
                Ok(v) => v,
                Err(e) => return bad(out, e),
            };
            let tip = match a
                .tip
                .as_deref()
                .map(|t| minor_units("--tip", t, &currency, true))
            {
                Some(Err(e)) => return bad(out, e),
                Some(Ok(t)) => Some(t),
                None => None,
            };
            let (exp_month, exp_year) = a
                .exp
                .unwrap_or_else(|| (12, chrono::Utc::now().year() as u32 + 3));
            if !luhn_ok(&a.card) {
                out.info(
                    "warning",
                    format!(
                        "card {}: fails the Luhn check; the server will decline it",
                        posemu_protocol::payments::masked_pan(&a.card)
                    ),
                    json!({ "message": "the card number fails the Luhn check" }),
                );
            }
            PayOp::Charge(ChargeInput {
                amount,
                tip,
                entry_mode: a.entry,
                card: CardData {
                    pan: a.card.clone(),
                    exp_month,
                    exp_year,
                },
                reference: a.reference.clone(),
                allow_partial: a.allow_partial,
                pin: a.pin.clone().map(Secret),
                idempotency_key: a.idempotency_key.clone(),
            })
        }
        Request::Refund(a) => {
            let amount = match &a.amount {
                Some(s) => match minor_units("--amount", s, &currency, false) {
                    Ok(v) => v,
                    Err(e) => return bad(out, e),
                },
                None => match runner.refundable(&a.charge_id).await {
                    Ok(m) if m.value > 0 => m.value,
                    Ok(_) => {
                        return bad(
                            out,
                            format!("charge {} has nothing left to refund", a.charge_id),
                        )
                    }
                    Err(e) => {
                        return bad(
                            out,
                            format!(
                                "cannot read charge {} to refund all of it ({e}): give --amount",
                                a.charge_id
                            ),
                        )
                    }
                },
            };
            PayOp::Refund {
                charge_id: a.charge_id.clone(),
                amount,
                reason: a.reason,
                idempotency_key: a.idempotency_key.clone(),
            }
        }
        Request::Cancel(a) => PayOp::Cancel {
            charge_id: a.charge_id.clone(),
            reverse: a.reverse,
        },
    };
    let mut pin_pad = || {
        if interactive {
            prompt_pin()
        } else {
            None
        }
    };
    let mut show = |s: Shown| out.shown(s);
    let outcome = runner.run(op, &mut pin_pad, &mut show).await;
    if !out.json {
        let config = runner.device().progress.config.clone();
        let slip = match &outcome {
            PayOutcome::Approved(c) | PayOutcome::Declined(c) | PayOutcome::Cancelled(c) => {
                receipt::charge(c, config.as_ref())
            }
            PayOutcome::Refunded(r) => receipt::refund(r, config.as_ref()),
            _ => Vec::new(),
        };
        if !slip.is_empty() {
            out.line("");
            for l in slip {
                out.line(&format!("  {l}"));
            }
        }
        if embedded && matches!(outcome, PayOutcome::Approved(_)) {
            out.line("\n  (embedded sandbox: it ends with this process; to refund or cancel later, run `posemu sandbox` and pass --server)");
        }
    }
    ExitCode::from(match outcome {
        PayOutcome::Approved(_) | PayOutcome::Refunded(_) | PayOutcome::Cancelled(_) => exit::OK,
        PayOutcome::Declined(_) => exit::DECLINED,
        PayOutcome::Unknown { .. } => exit::UNKNOWN,
        PayOutcome::Rejected(_) | PayOutcome::Refused(_) => exit::ERROR,
    })
}

/// The keypad: one `*` per digit, Enter to confirm, Esc to refuse.
fn prompt_pin() -> Option<Secret<String>> {
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

struct Output {
    json: bool,
    started: Instant,
    /// Server and device id, to tell how to claim a shown code (without `--auto-claim`).
    claim_hint: Option<(String, String)>,
}

impl Output {
    fn t_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn shown(&mut self, s: Shown) {
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

    fn info(&mut self, kind: &str, text: String, mut v: Value) {
        if self.json {
            v["event"] = json!(kind);
            v["t_ms"] = json!(self.t_ms());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked_with_clear_errors() {
        assert!(parse_amount_syntax("15.00").is_ok() && parse_amount_syntax("0.68").is_ok());
        for bad in ["", "15,00", "-1", "1.2345", "abc", ".5"] {
            assert!(
                parse_amount_syntax(bad).unwrap_err().contains("15.00"),
                "{bad:?}"
            );
        }
        assert_eq!(minor_units("--amount", "15.00", "EUR", false), Ok(1500));
        assert_eq!(minor_units("--amount", "0.68", "EUR", false), Ok(68));
        assert!(minor_units("--amount", "1.005", "EUR", false)
            .unwrap_err()
            .contains("2 decimals"));
        assert!(minor_units("--amount", "0", "EUR", false).is_err());
        assert_eq!(minor_units("--tip", "0", "EUR", true), Ok(0));
        assert!(minor_units("--amount", "100000000.00", "EUR", false).is_err());
        assert_eq!(parse_expiry("12/30"), Ok((12, 2030)));
        assert_eq!(parse_expiry("1/2031"), Ok((1, 2031)));
        for bad in ["13/30", "00/30", "12-30", "12/3", "12/20301", "a/30"] {
            assert!(parse_expiry(bad).is_err(), "{bad:?}");
        }
        assert!(parse_pan("4242 4242 4242 4242").is_err());
        assert!(parse_pan("42424242424").is_err());
        assert!(parse_pin("12a4").is_err() && parse_pin("123").is_err());
        assert!(parse_charge_id("ch_../x").is_err());
        assert!(parse_reference("a\nb").is_err());
        assert!(parse_key("").is_err());
        assert_eq!(parse_reason("duplicate"), Ok(RefundReason::Duplicate));
    }
}
