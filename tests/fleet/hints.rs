//! A fleet whose devices all fail for a reason the user can fix says how.

use crate::fleet_support::*;

/// 8: against a `posemu sandbox` that was started without the fleet's seed, every device
/// fails at bootstrap with 404; the summary says the server must know the seed (or
/// `--devices-file`), as `activate` hints.
#[test]
fn a_fleet_against_an_unseeded_sandbox_says_the_server_needs_the_seed() {
    let sandbox = SandboxProcess::start(&[]);
    let out = fleet(&["--devices", "5", "--server", &sandbox.url]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("failed ×5: bootstrap: HTTP 404 4004 Device not found"),
        "{stdout}"
    );
    let hint = stdout
        .lines()
        .find(|l| l.starts_with("  hint: "))
        .unwrap_or_else(|| panic!("no hint in:\n{stdout}"));
    for want in [
        "posemu sandbox --fleet-seed",
        "--devices-file",
        "fleet seed",
    ] {
        assert!(hint.contains(want), "{want:?} missing from {hint:?}");
    }

    // a fleet that works has no hint
    let seeded = SandboxProcess::start(&["--fleet-seed", "hint-seed"]);
    let out = fleet(&[
        "--devices",
        "2",
        "--server",
        &seeded.url,
        "--fleet-seed",
        "hint-seed",
        "--poll",
        "100ms-200ms",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("hint:"), "{}", text(&out));
}
