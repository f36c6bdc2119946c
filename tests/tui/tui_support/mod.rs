//! Drives the real POS screen model against an in-process sandbox on 127.0.0.1, with tokio's
//! clock paused: timers (polls, code expiry, ticks) fire in order as soon as the runtime is
//! idle, so nothing sleeps for real, and the loopback calls in between are answered as they
//! would be. Renders with ratatui's `TestBackend` and reads the screen back as text.

#![allow(dead_code)]

mod flows;
mod lag;
mod snap;
pub use flows::{code, dead_port, pairing, phase, ready_for_sales, sell, typed};
pub use lag::LagProxy;
pub use snap::{snap, snap_at, SIZES};

use std::sync::Arc;

use clap::Parser;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use posemu::cli::device_args::DeviceArgs;
use posemu::tui::exec::Opener;
use posemu::tui::theme::{QR_DARK, QR_LIGHT};
use posemu::tui::{App, Model, Msg, Theme};
use posemu_profile::{builtin_named, Profile};
use posemu_protocol::clock::ManualClock;
use posemu_runtime::{DeviceOptions, DeviceSession, Home, OpenDevice, OpenError, SessionOptions};
use posemu_sandbox::{Sandbox, SandboxConfig};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use ratatui::Terminal;

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    device: DeviceArgs,
}

/// The flags `posemu` would get with `args` on its command line.
pub fn flags(args: &[&str]) -> DeviceArgs {
    let mut all = vec!["posemu"];
    all.extend_from_slice(args);
    Flags::parse_from(all).device
}

pub struct Setup {
    pub profile: Profile,
    /// Start no sandbox; point the device at this URL.
    pub server: Option<String>,
    pub min_version: Option<String>,
    pub theme: Theme,
    pub size: (u16, u16),
    /// Put a proxy in front of the sandbox that holds every chunk this long in real time (the
    /// socket waits a loaded machine has, which tokio's paused clock cannot see).
    pub lag: Option<std::time::Duration>,
    /// Put the proxy in front of the sandbox and have it close the connection of the first
    /// request containing this text, unanswered.
    pub drop_once: Option<&'static str>,
    /// Open in this home (with what it has saved) instead of a new one.
    pub home: Option<tempfile::TempDir>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            profile: builtin_named("pax-a920").unwrap(),
            server: None,
            min_version: None,
            theme: Theme { color: true },
            size: (120, 40),
            lag: None,
            drop_once: None,
            home: None,
        }
    }
}

/// The longest real time one step holds the paused clock for an answer on the wire (a call
/// that waits on a timer of its own, such as a sandbox fault's delay, goes on after it).
pub const HOLD_MAX: std::time::Duration = std::time::Duration::from_secs(2);
/// The longest a step waits (paused time) for anything to happen.
pub const IDLE_MAX: std::time::Duration = std::time::Duration::from_secs(3600);

pub struct Harness {
    pub app: App,
    pub clock: ManualClock,
    pub url: String,
    pub home: Home,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub async fn start(mut setup: Setup) -> Harness {
        let dir = setup
            .home
            .take()
            .unwrap_or_else(|| tempfile::tempdir().unwrap());
        let home = Home::at(dir.path());
        let clock = ManualClock::at_spec_example();
        let (sandbox, url) = match &setup.server {
            Some(url) => (None, url.clone()),
            None => {
                let mut cfg = SandboxConfig {
                    clock: Arc::new(clock.clone()),
                    seed: Some(4),
                    ..SandboxConfig::default()
                };
                if let Some(v) = &setup.min_version {
                    cfg.min_version = v.clone();
                }
                let sb = Sandbox::start(cfg).await.unwrap();
                let url = match (setup.lag, setup.drop_once) {
                    (None, None) => sb.url(),
                    (lag, drop) => LagProxy::start(sb.addr(), lag.unwrap_or_default(), drop).url(),
                };
                (Some(sb), url)
            }
        };
        let mut opts = SessionOptions::new(&url);
        if sandbox.is_some() {
            opts.progress_key = Some("embedded-sandbox".into());
        }
        let session =
            DeviceSession::open(&home, setup.profile, &opts, Arc::new(clock.clone())).unwrap();
        let open = OpenDevice {
            session,
            sandbox,
            server: url.clone(),
            clock: Arc::new(clock.clone()),
            notice: None,
        };
        let mut app = App::new(flags(&[]).options(), Arc::new(clock.clone()), setup.theme);
        app.exec.home = Some(home.clone());
        app.exec.export_dir = Some(dir.path().join("exports"));
        app.model.set_size(setup.size.0, setup.size.1);
        app.attach(open);
        Harness {
            app,
            clock,
            url,
            home,
            dir,
        }
    }

    pub fn model(&self) -> &Model {
        &self.app.model
    }

    /// Handles the next message (a device event, an exchange, a tick, a sandbox answer).
    ///
    /// While the app waits on real I/O (a call on the wire), tokio's paused clock is held:
    /// otherwise, whenever the runtime is idle waiting on a socket (a loaded machine delivers
    /// loopback bytes late), the clock jumps to the next timer, and a request's 15 s timeout
    /// fires on an answer that is a millisecond away. Timers pass only when nothing is on the
    /// wire. The hold is a blocking task (tokio does not auto-advance while one runs), ended
    /// by the next message or after [`HOLD_MAX`] of real time.
    ///
    /// A screen that waits for a key with nothing under way fails after [`IDLE_MAX`] (of
    /// paused time: at once) instead of hanging the test.
    pub async fn step(&mut self) {
        let app = &mut self.app;
        let next = async {
            if app.exec.in_flight() == 0 {
                return app.next().await;
            }
            let (done, held) = std::sync::mpsc::channel::<()>();
            let hold = tokio::task::spawn_blocking(move || {
                let _ = held.recv_timeout(HOLD_MAX);
            });
            let msg = app.next().await;
            let _ = done.send(());
            let _ = hold.await;
            msg
        };
        match tokio::time::timeout(IDLE_MAX, next).await {
            Ok(msg) => {
                self.app.handle(msg);
            }
            Err(_) => panic!(
                "nothing happened for {IDLE_MAX:?}: the screen waits for a key:\n{}",
                self.screen()
            ),
        }
    }

    /// Steps until `done` holds; fails with the screen if it never does.
    pub async fn until(&mut self, what: &str, done: impl Fn(&Model) -> bool) {
        for _ in 0..5_000 {
            if done(&self.app.model) {
                return;
            }
            self.step().await;
        }
        panic!("never {what}; the screen:\n{}", self.screen());
    }

    /// Steps until the screen shows `text`.
    pub async fn until_screen(&mut self, text: &str) {
        for _ in 0..5_000 {
            if self.screen().contains(text) {
                return;
            }
            self.step().await;
        }
        panic!("the screen never showed {text:?}:\n{}", self.screen());
    }

    pub fn press(&mut self, code: KeyCode) {
        self.app
            .handle(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    }

    pub fn char(&mut self, c: char) {
        self.press(KeyCode::Char(c));
    }

    /// The screen at the model's size, as text (the QR code's modules blanked).
    pub fn screen(&mut self) -> String {
        let (w, h) = self.app.model.size();
        self.render(w, h)
    }

    /// The screen at `w` × `h`, as text.
    pub fn render(&mut self, w: u16, h: u16) -> String {
        let old = self.app.model.size();
        self.app.model.set_size(w, h);
        let buf = draw(&self.app.model, w, h);
        self.app.model.set_size(old.0, old.1);
        buffer_text(&buf)
    }
}

/// Opens like `posemu_runtime::open_device` (a new embedded sandbox unless a server), in the
/// test's home.
pub fn opener(home: Home, clock: ManualClock) -> Opener {
    Arc::new(move |args: DeviceOptions| {
        let (home, clock) = (home.clone(), clock.clone());
        Box::pin(async move {
            let profile = home
                .find_profile(&args.profile)
                .map_err(OpenError::Profile)?;
            let (sandbox, url) = match &args.server {
                Some(u) => (None, u.clone()),
                None => {
                    let sb = Sandbox::start(SandboxConfig {
                        clock: Arc::new(clock.clone()),
                        ..SandboxConfig::default()
                    })
                    .await?;
                    let url = sb.url();
                    (Some(sb), url)
                }
            };
            let opts = SessionOptions::new(&url);
            let session = DeviceSession::open(&home, profile, &opts, Arc::new(clock.clone()))?;
            Ok(OpenDevice {
                session,
                sandbox,
                server: url,
                clock: Arc::new(clock),
                notice: None,
            })
        })
    })
}

pub fn draw(model: &Model, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| posemu::tui::view::view(model, f)).unwrap();
    t.backend().buffer().clone()
}

/// The buffer as lines of text. QR modules (pure black/white cells) become `▒`: the code
/// encodes the sandbox's port, which differs on every run.
pub fn buffer_text(buf: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        let mut skip = 0;
        for x in 0..buf.area.width {
            let cell = &buf[(x, y)];
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let qr = [QR_DARK, QR_LIGHT].contains(&cell.fg)
                && [QR_DARK, QR_LIGHT].contains(&cell.bg)
                && cell.fg != Color::Reset;
            if qr {
                line.push('▒');
            } else {
                let s = cell.symbol();
                line.push_str(s);
                skip = unicode_width(s).saturating_sub(1);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn unicode_width(s: &str) -> usize {
    use ratatui::text::Span;
    Span::raw(s).width().max(1)
}
