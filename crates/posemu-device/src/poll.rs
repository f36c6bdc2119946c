//! The poll policy of spec 4.3 as pure arithmetic: interval bounds, `slow_down` after 429,
//! and exponential backoff with full jitter. Random values come in as arguments.

use std::time::Duration;

use posemu_protocol::rules::{
    BACKOFF_BASE_MS, BACKOFF_CAP_MS, POLL_DEFAULT_SECS, POLL_MAX_SECS, POLL_MIN_SECS,
    SLOW_DOWN_SECS,
};

pub const POLL_MIN: Duration = Duration::from_secs(POLL_MIN_SECS);
pub const POLL_MAX: Duration = Duration::from_secs(POLL_MAX_SECS);
pub const POLL_DEFAULT: Duration = Duration::from_secs(POLL_DEFAULT_SECS);
pub const SLOW_DOWN: Duration = Duration::from_secs(SLOW_DOWN_SECS);

/// [POSEMU] Clamps on numbers a server sends (a hostile or broken server must not make the
/// device wait forever, spin, or expire what it was just given). Past them, the value is cut
/// to the maximum; the README's Reliability section lists them.
///
/// The longest wait a `Retry-After` (seconds or HTTP date) can impose.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// The most `slow_down` 429 answers can add to the poll interval (12 × 5 s).
pub const MAX_SLOW_DOWN: Duration = Duration::from_secs(60);
/// The longest pairing-code lifetime (`expires_in_sec`) the device believes.
pub const MAX_CODE_LIFETIME: Duration = Duration::from_secs(3600);
/// The longest attestation-token lifetime (`expires_in_sec`) the device believes.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// `secs` from a server as a duration of at most `max`.
pub fn server_secs(secs: u64, max: Duration) -> Duration {
    Duration::from_secs(secs).min(max)
}

/// `now_ms` plus `d`, saturating: a deadline that cannot wrap around to "already passed".
pub fn deadline(now_ms: u64, d: Duration) -> u64 {
    now_ms.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Clamps a requested poll interval to the documented 3–5 s.
pub fn clamp_interval(d: Duration) -> Duration {
    d.clamp(POLL_MIN, POLL_MAX)
}

/// The ceiling of the backoff window after `attempt` consecutive failures (1-based):
/// 1 s, 2 s, 4 s … capped at 30 s.
pub fn backoff_ceiling(attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    Duration::from_millis(BACKOFF_BASE_MS.saturating_mul(1 << exp).min(BACKOFF_CAP_MS))
}

/// Full jitter (AWS architecture blog): a uniform delay in `[0, ceiling]`, where `random` is any
/// `u64` drawn uniformly by the caller.
pub fn backoff_delay(attempt: u32, random: u64) -> Duration {
    let ceiling = backoff_ceiling(attempt).as_millis() as u64;
    Duration::from_millis(random % (ceiling + 1))
}

/// A uniform value in `[lo, hi]` from a random `u64` (used to spread fleets over 3–5 s).
pub fn uniform_between(lo: Duration, hi: Duration, random: u64) -> Duration {
    let (lo_ms, hi_ms) = (lo.as_millis() as u64, hi.as_millis() as u64);
    if hi_ms <= lo_ms {
        return lo;
    }
    Duration::from_millis(lo_ms + random % (hi_ms - lo_ms + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_clamped_to_three_to_five_seconds() {
        assert_eq!(clamp_interval(Duration::from_secs(1)), POLL_MIN);
        assert_eq!(
            clamp_interval(Duration::from_secs(4)),
            Duration::from_secs(4)
        );
        assert_eq!(clamp_interval(Duration::from_secs(60)), POLL_MAX);
    }

    #[test]
    fn backoff_doubles_from_one_second_and_caps_at_thirty() {
        let secs: Vec<u64> = (1..=8).map(|a| backoff_ceiling(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff_ceiling(1000).as_secs(), 30);
    }

    #[test]
    fn full_jitter_stays_within_the_window_and_reaches_both_ends() {
        assert_eq!(backoff_delay(3, 0), Duration::ZERO);
        assert_eq!(backoff_delay(3, 4000), Duration::from_secs(4));
        assert_eq!(backoff_delay(3, 4001), Duration::ZERO);
        for r in [1u64, 77, 12_345, u64::MAX] {
            assert!(backoff_delay(6, r) <= Duration::from_secs(30));
        }
    }

    #[test]
    fn uniform_between_covers_the_range() {
        let (lo, hi) = (Duration::from_secs(3), Duration::from_secs(5));
        assert_eq!(uniform_between(lo, hi, 0), lo);
        assert_eq!(uniform_between(lo, hi, 2000), hi);
        assert_eq!(uniform_between(hi, lo, 9), hi);
    }
}
