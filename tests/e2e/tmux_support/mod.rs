//! Driving the real binary on a real terminal: a private tmux server whose screen the tests
//! read with `capture-pane`, as a person would. Shared by `tui_tmux.rs` and `demo_tmux.rs`.
#![allow(dead_code)] // each test file uses its own part

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A tmux server of its own (`-L socket`), killed when dropped; one session named `session`.
pub struct Tmux {
    pub socket: String,
    pub session: &'static str,
}

impl Tmux {
    pub fn new(name: &str, session: &'static str) -> Tmux {
        Tmux {
            socket: format!("posemu-{name}-{}", std::process::id()),
            session,
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run tmux ({e}): install it (apt-get install tmux; .ci/run does)")
            })
    }

    /// Starts `posemu ARGS` with `POSEMU_HOME=home` on a `width`×`height` terminal, from a shell
    /// that stays open afterwards (a dead pane no longer reports its cursor) and prints
    /// `posemu exited N`.
    pub fn start_posemu(&self, home: &Path, args: &str, width: u16, height: u16) {
        let cmd = format!(
            "env POSEMU_HOME={} {} {args}; echo \"posemu exited $?\"; sleep 600",
            shell(home),
            shell(Path::new(env!("CARGO_BIN_EXE_posemu")))
        );
        let (w, h) = (width.to_string(), height.to_string());
        let out = self.run(&[
            "new-session",
            "-d",
            "-x",
            &w,
            "-y",
            &h,
            "-s",
            self.session,
            &cmd,
        ]);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Presses `q` and answers posemu's exit status.
    pub fn quit(&self) -> String {
        self.run(&["send-keys", "-t", self.session, "q"]);
        self.wait_for("exit status", Duration::from_secs(10), |s| {
            s.lines()
                .find_map(|l| l.trim().strip_prefix("posemu exited "))
                .map(str::to_string)
        })
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", self.session]).stdout)
            .into()
    }

    /// A tmux format (`#{cursor_flag}`, …) of the session's pane.
    pub fn format(&self, f: &str) -> String {
        let out = self.run(&["display-message", "-p", "-t", self.session, f]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Polls the screen until `find` answers something; fails with the screen after `limit`.
    pub fn wait_for<T>(&self, what: &str, limit: Duration, find: impl Fn(&str) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if let Some(v) = find(&screen) {
                return v;
            }
            assert!(
                start.elapsed() < limit,
                "no {what} on the screen within {limit:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// `p` quoted for a POSIX shell.
pub fn shell(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}
