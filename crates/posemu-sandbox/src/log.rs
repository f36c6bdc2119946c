//! The request log: one line per request, written by a thread of its own through a bounded
//! queue. A request never waits on the log: when the queue is full (the reader of stdout is
//! slow or gone) the line is dropped and counted, and stopping never waits on the writer.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// Lines waiting for the writer at most; past it, lines are dropped (and counted).
pub const LOG_QUEUE_LINES: usize = 4096;

/// Characters of a path or device id that a log line keeps (the rest is cut, marked `…`).
const LOG_FIELD_MAX_CHARS: usize = 64;

#[derive(Debug, Clone)]
pub struct RequestLogLine {
    pub method: String,
    pub path: String,
    pub device_id: Option<String>,
    /// 0 when the connection was dropped by a fault.
    pub status: u16,
    pub latency: Duration,
    pub trace_id: String,
    /// A payment request's string to sign as the sandbox built it to verify the signature
    /// (spec 7.2), so that a developer can compare it with their own. Never in a response.
    pub signed: Option<String>,
}

impl RequestLogLine {
    /// A field from the client as it may appear in a log line: control characters escaped,
    /// at most [`LOG_FIELD_MAX_CHARS`] characters.
    pub fn field(raw: &str) -> String {
        let mut out: String = raw
            .chars()
            .take(LOG_FIELD_MAX_CHARS)
            .flat_map(|c| {
                if c.is_control() {
                    c.escape_default().collect::<Vec<_>>()
                } else {
                    vec![c]
                }
            })
            .collect();
        if raw.chars().nth(LOG_FIELD_MAX_CHARS).is_some() {
            out.push('…');
        }
        out
    }
}

impl fmt::Display for RequestLogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if self.status == 0 {
            "drop".to_string()
        } else {
            self.status.to_string()
        };
        write!(
            f,
            "{:<6} {:<28} {:<12} {} {:>8.2}ms trace={}",
            self.method,
            self.path,
            self.device_id.as_deref().unwrap_or("-"),
            status,
            self.latency.as_secs_f64() * 1000.0,
            self.trace_id
        )?;
        match &self.signed {
            // Debug quoting escapes control characters and the newlines between the values
            Some(text) => write!(f, " signed={text:?}"),
            None => Ok(()),
        }
    }
}

/// The sending end of the request log, given to the sandbox in `SandboxConfig::request_log`.
#[derive(Clone)]
pub struct RequestLog {
    tx: SyncSender<RequestLogLine>,
    dropped: Arc<AtomicU64>,
}

impl RequestLog {
    /// Starts a writer thread that writes each line (and a newline) to `out`, with a queue of
    /// `capacity` lines. The thread ends when every `RequestLog` clone is dropped or a write
    /// fails; nobody ever joins it.
    pub fn spawn_writer(
        capacity: usize,
        mut out: impl Write + Send + 'static,
    ) -> std::io::Result<RequestLog> {
        let (log, rx) = RequestLog::channel(capacity);
        std::thread::Builder::new()
            .name("posemu-request-log".into())
            .spawn(move || {
                while let Ok(line) = rx.recv() {
                    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                        return;
                    }
                }
            })?;
        Ok(log)
    }

    /// A log whose lines arrive on `Receiver` as they are (embedding and tests), with a queue
    /// of `capacity` lines.
    pub fn channel(capacity: usize) -> (RequestLog, std::sync::mpsc::Receiver<RequestLogLine>) {
        let (tx, rx) = sync_channel::<RequestLogLine>(capacity);
        let log = RequestLog {
            tx,
            dropped: Arc::default(),
        };
        (log, rx)
    }

    /// Queues a line, never waiting: a full queue (or a writer that stopped) drops it.
    pub fn send(&self, line: RequestLogLine) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// How many lines were dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_from_clients_are_escaped_and_cut() {
        assert_eq!(RequestLogLine::field("POS-1\u{1b}[2J"), "POS-1\\u{1b}[2J");
        let long = "x".repeat(10_000);
        let f = RequestLogLine::field(&long);
        assert_eq!(f.chars().count(), LOG_FIELD_MAX_CHARS + 1);
        assert!(f.ends_with('…'));
    }

    /// A writer that never returns (a pipe nobody reads).
    struct Stuck;
    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            std::thread::park();
            Ok(0)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_writer_drops_and_counts_but_never_blocks() {
        let log = RequestLog::spawn_writer(8, Stuck).unwrap();
        let line = || RequestLogLine {
            method: "GET".into(),
            path: "/".into(),
            device_id: None,
            status: 200,
            latency: Duration::ZERO,
            trace_id: "t".into(),
            signed: None,
        };
        for _ in 0..1000 {
            log.send(line());
        }
        // One line in the writer's hands, 8 queued, the rest dropped.
        assert!((991..=992).contains(&log.dropped()), "{}", log.dropped());
    }
}
