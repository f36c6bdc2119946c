//! End to end: the real `posemu demo --auto-claim 1s` binary on a real terminal (tmux, 80×24,
//! the smallest screen the banner is made for). With no key pressed it reaches the ready
//! screen; the banner's portal URL is the running sandbox's (the page answers there); `q`
//! quits with exit 0.
//!
//! Needs tmux (`.ci/run` installs it); without it this test fails and says so. It waits in
//! real time for the real binary (its first poll comes 3 s after the code), bounded by timeouts.

use std::time::Duration;

use crate::tmux_support::Tmux;

/// The portal URL on the banner (the first line).
fn banner_url(screen: &str) -> Option<String> {
    let top = screen.lines().next()?;
    let start = top.find("http://127.0.0.1:")?;
    let end = start + top[start..].find("/portal")? + "/portal".len();
    Some(top[start..end].to_string())
}

#[tokio::test]
async fn the_real_demo_claims_by_itself_and_shows_the_portal() {
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::new("demo-test", "demo");
    tmux.start_posemu(
        home.path(),
        "demo --auto-claim 1s --listen 127.0.0.1:0",
        80,
        24,
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

    assert_eq!(tmux.quit(), "0", "exit status");
    let after = tmux.screen();
    assert!(
        after.contains(&format!("merchant portal {portal}")),
        "the portal URL is left on the main screen:\n{after}"
    );
}
