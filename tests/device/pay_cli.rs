//! `posemu pay`, `refund` and `cancel` as a user runs them: the real binary, a temp
//! POSEMU_HOME, the embedded sandbox (activated on the way with `--auto-claim`) or a
//! `posemu sandbox` process on 127.0.0.1 port 0 for what spans several commands.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_posemu");
/// Timers and the embedded sandbox's clock run this much faster: the activation's first status
/// poll takes 30 ms, a payment retry's backoff at most 40 ms.
const WARP: &str = "100";

fn posemu(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("POSEMU_HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

/// `posemu pay --auto-claim --time-warp …` on the embedded sandbox, plus `args`.
fn pay(home: &std::path::Path, args: &[&str]) -> (Output, String, String) {
    let mut all = vec!["pay", "--auto-claim", "--time-warp", WARP];
    all.extend_from_slice(args);
    let o = posemu(home, &all);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    (o, out, err)
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

#[test]
fn an_approved_charge_prints_the_receipt_and_exits_0() {
    let home = tempfile::tempdir().unwrap();
    let (o, out, err) = pay(
        home.path(),
        &[
            "--amount",
            "15.00",
            "--tip",
            "1.50",
            "--reference",
            "ORDER-1001",
        ],
    );
    assert_eq!(code(&o), 0, "{out}\n{err}");
    for want in [
        "— ready for payments",
        "charge attempt 1 · Idempotency-Key ",
        "✓ APPROVED 16.50 EUR · auth ",
        "DEMO MERCHANT",
        "SALE               MERCHANT COPY",
        "Terminal TID-",
        "STAN 000001",
        "Visa  424242******4242      CHIP",
        "RRN ",
        "Amount                 EUR 15.00",
        "Tip                     EUR 1.50",
        "TOTAL                  EUR 16.50",
        "APPROVED · 00",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(
        !out.contains("4242424242424242"),
        "full PAN printed:\n{out}"
    );
}

#[test]
fn a_declined_card_exits_5_with_its_code_and_words() {
    let home = tempfile::tempdir().unwrap();
    let (o, out, err) = pay(
        home.path(),
        &["--amount", "20.00", "--card", "4000000000000002"],
    );
    assert_eq!(code(&o), 5, "{out}\n{err}");
    assert!(
        out.contains("✗ DECLINED 20.00 EUR · Do not honor (do_not_honor, response 05)"),
        "{out}"
    );
    assert!(out.contains("DECLINED · 05"), "{out}");
}

#[test]
fn the_late_approval_504_is_retried_with_the_same_key_and_approved() {
    let home = tempfile::tempdir().unwrap();
    let (o, out, err) = pay(home.path(), &["--amount", "0.68", "--json"]);
    assert_eq!(code(&o), 0, "{out}\n{err}");
    let events = json_lines(&out);
    let attempts: Vec<&Value> = events.iter().filter(|e| e["event"] == "attempt").collect();
    assert_eq!(attempts.len(), 1, "{out}");
    let key = attempts[0]["idempotency_key"].as_str().unwrap();
    let retry = events
        .iter()
        .find(|e| e["event"] == "retry")
        .unwrap_or_else(|| panic!("no retry in {out}"));
    assert_eq!(retry["http_status"], 504);
    assert_eq!(retry["idempotency_key"], key, "the same key on the retry");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "charge");
    assert_eq!(last["status"], "approved");
    assert_eq!(last["approved_amount"], "0.68");
    // one charge, not two: the retry got the stored answer
    assert_eq!(last["stan"], "000001", "{last}");
}

#[test]
fn the_pin_card_is_answered_with_the_pin_given_up_front() {
    let home = tempfile::tempdir().unwrap();
    let (o, out, err) = pay(
        home.path(),
        &[
            "--amount",
            "20.00",
            "--card",
            "4000000000000655",
            "--pin",
            "1234",
            "--json",
        ],
    );
    assert_eq!(code(&o), 0, "{out}\n{err}");
    let events = json_lines(&out);
    assert!(events.iter().any(|e| e["event"] == "pin_required"), "{out}");
    let keys: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "attempt")
        .map(|e| e["idempotency_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 2, "{out}");
    assert_ne!(keys[0], keys[1], "a new key for the attempt with the PIN");
    let last = events.last().unwrap();
    assert_eq!(last["status"], "approved", "{last}");
    assert_eq!(last["cvm"], "online_pin", "{last}");
    assert!(!out.contains("1234\""), "the PIN in the output:\n{out}");
}

#[test]
fn the_pin_card_without_a_pin_and_no_terminal_is_declined() {
    let home = tempfile::tempdir().unwrap();
    let (o, out, err) = pay(
        home.path(),
        &["--amount", "20.00", "--card", "4000000000000655", "--json"],
    );
    assert_eq!(code(&o), 5, "{out}\n{err}");
    let last = json_lines(&out).pop().unwrap();
    assert_eq!(last["event"], "charge");
    assert_eq!(last["status"], "declined");
    assert_eq!(last["decline_code"], "pin_required");
}

#[test]
fn json_prints_one_object_per_line_ending_with_the_outcome() {
    let home = tempfile::tempdir().unwrap();
    let (o, out, err) = pay(home.path(), &["--amount", "15.00", "--json"]);
    assert_eq!(code(&o), 0, "{err}");
    let events = json_lines(&out);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for k in ["device", "code_shown", "activated", "attempt", "charge"] {
        assert!(kinds.contains(&k), "no {k} in {kinds:?}");
    }
    let last = events.last().unwrap();
    assert_eq!(last["event"], "charge");
    assert_eq!(last["status"], "approved");
    assert!(last["charge_id"].as_str().unwrap().starts_with("ch_"));
    assert_eq!(last["approved_amount"], "15.00");
    assert_eq!(last["auth_code"].as_str().unwrap().len(), 6);
}

#[test]
fn bad_flags_exit_2_naming_the_problem() {
    let home = tempfile::tempdir().unwrap();
    for (args, want) in [
        (vec!["pay", "--amount", "15,00"], "15.00"),
        (
            vec!["pay", "--amount", "15", "--card", "4242-4242"],
            "12 to 19 digits",
        ),
        (vec!["pay", "--amount", "15", "--exp", "13/30"], "MM/YY"),
        (
            vec!["pay", "--amount", "15", "--entry", "nfc"],
            "chip, contactless",
        ),
        (
            vec!["pay", "--amount", "15", "--pin", "12"],
            "4 to 12 digits",
        ),
        (vec!["refund", "ch_../../x"], "charge id"),
        (
            vec!["refund", "ch_1", "--reason", "whim"],
            "requested_by_customer",
        ),
    ] {
        let o = posemu(home.path(), &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(code(&o), 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // the currency's decimals are known once the device is activated
    let (o, out, _) = pay(home.path(), &["--amount", "1.005"]);
    assert_eq!(code(&o), 2, "{out}");
    assert!(out.contains("EUR has 2 decimals"), "{out}");
}

/// A `posemu sandbox` on 127.0.0.1 port 0, killed when dropped.
struct SandboxProc {
    child: Child,
    url: String,
}

impl SandboxProc {
    fn start(extra: &[&str]) -> SandboxProc {
        let mut child = Command::new(BIN)
            .args(["sandbox", "--listen", "127.0.0.1:0", "--quiet"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn posemu sandbox");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first
            .trim()
            .strip_prefix("posemu sandbox listening on ")
            .unwrap_or_else(|| panic!("first line {first:?}"))
            .to_string();
        SandboxProc { child, url }
    }

    fn http(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let c = reqwest::Client::new();
            let mut r = c.request(method.parse().unwrap(), format!("{}{path}", self.url));
            if let Some(b) = body {
                r = r
                    .header("content-type", "application/json")
                    .body(b.to_string());
            }
            let resp = r.send().await.unwrap();
            assert!(
                resp.status().is_success(),
                "{method} {path}: {}",
                resp.status()
            );
            resp.json().await.unwrap()
        })
    }
}

impl Drop for SandboxProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn last_json(o: &Output) -> Value {
    let out = String::from_utf8_lossy(&o.stdout);
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn cancel_and_refund_across_commands_against_a_sandbox_process() {
    let sb = SandboxProc::start(&[]);
    let home = tempfile::tempdir().unwrap();
    let server = sb.url.as_str();
    let charge = |amount: &str| {
        let o = posemu(
            home.path(),
            &[
                "pay",
                "--server",
                server,
                "--auto-claim",
                "--time-warp",
                WARP,
                "--amount",
                amount,
                "--json",
            ],
        );
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
        last_json(&o)["charge_id"].as_str().unwrap().to_string()
    };

    // cancel before settlement, twice (the second answers the same cancelled charge)
    let first = charge("15.00");
    let o = posemu(home.path(), &["cancel", &first, "--server", server]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{out}");
    assert!(
        out.contains("no keys in memory (restarted)"),
        "re-key: {out}"
    );
    assert!(out.contains("CANCELLED") && out.contains("VOID"), "{out}");
    let o = posemu(
        home.path(),
        &["cancel", &first, "--server", server, "--reverse", "--json"],
    );
    assert_eq!(code(&o), 0);
    let last = last_json(&o);
    assert_eq!(
        (last["event"].as_str(), last["status"].as_str()),
        (Some("reverse"), Some("cancelled"))
    );
    // a refund before settlement is refused with the server's words, not retried
    let second = charge("20.00");
    let o = posemu(
        home.path(),
        &["refund", &second, "--server", server, "--amount", "5.00"],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 1, "{out}");
    assert!(
        out.contains("409 4009 Charge is not settled; cancel it instead"),
        "{out}"
    );
    assert!(out.contains("trace id "), "{out}");
    assert_eq!(out.matches("refund attempt").count(), 1, "{out}");

    // settle, then refund part of it and the rest (the rest read through the sandbox helper)
    sb.http("POST", "/sandbox/settle", Some("{}"));
    let o = posemu(
        home.path(),
        &["refund", &second, "--server", server, "--amount", "5.00"],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{out}");
    assert!(out.contains("REFUND                  EUR 5.00"), "{out}");
    let o = posemu(
        home.path(),
        &["refund", &second, "--server", server, "--json"],
    );
    assert_eq!(code(&o), 0);
    let last = last_json(&o);
    assert_eq!(last["event"], "refund");
    assert_eq!(last["status"], "succeeded");
    assert_eq!(last["amount"], "15.00");
    assert_eq!(last["charge_status"], "refunded");
    let c = sb.http("GET", &format!("/sandbox/charges/{second}"), None);
    assert_eq!(c["status"], "refunded");
    assert_eq!(c["refunded_amount"]["value"], "2000");
}

#[test]
fn no_answer_after_three_retries_is_outcome_unknown_exit_6() {
    let sb = SandboxProc::start(&[]);
    let home = tempfile::tempdir().unwrap();
    let server = sb.url.as_str();
    // activate first, then make every charge answer 503
    let o = posemu(
        home.path(),
        &[
            "activate",
            "--server",
            server,
            "--auto-claim",
            "--time-warp",
            WARP,
        ],
    );
    assert_eq!(code(&o), 0);
    sb.http(
        "PUT",
        "/sandbox/faults",
        Some(r#"{"rules":[{"route":"/pos/charge","error_status":503,"error_probability":1.0,"retry_after_secs":0}]}"#),
    );
    let o = posemu(
        home.path(),
        &[
            "pay",
            "--server",
            server,
            "--time-warp",
            WARP,
            "--amount",
            "15.00",
            "--json",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 6, "{out}");
    let events = json_lines(&out);
    let retries: Vec<&Value> = events.iter().filter(|e| e["event"] == "retry").collect();
    assert_eq!(retries.len(), 3, "{out}");
    let key = &events.iter().find(|e| e["event"] == "attempt").unwrap()["idempotency_key"];
    assert!(retries.iter().all(|r| &r["idempotency_key"] == key));
    let last = events.last().unwrap();
    assert_eq!(last["event"], "charge");
    assert_eq!(last["status"], "unknown");
    assert_eq!(last["http_status"], 503);
}

/// The device's clock runs this much faster in the clock tests below, where two clocks would
/// differ the most (a step of 1 s device time takes 1 ms).
const FAST: &str = "1000";

/// In `--json`, the payment part stamps its events with the same clock as the activation part:
/// a retry's `delay_ms` has passed on the device's clock (`t_ms`) by the time anything after
/// it is printed (the payment machine sends again only once its due time has come).
fn check_retry_times(out: &str) {
    let events = json_lines(out);
    for (i, e) in events.iter().enumerate() {
        if e["event"] != "retry" {
            continue;
        }
        let t = e["t_ms"].as_u64().unwrap();
        let delay = e["delay_ms"].as_u64().unwrap();
        let next = events
            .get(i + 1)
            .unwrap_or_else(|| panic!("nothing after {e}"));
        let gap = next["t_ms"].as_u64().unwrap() - t;
        assert!(
            gap >= delay,
            "retry after {delay} ms, next event {gap} ms later: {next}\n{out}"
        );
    }
}

/// `pay --json` under `--time-warp`: the activation's steps have `ms` equal to their `t_ms`
/// gaps and `t_ms` never goes back across activation and payment (the late approval's retry
/// included).
#[test]
fn pay_json_t_ms_is_the_device_clock_of_ms_in_both_parts() {
    // a fresh home each: both activate first
    let pay_json = |amount: &str| {
        let home = tempfile::tempdir().unwrap();
        let args = [
            "pay",
            "--json",
            "--auto-claim",
            "--time-warp",
            FAST,
            "--amount",
            amount,
        ];
        let o = posemu(home.path(), &args);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(code(&o), 0, "{out}");
        out
    };
    let out = pay_json("15.00");
    let done = super::activate_cli::check_step_times(&out);
    for step in ["bootstrap", "pairing-code", "attest", "keys", "activate"] {
        assert!(done.iter().any(|s| s == step), "{step} in {done:?}\n{out}");
    }
    assert_eq!(json_lines(&out).last().unwrap()["status"], "approved");

    // the late approval: 504, a retry after its backoff, approved
    let out = pay_json("0.68");
    assert!(out.contains("\"event\":\"retry\""), "{out}");
    super::activate_cli::check_step_times(&out);
    check_retry_times(&out);
}

/// `cancel --json` and `refund --json` of a device restarted from saved progress: the re-key's
/// steps (attest, keys) have `ms` equal to their `t_ms` gaps, and `t_ms` never goes back.
#[test]
fn refund_and_cancel_json_t_ms_is_the_device_clock_of_ms() {
    let sb = SandboxProc::start(&[]);
    let home = tempfile::tempdir().unwrap();
    let server = sb.url.as_str();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--server", server, "--time-warp", FAST, "--json"]);
        let o = posemu(home.path(), &all);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(code(&o), 0, "{args:?}: {out}");
        let done = super::activate_cli::check_step_times(&out);
        (json_lines(&out).pop().unwrap(), done)
    };
    let (first, _) = run(&["pay", "--auto-claim", "--amount", "15.00"]);
    let (last, done) = run(&["cancel", first["charge_id"].as_str().unwrap()]);
    assert_eq!(last["status"], "cancelled");
    assert!(done.iter().any(|s| s == "keys"), "re-keyed: {done:?}");

    let (second, _) = run(&["pay", "--amount", "20.00"]);
    sb.http("POST", "/sandbox/settle", Some("{}"));
    let id = second["charge_id"].as_str().unwrap();
    let (last, done) = run(&["refund", id, "--amount", "5.00"]);
    assert_eq!(last["status"], "succeeded");
    assert!(done.iter().any(|s| s == "keys"), "re-keyed: {done:?}");
}

/// The embedded sandbox ends with each run, the device's progress stays: a device activated on
/// one run and paying on the next (no `--auto-claim`, nobody to claim a code) is known to the new
/// sandbox as activated, so it attests again, fetches new keys and is approved, without pairing.
#[test]
fn a_device_activated_on_an_earlier_run_pays_on_the_next_without_pairing_again() {
    let home = tempfile::tempdir().unwrap();
    let (o, out, err) = pay(home.path(), &["--amount", "15.00"]);
    assert_eq!(code(&o), 0, "{out}\n{err}");
    let mut child = Command::new(BIN)
        .args(["pay", "--time-warp", WARP, "--amount", "20.00", "--json"])
        .env("POSEMU_HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let started = std::time::Instant::now();
    let mut waited_out = false;
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            waited_out = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!waited_out, "still running after 60 s:\n{out}");
    assert_eq!(code(&o), 0, "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    let events = json_lines(&out);
    let last = events.last().unwrap();
    assert_eq!(last["status"], "approved", "{out}");
    assert!(
        !events.iter().any(|e| e["event"] == "code_shown"),
        "paired again:\n{out}"
    );
    assert!(
        events.iter().any(|e| e["step"] == "keys"),
        "new keys fetched:\n{out}"
    );
}
