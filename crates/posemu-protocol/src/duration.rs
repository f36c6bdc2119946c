//! Durations as people read and type them: one formatter for every screen and report, one
//! parser for every flag.

use std::time::Duration;

/// How long something took or will take: `12 ms`, `1.4 s`, `5 s`, `45 s`, `2:05`.
pub fn took(d: Duration) -> String {
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
        countdown(d)
    }
}

/// `4:59`, rounding up so a countdown reaches 0:00 only when it is over.
pub fn countdown(d: Duration) -> String {
    let s = d.as_millis().div_ceil(1000) as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// `500ms`, `3s`, `4.5s`, `10m`, `1h`.
pub fn parse(s: &str) -> Result<Duration, String> {
    let ms = parse_signed(s)?;
    u64::try_from(ms)
        .map(Duration::from_millis)
        .map_err(|_| format!("{s:?} is negative"))
}

/// Like [`parse`] with an optional sign; answers milliseconds.
pub fn parse_signed(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let (sign, t) = match t.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, t.strip_prefix('+').unwrap_or(t)),
    };
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit {
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return Err(format!("{s:?} is not a duration like 500ms, 3s, 10m or 1h")),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 3s, 10m or 1h"))?;
    let ms = sign * n * scale;
    if !ms.is_finite() || ms.abs() > 365.0 * 86_400_000.0 {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(ms.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_terminal_shows_them() {
        assert_eq!(took(Duration::from_millis(12)), "12 ms");
        assert_eq!(took(Duration::from_millis(1430)), "1.4 s");
        assert_eq!(took(Duration::from_secs(5)), "5 s");
        assert_eq!(took(Duration::from_secs(45)), "45 s");
        assert_eq!(took(Duration::from_secs(125)), "2:05");
        assert_eq!(countdown(Duration::from_millis(299_001)), "5:00");
        assert_eq!(countdown(Duration::from_secs(65)), "1:05");
        assert_eq!(countdown(Duration::ZERO), "0:00");
    }

    #[test]
    fn flags_parse_with_units_and_signs() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("4.5s"), Ok(Duration::from_millis(4500)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_signed("-90s"), Ok(-90_000));
        assert!(parse("-1s").is_err());
        assert!(parse("3").is_err());
        assert!(parse("1e400s").is_err());
    }
}
