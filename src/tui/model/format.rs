//! Words and numbers as the screen shows them.

use std::time::Duration;

/// `12 ms`, `1.4 s`, `2:05`.
pub fn fmt_took(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) && ms < 120_000 {
        format!("{} s", ms / 1000)
    } else if ms < 10_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else if ms < 120_000 {
        format!("{} s", d.as_secs())
    } else {
        fmt_mmss(d)
    }
}

/// `4:59`, rounding up so a countdown reaches 0:00 only when it is over.
pub fn fmt_mmss(d: Duration) -> String {
    let s = d.as_millis().div_ceil(1000) as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

pub(super) fn status_word(s: posemu_protocol::wire::PairingCodeStatus) -> &'static str {
    use posemu_protocol::wire::PairingCodeStatus as P;
    match s {
        P::None => "none",
        P::Pending => "pending",
        P::Used => "used",
        P::Expired => "expired",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_terminal_shows_them() {
        assert_eq!(fmt_took(Duration::from_millis(12)), "12 ms");
        assert_eq!(fmt_took(Duration::from_millis(1430)), "1.4 s");
        assert_eq!(fmt_took(Duration::from_secs(5)), "5 s");
        assert_eq!(fmt_took(Duration::from_secs(45)), "45 s");
        assert_eq!(fmt_mmss(Duration::from_millis(299_001)), "5:00");
        assert_eq!(fmt_mmss(Duration::from_secs(65)), "1:05");
        assert_eq!(fmt_mmss(Duration::ZERO), "0:00");
    }
}
