//! Wall-clock time, injected wherever behaviour depends on it (the sandbox's expiries and
//! timestamp window, the device runtime's `X-Timestamp`). Tests use [`ManualClock`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            millis: Arc::new(AtomicI64::new(start.timestamp_millis())),
        }
    }

    /// Starts at 2025-12-13T14:25:30Z, the spec's example time.
    pub fn at_spec_example() -> Self {
        Self::new(
            DateTime::parse_from_rfc3339("2025-12-13T14:25:30Z")
                .expect("valid")
                .with_timezone(&Utc),
        )
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.millis
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    pub fn set(&self, to: DateTime<Utc>) {
        self.millis.store(to.timestamp_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.millis.load(Ordering::SeqCst)).unwrap_or_default()
    }
}

/// A wall clock that runs `factor` times faster than real time from when it was made, so a
/// device and a sandbox sharing it live through a 300 s code lifetime in 0.3 s (factor 1000).
#[derive(Debug, Clone)]
pub struct WarpClock {
    start: DateTime<Utc>,
    real: std::time::Instant,
    factor: u32,
}

impl WarpClock {
    pub fn new(factor: u32) -> Self {
        WarpClock {
            start: Utc::now(),
            real: std::time::Instant::now(),
            factor: factor.max(1),
        }
    }
}

impl Clock for WarpClock {
    fn now(&self) -> DateTime<Utc> {
        let ms = self.real.elapsed().as_millis() as i64 * self.factor as i64;
        self.start + chrono::Duration::milliseconds(ms)
    }
}

/// RFC 3339 UTC with `Z` and whole seconds, as the spec writes every time (4.1).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 time into UTC.
pub fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at_spec_example();
        assert_eq!(rfc3339(c.now()), "2025-12-13T14:25:30Z");
        c.clone().advance(std::time::Duration::from_secs(90));
        assert_eq!(rfc3339(c.now()), "2025-12-13T14:27:00Z");
        assert!(parse_rfc3339("2025-12-13T14:25:30+01:00").is_some());
        assert!(parse_rfc3339("yesterday").is_none());
    }
}
