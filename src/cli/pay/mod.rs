//! `posemu pay`, `posemu refund` and `posemu cancel`: one payment operation of one device,
//! headless. A device that is not activated yet is activated first (`--auto-claim` as for
//! `activate`); a device activated before fetches its keys again first. Text mode ends with
//! the receipt; `--json` prints JSON Lines whose last line is the outcome.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use chrono::Datelike;
use serde_json::json;

mod flags;
mod output;

use super::device_args::DeviceArgs;
use flags::*;
use output::{prompt_pin, Output};
use posemu_device::payment::{receipt, ChargeInput, PayOp, PayOutcome};
use posemu_protocol::api::Secret;
use posemu_protocol::payments::wire::CardData;
use posemu_protocol::payments::{luhn_ok, EntryMode, RefundReason};
use posemu_runtime::{PayRunner, Shown, UpError};

/// Flags every payment command shares.
#[derive(Debug, clap::Args)]
pub struct Common {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Activate a device that is not activated yet, claiming its code through the sandbox
    /// helper after DELAY (default at once).
    #[arg(long, value_name = "DELAY", num_args = 0..=1, default_missing_value = super::AUTO_CLAIM_AT_ONCE, value_parser = posemu_protocol::duration::parse)]
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

async fn run(req: Request) -> ExitCode {
    let c = common(&req);
    let mut out = Output {
        json: c.json.then(Default::default),
        claim_hint: None,
        waiting: Default::default(),
    };
    let opened = match c.device.open().await {
        Ok(o) => o,
        Err(e) => {
            super::error(e);
            return ExitCode::from(exit::BAD_FLAGS);
        }
    };
    let mut session = opened.session;
    let embedded = opened.sandbox.is_some();
    out.at(session.driver.now_ms());
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
        opened.clock.clone(),
        c.device.time_warp,
        c.auto_claim,
    ) {
        Ok(r) => r,
        Err(e) => {
            super::error(e);
            return ExitCode::from(exit::BAD_FLAGS);
        }
    };
    let interactive = !c.json && std::io::stdin().is_terminal();
    tokio::select! {
        code = drive(&mut runner, &req, &mut out, interactive, embedded) => code,
        _ = tokio::signal::ctrl_c() => {
            out.at(runner.now_ms());
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
    let mut show = |s: Shown| out.shown(s);
    if let Err(e) = runner.bring_up(&mut show).await {
        out.at(runner.now_ms());
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
    out.at(runner.now_ms());
    let Some(currency) = runner.currency() else {
        out.info(
            "error",
            "✗ the terminal's config has no emv.currency".into(),
            json!({ "message": "the terminal's config has no emv.currency" }),
        );
        return ExitCode::from(exit::ERROR);
    };
    let bad = |out: &mut Output, msg: String| {
        out.info("error", super::error_line(&msg), json!({ "message": msg }));
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
                None => {
                    let left = runner.refundable(&a.charge_id).await;
                    out.at(runner.now_ms());
                    match left {
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
                    }
                }
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
    if out.json.is_none() {
        let config = runner.device().progress.config.clone();
        let slip = match &outcome {
            PayOutcome::Approved(c) | PayOutcome::Declined(c) | PayOutcome::Cancelled(c) => {
                receipt::charge(c, config.as_deref())
            }
            PayOutcome::Refunded(r) => receipt::refund(r, config.as_deref()),
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
