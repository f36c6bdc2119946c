//! End to end: the real `posemu demo --auto-claim 1s` binary on a real terminal (tmux, 80×24,
//! the smallest screen the banner is made for). With no key pressed it reaches the ready
//! screen; the banner's portal URL is the running sandbox's (the page answers there); `q`
//! quits with exit 0.
//!
//! Needs tmux (`.ci/run` installs it); without it this test fails and says so. It waits in
//! real time for the real binary (its first poll comes 3 s after the code), bounded by timeouts.

use std::path::Path;
use std::time::Duration;

mod tmux_support;
use tmux_support::{shell, Tmux};

/// The portal URL on the banner (the first line).
fn banner_url(screen: &str) -> Option<String> {
    let top = screen.lines().next()?;
    let start = top.find("http://127.0.0.1:")?;
    let end = start + top[start..].find("/portal")? + "/portal".len();
    Some(top[start..end].to_string())
}

#[tokio::test]
async fn the_real_demo_claims_by_itself_and_shows_the_portal() {
    let bin = env!("CARGO_BIN_EXE_posemu");
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::new("demo-test", "demo");
    let cmd = format!(
        "env POSEMU_HOME={} {} demo --auto-claim 1s --listen 127.0.0.1:0; \
         echo \"posemu exited $?\"; sleep 600",
        shell(home.path()),
        shell(Path::new(bin))
    );
    let out = tmux.run(&[
        "new-session",
        "-d",
        "-x",
        "80",
        "-y",
        "24",
        "-s",
        "demo",
        &cmd,
    ]);
    assert!(
        out.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let portal = tmux.wait_for("portal banner", Duration::from_secs(30), banner_url);
    assert!(
        tmux.screen().contains("demo-merchant / demo-secret"),
        "{}",
        tmux.screen()
    );
    tmux.wait_for("ready screen", Duration::from_secs(30), |s| {
        s.contains("Ready for payments").then_some(())
    });
    let screen = tmux.screen();
    assert_eq!(
        banner_url(&screen).as_deref(),
        Some(portal.as_str()),
        "the banner stays:\n{screen}"
    );
    assert!(
        screen.contains("Demo Merchant") && screen.contains("TID-"),
        "{screen}"
    );

    // the merchant's page is really there
    let resp = reqwest::get(&portal).await.expect("the sandbox answers");
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("<html") || page.contains("<!doctype"),
        "{page}"
    );

    tmux.run(&["send-keys", "-t", "demo", "q"]);
    let status = tmux.wait_for("exit status", Duration::from_secs(10), |s| {
        s.lines()
            .find_map(|l| l.trim().strip_prefix("posemu exited "))
            .map(str::to_string)
    });
    assert_eq!(status, "0", "exit status");
    let after = tmux.screen();
    assert!(
        after.contains(&format!("merchant portal {portal}")),
        "the portal URL is left on the main screen:\n{after}"
    );
}
