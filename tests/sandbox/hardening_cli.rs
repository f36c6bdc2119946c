//! `posemu sandbox` as a process under a careless harness: a stdout pipe that nobody reads,
//! too few file descriptors, clients sending huge ids.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::sandbox_common::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_posemu");
const PATIENCE: Duration = Duration::from_secs(20);

/// The real binary on a free port; its first stdout line is read, nothing after it.
/// `nofile` lowers RLIMIT_NOFILE in the child.
async fn spawn(args: &[&str], nofile: Option<u64>) -> (Child, String, impl Sized) {
    let mut cmd = Command::new(BIN);
    cmd.arg("sandbox")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(n) = nofile {
        // SAFETY: only setrlimit (async-signal-safe) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().expect("spawn posemu");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("first line in time")
        .unwrap()
        .expect("a first line");
    let url = first
        .strip_prefix("posemu sandbox listening on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_string();
    // The pipe stays open and unread for the child's whole life.
    (child, url, lines)
}

/// SIGTERM; the child must exit 0 in time. Returns what it wrote on stderr.
async fn terminate_promptly(mut child: Child) -> String {
    let pid = child.id().expect("running") as libc::pid_t;
    // SAFETY: a signal to our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("stops after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = tokio::time::timeout(
            PATIENCE,
            tokio::io::AsyncReadExt::read_to_string(&mut e, &mut err),
        )
        .await;
    }
    err
}

#[tokio::test]
async fn a_stdout_pipe_nobody_reads_never_stops_the_server() {
    let (child, url, _unread) = spawn(&[], None).await;
    let http = client();
    let big_id = format!("POS-{}", "A".repeat(4000));
    let long_path = format!("/nope/{}", "p".repeat(4000));
    // Far more log than the pipe (64 KiB) and the queue (4096 lines) hold, 8 at a time.
    let started = Instant::now();
    let mut answered = 0;
    for round in 0..800 {
        let mut batch = Vec::new();
        for i in 0..8 {
            let r = if (round + i) % 2 == 0 {
                http.get(format!("{url}/pos/status"))
                    .header("X-Device-Id", &big_id)
                    .header("User-Agent", DEMO_UA)
                    .header("X-Client-Type", "pos")
            } else {
                http.get(format!("{url}{long_path}"))
            };
            batch.push(tokio::time::timeout(Duration::from_secs(10), r.send()));
        }
        for r in futures_util::future::join_all(batch).await {
            let r = r
                .unwrap_or_else(|_| panic!("request {answered} unanswered for 10 s"))
                .unwrap();
            assert!(r.status() == 400 || r.status() == 404, "{}", r.status());
            answered += 1;
        }
    }
    assert_eq!(answered, 6400);
    assert!(started.elapsed() < Duration::from_secs(120));
    let err = terminate_promptly(child).await;
    assert!(
        err.contains("request log line(s) dropped: stdout was not read fast enough"),
        "{err}"
    );
}

/// utime + stime of a process in clock ticks (/proc/PID/stat fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces: count fields after its closing parenthesis.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[tokio::test]
async fn a_full_fd_table_does_not_spin_the_accept_loop() {
    let (child, url, _unread) = spawn(&["--quiet"], Some(48)).await;
    let pid = child.id().unwrap();
    let addr = url.strip_prefix("http://").unwrap().to_string();
    // Open connections until the server runs out of descriptors, then keep them open: every
    // further connection waits in the listen backlog and `accept` fails with EMFILE.
    let mut held = Vec::new();
    for _ in 0..80 {
        match tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(&addr),
        )
        .await
        {
            Ok(Ok(s)) => held.push(s),
            _ => break,
        }
    }
    assert!(held.len() > 48, "only {} connections", held.len());
    let before = cpu_ticks(pid);
    let window = Duration::from_secs(2);
    tokio::time::sleep(window).await;
    let used = cpu_ticks(pid) - before;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    // A spinning loop burns the whole window (≈ 2 s of CPU); backing off uses almost none.
    assert!(
        used * 5 < 2 * hz,
        "{used} ticks of CPU in 2 s with a full fd table (hz {hz})"
    );
    drop(held);
    let err = terminate_promptly(child).await;
    assert!(err.is_empty(), "--quiet drops nothing: {err}");
}

#[test]
fn the_connection_cap_and_allowed_hosts_are_flags() {
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("sandbox")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--max-connections", "0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--max-connections") && err.contains("from 1 to 1000000"),
        "{err}"
    );
    let out = run(&["--allowed-host", "evil host"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--allowed-host") && err.contains("not a host name"),
        "{err}"
    );
}
