//! The process's own cost: peak resident memory and CPU time (getrusage), for the report.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Peak resident set size, bytes.
    pub peak_rss_bytes: u64,
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
}

#[cfg(unix)]
fn rusage(who: libc::c_int) -> Usage {
    // SAFETY: getrusage writes into the zeroed struct we own; no pointers are kept.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return Usage::default();
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    // Linux reports ru_maxrss in KiB, macOS in bytes.
    let scale = if cfg!(target_os = "macos") { 1 } else { 1024 };
    Usage {
        peak_rss_bytes: (ru.ru_maxrss as u64).saturating_mul(scale),
        cpu_seconds: secs(ru.ru_utime) + secs(ru.ru_stime),
    }
}

/// This process so far.
pub fn own() -> Usage {
    #[cfg(unix)]
    {
        rusage(libc::RUSAGE_SELF)
    }
    #[cfg(not(unix))]
    {
        Usage::default()
    }
}

/// Children that have been waited for (the `--sandbox-process` sandbox, once it exited).
pub fn children() -> Usage {
    #[cfg(unix)]
    {
        rusage(libc::RUSAGE_CHILDREN)
    }
    #[cfg(not(unix))]
    {
        Usage::default()
    }
}

/// Resident memory now, bytes (Linux: /proc/self/statm), for the per-device estimate.
pub fn current_rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * if page > 0 { page as u64 } else { 4096 })
}

/// Gives the heap's free pages back to the system (glibc `malloc_trim`), e.g. once the
/// activation storm's buffers are freed and a fleet of charging terminals settles down.
/// Elsewhere a no-op.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas; it takes and keeps no pointers of ours.
    unsafe {
        libc::malloc_trim(0);
    }
}
