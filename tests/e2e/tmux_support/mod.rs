//! Driving the real binary on a real terminal: a private tmux server whose screen the tests
//! read with `capture-pane`, as a person would. Shared by the `*_tmux.rs` tests.
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

    /// Presses `keys` one after the other (tmux key names: `Enter`, `Down`, `Tab`, `1`, …).
    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            let out = self.run(&["send-keys", "-t", self.session, k]);
            assert!(out.status.success(), "send-keys {k}: {out:?}");
        }
    }

    /// Waits until `text` is on the screen; answers the screen.
    pub fn wait_text(&self, text: &str, limit: Duration) -> String {
        self.wait_for(&format!("{text:?}"), limit, |s| {
            s.contains(text).then(|| s.to_string())
        })
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", self.session]).stdout)
            .into()
    }

    /// The screen with the lines that scrolled off its top (the main screen's history).
    pub fn screen_and_history(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-S", "-", "-t", self.session]);
        String::from_utf8_lossy(&out.stdout).into()
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

/// A port on 127.0.0.1 that was free a moment ago (the OS's pick), for `--listen`: tests
/// never take the stable default 127.0.0.1:8765, which a person's demo may be using.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Whether `word` stands on `screen` in big letters, as the POS screen draws its headlines
/// (tui-big-text, in any of the sizes it uses): each row of the letters, drawn here the same
/// way, on consecutive lines of the screen at the same column.
pub fn big_word_on(screen: &str, word: &str) -> bool {
    use ratatui::buffer::Buffer;
    use ratatui::layout::Rect;
    use ratatui::text::Line;
    use ratatui::widgets::Widget;
    use tui_big_text::{BigText, PixelSize};

    let lines: Vec<Vec<char>> = screen.lines().map(|l| l.chars().collect()).collect();
    let n = word.chars().count() as u16;
    [PixelSize::Full, PixelSize::HalfWidth, PixelSize::Quadrant]
        .into_iter()
        .any(|size| {
            let area = Rect::new(0, 0, n * 8, 8);
            let mut buf = Buffer::empty(area);
            BigText::builder()
                .pixel_size(size)
                .lines(vec![Line::from(word.to_string())])
                .build()
                .render(area, &mut buf);
            let mut rows: Vec<Vec<char>> = (0..area.height)
                .map(|y| {
                    (0..area.width)
                        .map(|x| buf[(x, y)].symbol().chars().next().unwrap_or(' '))
                        .collect()
                })
                .collect();
            let blank = |r: &Vec<char>| r.iter().all(|c| *c == ' ');
            while rows.last().is_some_and(blank) {
                rows.pop();
            }
            while rows.first().is_some_and(blank) {
                rows.remove(0);
            }
            // blank columns on the left, common to all rows
            let left = rows
                .iter()
                .filter_map(|r| r.iter().position(|c| *c != ' '))
                .min()
                .unwrap_or(0);
            rows.iter_mut().for_each(|r| {
                r.drain(..left);
            });
            let width = rows
                .iter()
                .filter_map(|r| r.iter().rposition(|c| *c != ' '))
                .max()
                .map_or(0, |w| w + 1);
            rows.iter_mut().for_each(|r| r.truncate(width));
            if rows.is_empty() || width == 0 {
                return false;
            }
            (0..lines.len().saturating_sub(rows.len() - 1)).any(|top| {
                let first = &lines[top];
                (0..first.len().saturating_sub(width - 1)).any(|col| {
                    rows.iter().enumerate().all(|(i, row)| {
                        lines[top + i].get(col..col + width) == Some(row.as_slice())
                    })
                })
            })
        })
}
