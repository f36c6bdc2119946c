//! The POS screen: one emulated Viopay terminal on a ratatui screen, walking the activation
//! flow live, with a debug side showing every HTTP exchange.
//!
//! The Elm architecture (DESIGN.md): [`Model`] (the device machine and what the screen shows),
//! [`Msg`] (keys, ticks, device events, exchange-log entries, sandbox answers, opened devices),
//! [`update`] and [`view::view`]. `update` only changes the model: everything that touches the
//! world (device calls and timers, saves, sandbox helpers, opening a device, reading profiles,
//! HAR export, the clipboard, delayed kiosk moves) is a [`Cmd`], plain data, carried out in
//! one place, the [`exec::Executor`], whose results come back as messages on one channel.
//! [`run`] draws only when a message changed something, and ticks only while a spinner or
//! countdown is on screen.

pub mod cmd;
pub mod debug_lines;
pub mod exec;
pub mod keys;
pub mod model;
pub mod qr;
pub mod theme;
pub mod view;

use std::collections::VecDeque;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures_util::StreamExt;
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::Terminal;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use cmd::Cmd;
pub use exec::Executor;
pub use model::{update, Demo, DemoMode, Model, Msg};
pub use theme::Theme;

use posemu_protocol::clock::{Clock, SystemClock};
use posemu_runtime::{DeviceOptions, Home, OpenDevice};

/// The model, the executor and their message channel: what the real loop and the tests both
/// drive.
pub struct App {
    pub model: Model,
    pub exec: Executor,
    rx: mpsc::UnboundedReceiver<Msg>,
    tick_at: Option<Instant>,
}

impl App {
    pub fn new(options: DeviceOptions, clock: Arc<dyn Clock>, theme: Theme) -> App {
        let (tx, rx) = mpsc::unbounded_channel();
        App {
            model: Model::new(options, clock, theme),
            exec: Executor::new(tx),
            rx,
            tick_at: None,
        }
    }

    /// Makes `open` the running device and powers it on.
    pub fn attach(&mut self, open: OpenDevice) {
        let msg = self.exec.attach(None, open);
        self.handle(msg);
    }

    pub fn sender(&self) -> mpsc::UnboundedSender<Msg> {
        self.exec.sender()
    }

    /// The next message: from the channel, or a tick when one is due.
    pub async fn next(&mut self) -> Msg {
        match self.model.next_wake() {
            None => self.tick_at = None,
            Some(every) => {
                let now = Instant::now();
                let at = *self.tick_at.get_or_insert(now + every);
                // a faster pace (a step began) takes effect at once
                self.tick_at = Some(at.min(now + every));
            }
        }
        let msg = match self.tick_at {
            Some(at) => tokio::select! {
                m = self.rx.recv() => m,
                _ = tokio::time::sleep_until(at) => Some(Msg::Tick),
            },
            None => self.rx.recv().await,
        };
        if matches!(msg, Some(Msg::Tick)) {
            self.tick_at = None;
        }
        msg.unwrap_or(Msg::Quit)
    }

    /// A message already waiting, if any (to drain a burst before drawing once).
    pub fn try_next(&mut self) -> Option<Msg> {
        self.rx.try_recv().ok()
    }

    /// Runs `update` and has the executor carry out its commands, feeding what they answer at
    /// once back to `update`; answers what needs the terminal ([`Cmd::Quit`],
    /// [`Cmd::Clipboard`]).
    pub fn handle(&mut self, msg: Msg) -> Vec<Cmd> {
        let mut out = Vec::new();
        let mut queue = VecDeque::from([self.exec.receive(msg)]);
        while let Some(msg) = queue.pop_front() {
            for cmd in update(&mut self.model, msg) {
                match cmd {
                    Cmd::Quit | Cmd::Clipboard(_) => out.push(cmd),
                    other => queue.extend(self.exec.run(other)),
                }
            }
        }
        out
    }
}

/// `posemu` with no subcommand: open the device, then the screen until `q`.
pub async fn run(options: DeviceOptions) -> ExitCode {
    let _log = init_logging();
    // Open before taking the terminal, so a bad flag is a plain message on stderr.
    let open = match posemu_runtime::open_device(&options).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("posemu: {e}");
            return ExitCode::from(2);
        }
    };
    run_screen(options, open, None).await
}

/// `posemu demo`: the screen for the device the demo opened (its embedded sandbox on the
/// banner), with the demo's kiosk moves. Logging is the caller's to start ([`init_logging`]).
pub async fn run_demo(options: DeviceOptions, open: OpenDevice, demo: DemoMode) -> ExitCode {
    run_screen(options, open, Some(demo)).await
}

async fn run_screen(options: DeviceOptions, open: OpenDevice, demo: Option<DemoMode>) -> ExitCode {
    let mut app = App::new(options, Arc::new(SystemClock), Theme::from_env());
    app.model.set_demo(demo);
    let mut terminal = match enter() {
        Ok(t) => t,
        Err(e) => {
            leave();
            eprintln!("posemu: cannot take the terminal: {e}");
            return ExitCode::from(1);
        }
    };
    if let Ok(size) = terminal.size() {
        app.model.set_size(size.width, size.height);
    }
    app.attach(open);
    spawn_input(app.sender());
    spawn_signals(app.sender());
    let result = run_loop(&mut terminal, &mut app).await;
    leave();
    let _ = terminal.show_cursor();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("screen: {e}");
            eprintln!("posemu: the screen failed: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run_loop<B: Backend + Write>(
    terminal: &mut Terminal<B>,
    app: &mut App,
) -> Result<(), String> {
    let mut dirty = true;
    loop {
        if dirty {
            terminal
                .draw(|f| view::view(&app.model, f))
                .map_err(|e| e.to_string())?;
            dirty = false;
        }
        let mut msg = Some(app.next().await);
        // Drain a burst (a call's answer, its notes, its exchange) and draw once after it.
        let mut handled = 0;
        while let Some(m) = msg.take() {
            for cmd in app.handle(m) {
                match cmd {
                    Cmd::Quit => return Ok(()),
                    Cmd::Clipboard(text) => {
                        let seq = posemu_client::export::osc52(&text);
                        let w = terminal.backend_mut();
                        let _ = w.write_all(seq.as_bytes()).and_then(|_| Write::flush(w));
                    }
                    _ => {}
                }
            }
            dirty = true;
            handled += 1;
            if handled < 256 {
                msg = app.try_next();
            }
        }
        if app.model.quit() {
            return Ok(());
        }
    }
}

fn enter() -> std::io::Result<Terminal<CrosstermBackend<std::io::Stdout>>> {
    // A panic anywhere (even in a background task) restores the terminal, reports, and exits:
    // the screen would be garbage otherwise.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        leave();
        previous(info);
        std::process::exit(101);
    }));
    crossterm::terminal::enable_raw_mode()?;
    crossterm::execute!(std::io::stdout(), crossterm::terminal::EnterAlternateScreen)?;
    Terminal::new(CrosstermBackend::new(std::io::stdout()))
}

/// Gives the terminal back as it was: cooked mode, main screen, cursor shown.
fn leave() {
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = crossterm::execute!(
        std::io::stdout(),
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

fn spawn_input(tx: mpsc::UnboundedSender<Msg>) {
    tokio::spawn(async move {
        let mut events = EventStream::new();
        while let Some(ev) = events.next().await {
            let msg = match ev {
                Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => Msg::Key(k),
                Ok(Event::Resize(w, h)) => Msg::Resize(w, h),
                Ok(_) => continue,
                Err(e) => {
                    tracing::error!("terminal input: {e}");
                    Msg::Quit
                }
            };
            if tx.send(msg).is_err() {
                break;
            }
        }
    });
}

fn spawn_signals(tx: mpsc::UnboundedSender<Msg>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = hup.recv() => {}
        }
        let _ = tx.send(Msg::Quit);
    });
    #[cfg(not(unix))]
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(Msg::Quit);
        }
    });
}

/// Logs go to `{data}/logs/posemu.log` (the screen owns the terminal); `POSEMU_LOG` sets the
/// filter (default `info`). Without a writable log directory, nothing is logged.
pub fn init_logging() -> Option<()> {
    let dir = Home::discover().ok()?.logs_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("posemu.log"))
        .ok()?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("POSEMU_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init()
        .ok()
}
