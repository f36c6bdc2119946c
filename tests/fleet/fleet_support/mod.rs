//! Shared helpers of the fleet tests: small, fast fleets (sub-second polls through the hidden
//! test flags, claims at once) run through the real binary or the library.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use posemu::fleet::Report;

pub fn posemu() -> Command {
    Command::new(env!("CARGO_BIN_EXE_posemu"))
}

/// `posemu fleet` headless with fast, deterministic settings, plus `extra`.
pub fn fleet(extra: &[&str]) -> Output {
    let mut c = posemu();
    c.args([
        "fleet",
        "--headless",
        "--ramp",
        "0",
        "--claim-after",
        "0",
        "--unsafe-fast-poll",
        "--seed",
        "7",
    ]);
    c.args(extra);
    c.output_within().expect("posemu runs")
}

/// The longest a `posemu` process of these tests may run (the slowest takes seconds alone; a
/// loaded machine in a full parallel run stretches that several times).
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(120);

/// `posemu::fleet::run` in-process, failing the test instead of waiting forever if the run
/// never ends (the in-process twin of [`OutputWithin`]).
pub async fn run_fleet(cfg: posemu::fleet::FleetConfig) -> posemu::fleet::RunResult {
    tokio::time::timeout(
        PROCESS_TIMEOUT,
        posemu::fleet::run(cfg, posemu::fleet::Ui::Quiet),
    )
    .await
    .unwrap_or_else(|_| panic!("the fleet run did not end within {PROCESS_TIMEOUT:?}"))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `Command::output` with a deadline: a process that hangs is killed and the test fails
/// with what it printed, instead of the whole suite waiting forever.
pub trait OutputWithin {
    fn output_within(&mut self) -> std::io::Result<Output>;
}

impl OutputWithin for Command {
    fn output_within(&mut self) -> std::io::Result<Output> {
        let mut child = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let drain = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = drain(
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn Read + Send>),
        );
        let err = drain(
            child
                .stderr
                .take()
                .map(|e| Box::new(e) as Box<dyn Read + Send>),
        );
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if started.elapsed() > PROCESS_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            // polling a child process, not waiting out a timer of the code under test
            std::thread::sleep(Duration::from_millis(10));
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        match status {
            Some(status) => Ok(Output {
                status,
                stdout,
                stderr,
            }),
            None => panic!(
                "{:?} did not end within {PROCESS_TIMEOUT:?}; killed.\n--- stdout\n{}\n--- stderr\n{}",
                self.get_args().collect::<Vec<_>>(),
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            ),
        }
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn report_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

pub fn load(p: &Path) -> Report {
    Report::load(p).unwrap_or_else(|e| panic!("{e}"))
}

/// Every device is in exactly one state, and the headline counts agree with the states.
pub fn assert_counts_add_up(r: &Report) {
    let d = &r.devices;
    assert_eq!(
        d.by_state.values().sum::<u64>(),
        d.total,
        "{:?}",
        d.by_state
    );
    assert_eq!(d.activated + d.failed + d.unsettled, d.total);
    assert_eq!(d.by_state["activated"], d.activated);
    let per_endpoint: u64 = r.endpoints.values().map(|e| e.requests).sum();
    assert_eq!(per_endpoint, r.requests);
    let errs: u64 = r.endpoints.values().map(|e| e.errors).sum();
    assert_eq!(errs, r.errors);
    assert_eq!(r.errors_by_code.values().sum::<u64>(), r.errors);
    for (name, e) in &r.endpoints {
        assert_eq!(e.latency.histogram_us.len(), e.requests, "{name}");
        assert_eq!(e.latency.percentiles.count, e.requests, "{name}");
    }
    assert_eq!(r.time_to_activate.histogram_us.len(), d.activated);
}

/// A `posemu sandbox` process on 127.0.0.1 port 0 (no fleet seed unless `args` give one, not
/// even from the environment), killed when dropped.
pub struct SandboxProcess {
    child: std::process::Child,
    pub url: String,
}

impl SandboxProcess {
    pub fn start(args: &[&str]) -> SandboxProcess {
        use std::io::{BufRead, BufReader};
        let mut child = posemu()
            .args(["sandbox", "--listen", "127.0.0.1:0", "--quiet"])
            .args(args)
            .env_remove("POSEMU_FLEET_SEED")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn posemu sandbox");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first
            .trim()
            .strip_prefix("posemu sandbox listening on ")
            .unwrap_or_else(|| panic!("first line: {first:?}"))
            .to_string();
        SandboxProcess { child, url }
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
