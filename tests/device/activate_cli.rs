//! `posemu activate` and `posemu profiles` as a user runs them: the real binary, a temp
//! POSEMU_HOME, the embedded sandbox or one in this process on 127.0.0.1.

use std::process::{Command, Output};

use posemu_sandbox::{Sandbox, SandboxConfig};
use regex::Regex;

fn posemu(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_posemu"))
        .args(args)
        .env("POSEMU_HOME", home)
        .output()
        .expect("the binary runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn activate_auto_claim_activates_the_default_device_then_resumes_ready() {
    let home = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let o = posemu(
        home.path(),
        &["activate", "--auto-claim", "--time-warp", "1000"],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(started.elapsed().as_secs() < 10);
    for line in [
        "POS-8F3A2C91 (PAX-A920, Android 12, app 1.4.2)",
        "✓ pairing code ",
        "✓ claimed by the merchant",
        "✓ key set ks-",
        "✓ terminal-parameters (",
        "— ready for payments",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let o = posemu(home.path(), &["activate"]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(out.contains("already activated (saved progress)"), "{out}");
}

#[test]
fn activate_json_prints_one_event_object_per_line() {
    let home = tempfile::tempdir().unwrap();
    let o = posemu(
        home.path(),
        &[
            "activate",
            "--auto-claim",
            "--json",
            "--fresh",
            "--time-warp",
            "1000",
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for k in [
        "device",
        "code_shown",
        "claimed",
        "keys_installed",
        "activated",
    ] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    let activated = events.iter().find(|e| e["event"] == "activated").unwrap();
    assert!(activated["terminal_id"]
        .as_str()
        .unwrap()
        .starts_with("TID-"));
}

#[tokio::test]
async fn activate_against_a_server_that_does_not_know_the_device_fails_clearly() {
    let sb = Sandbox::start(SandboxConfig {
        profiles: vec![],
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let url = sb.url();
    let o = tokio::task::spawn_blocking(move || {
        posemu(home.path(), &["activate", "--server", &url, "--json"])
    })
    .await
    .unwrap();
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let failed: serde_json::Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "failed")
        .expect("a failed event");
    assert_eq!(failed["status"], 404);
    assert_eq!(failed["code"], "4004");
    assert!(failed["message"]
        .as_str()
        .unwrap()
        .contains("Device not found"));
    assert_eq!(failed["trace_id"].as_str().unwrap().len(), 32);
}

#[test]
fn bad_flags_and_profiles_exit_2_naming_what_is_wrong() {
    let home = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["activate", "--poll-interval", "9"], "3–5"),
        (
            &["activate", "--profile", "nope"],
            "no profile named \"nope\"",
        ),
        (&["activate", "--clock-skew", "soon"], "not a duration"),
        (&["activate", "--drop-header", "X-Nothing"], "X-Nothing"),
    ];
    for (args, expected) in cases {
        let o = posemu(home.path(), args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let bad = home.path().join("bad.toml");
    std::fs::write(&bad, "[device]\nid = \"POS-1\"\n").unwrap();
    let o = posemu(
        home.path(),
        &["activate", "--profile", bad.to_str().unwrap()],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("bad.toml"), "{err}");
}

#[test]
fn profiles_new_list_and_show_keep_secrets_out_of_sight() {
    let home = tempfile::tempdir().unwrap();
    let o = posemu(
        home.path(),
        &["profiles", "new", "lab-2", "--model", "SUNMI-P2"],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let file = home.path().join("config/profiles/lab-2.toml");
    let saved = std::fs::read_to_string(&file).unwrap();
    let secret = saved
        .lines()
        .find(|l| l.starts_with("secret_hex"))
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap()
        .to_string();
    let (list, _) = text(&posemu(home.path(), &["profiles", "list"]));
    assert!(list.contains("lab-2") && list.contains("user") && list.contains("pax-a920"));
    let o = posemu(home.path(), &["profiles", "show", "lab-2"]);
    let (show, _) = text(&o);
    assert!(show.contains("SUNMI-P2") && show.contains("<redacted"));
    assert!(!show.contains(&secret) && !list.contains(&secret));
    let o = posemu(home.path(), &["profiles", "new", "lab-2"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), saved);
    // the embedded sandbox provisions a user's own profile, so it activates too
    let o = posemu(
        home.path(),
        &[
            "activate",
            "--profile",
            "lab-2",
            "--auto-claim",
            "--time-warp",
            "1000",
        ],
    );
    assert!(o.status.success(), "{:?}", text(&o));
}

#[tokio::test]
async fn a_crash_mid_flow_resumes_from_saved_progress_on_the_next_run() {
    // the sandbox runs on a warped clock as fast as the device's (offsets cancel out)
    let sb = Sandbox::start(SandboxConfig {
        clock: std::sync::Arc::new(posemu_protocol::clock::WarpClock::new(1000)),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let path = home.path().to_path_buf();
    let url = sb.url();
    let (first, second) = tokio::task::spawn_blocking(move || {
        let run = |extra: &[&str]| {
            let mut args = vec![
                "activate",
                "--server",
                &url,
                "--auto-claim",
                "--time-warp",
                "1000",
            ];
            args.extend_from_slice(extra);
            posemu(&path, &args)
        };
        (run(&["--crash-at", "keys"]), run(&[]))
    })
    .await
    .unwrap();
    crashed_then_resumed_as_claimed(&first, &second);
}

/// `first` crashed before the keys (137), and `second` went on from the claim: no new code.
fn crashed_then_resumed_as_claimed(first: &Output, second: &Output) {
    let (out, _) = text(first);
    assert_eq!(first.status.code(), Some(137), "{out}");
    assert!(
        out.contains("✓ attest") && out.contains("simulated crash before keys"),
        "{out}"
    );
    let (out, _) = text(second);
    assert!(second.status.success(), "{out}");
    assert!(
        !out.contains("pairing code"),
        "resumed as claimed, no new code:\n{out}"
    );
    assert!(
        out.contains("✓ attest") && out.contains("ready for payments"),
        "{out}"
    );
}

/// The same against the embedded sandbox, which ends with each run: the new one knows the
/// device as claimed from its saved progress (`runtime::remember_device`), so no new code.
#[test]
fn a_crash_mid_flow_resumes_as_claimed_on_the_embedded_sandbox_too() {
    let home = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["activate", "--auto-claim", "--time-warp", "1000"];
        args.extend_from_slice(extra);
        posemu(home.path(), &args)
    };
    let first = run(&["--crash-at", "keys"]);
    let second = run(&[]);
    crashed_then_resumed_as_claimed(&first, &second);
}

/// 13: an interrupted run leaves a pending code; `--auto-claim` on the next run (a fresh
/// embedded sandbox that never saw that code) must claim the code that is current, once, and
/// not fail on the resumed one.
#[test]
fn auto_claim_after_an_interrupted_run_claims_the_current_code() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    for _ in 0..3 {
        let home = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_posemu"))
            .args(["activate"])
            .env("POSEMU_HOME", home.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // the code is saved before its line is printed
        assert!(lines.any(|l| l.unwrap().contains("✓ pairing code ")));
        child.kill().unwrap();
        child.wait().unwrap();

        let o = posemu(
            home.path(),
            &["activate", "--auto-claim", "--time-warp", "1000"],
        );
        let (out, err) = text(&o);
        assert!(o.status.success(), "{out}\n{err}");
        assert!(out.contains(", resumed"), "{out}");
        assert!(out.contains("— ready for payments"), "{out}");
        assert!(!out.contains("auto-claim failed"), "{out}");
    }
}

/// The `polled N×` counts of the waiting lines in `out`, in order.
fn poll_counts(out: &str) -> Vec<u32> {
    out.split(['\n', '\r'])
        .filter_map(|l| l.split("waiting for merchant (polled ").nth(1))
        .filter_map(|rest| rest.split('×').next()?.parse().ok())
        .collect()
}

/// 3: into a pipe, the waiting progress is plain lines that keep count: the first poll, then
/// every fifth (or on a change), each with the next poll and the code's time left; never a
/// line per poll, never a terminal escape.
#[test]
fn activate_into_a_pipe_keeps_the_poll_count_current() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_posemu"))
        .args(["activate", "--time-warp", "1000", "--code-ttl", "3600"])
        .env("POSEMU_HOME", home.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut waiting = Vec::new();
    let mut all = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        all.push_str(&line);
        all.push('\n');
        if line.contains("waiting for merchant") {
            waiting.push(line);
            if waiting.len() == 4 {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(waiting.len(), 4, "{all}");
    let counts = poll_counts(&all);
    assert_eq!(counts, [1, 5, 10, 15], "{all}");
    for l in &waiting {
        assert!(l.starts_with("… waiting for merchant (polled "), "{l}");
        assert!(l.contains("code pending"), "{l}");
        assert!(l.contains(" · code expires in "), "{l}");
        assert!(l.contains(" · next poll in "), "{l}");
    }
    assert!(!all.contains('\r') && !all.contains('\x1b'), "{all:?}");
}

/// 3: on a terminal, the waiting line is rewritten in place at every poll (`\r`, erase line),
/// so it counts each one.
#[test]
fn activate_on_a_terminal_rewrites_the_waiting_line_at_every_poll() {
    // `script` (util-linux) gives the command a pseudo-terminal and copies what it wrote
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to give posemu a terminal");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let cmd = format!(
        "timeout 3 {} activate --time-warp 1000 --code-ttl 3600",
        env!("CARGO_BIN_EXE_posemu")
    );
    let o = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("POSEMU_HOME", home.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    // the line is also redrawn between polls (its countdowns move): count each poll once
    let mut counts = poll_counts(&out);
    counts.dedup();
    assert!(counts.len() >= 20, "{out:?}");
    assert_eq!(counts[..5], [1, 2, 3, 4, 5], "{out:?}");
    assert!(counts.windows(2).all(|w| w[1] == w[0] + 1), "{counts:?}");
    // `script`'s terminal reports no size, taken as 80 columns: the short forms, all parts
    let line = Regex::new(
        r"\r\x1b\[2K… waiting for merchant \(polled 2×, code pending\) · expires \d+:\d\d · next in \d+ m?s",
    )
    .unwrap();
    assert!(line.is_match(&out), "{out:?}");
}

/// The `step_started` … `step_done`/`failed` pairs of a `--json` run, checked: every started
/// step ends in an event of the same step before the next one starts, and a step's `ms` is
/// exactly the gap between its two `t_ms`. Exactly, with no rounding slack: both come from the
/// same readings of the device's clock (a note's `t_ms` is the time of the machine step that
/// made it, and `ms` is the difference of two such times), so any gap means two clocks.
/// Answers the steps that completed.
pub(crate) fn check_step_times(out: &str) -> Vec<String> {
    let mut open: Option<(String, u64)> = None;
    let mut done = Vec::new();
    let mut last_t = 0;
    for line in out.lines() {
        let e: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}"));
        let t = e["t_ms"]
            .as_u64()
            .unwrap_or_else(|| panic!("no t_ms: {line}"));
        assert!(t >= last_t, "t_ms goes back: {line}\n{out}");
        last_t = t;
        let step = e["step"].as_str().unwrap_or_default().to_string();
        match e["event"].as_str().unwrap() {
            "step_started" => {
                assert!(open.is_none(), "{open:?} never ended before {line}\n{out}");
                open = Some((step, t));
            }
            "step_done" => {
                let (started, t0) = open.take().unwrap_or_else(|| panic!("{line}: not started"));
                assert_eq!(started, step, "{line}\n{out}");
                let ms = e["ms"].as_u64().unwrap();
                assert_eq!(ms, t - t0, "{step}: ms {ms}, t_ms gap {}\n{out}", t - t0);
                done.push(step);
            }
            "failed" => {
                let (started, _) = open.take().unwrap_or_else(|| panic!("{line}: not started"));
                assert_eq!(started, step, "{line}\n{out}");
            }
            _ => {}
        }
    }
    assert!(open.is_none(), "{open:?} never ended:\n{out}");
    done
}

/// 5: in `--json`, a step's `ms` agrees with the `t_ms` gap between its `step_started` and its
/// `step_done`, and every started step ends in an event, on a run that activates (time warped,
/// where two clocks differ the most) and on one that fails.
#[tokio::test]
async fn activate_json_step_ms_agrees_with_the_t_ms_gaps() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().to_path_buf();
    let o = tokio::task::spawn_blocking(move || {
        posemu(
            &path,
            &[
                "activate",
                "--auto-claim",
                "--json",
                "--fresh",
                "--time-warp",
                "1000",
            ],
        )
    })
    .await
    .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let done = check_step_times(&out);
    for step in ["bootstrap", "pairing-code", "attest", "keys", "activate"] {
        assert!(done.iter().any(|s| s == step), "{step} in {done:?}\n{out}");
    }

    // a failed step ends its start too
    let sb = Sandbox::start(SandboxConfig {
        profiles: vec![],
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let url = sb.url();
    let o = tokio::task::spawn_blocking(move || {
        posemu(home.path(), &["activate", "--server", &url, "--json"])
    })
    .await
    .unwrap();
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("\"event\":\"failed\""), "{out}");
    check_step_times(&out);
}
