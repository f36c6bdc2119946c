//! End to end: the real `posemu` binary on a real terminal (tmux, 120×40). It reads the screen
//! with `capture-pane` like a person would, finds the pairing code and the embedded sandbox's
//! URL on it, claims the code through the sandbox API from outside, sees the ready screen, quits
//! with `q` and checks that the terminal was given back (main screen, cursor shown, exit 0).
//!
//! Needs tmux (`.ci/run` installs it); without it this test fails and says so. This test waits
//! in real time for the real binary (its poll is 3 s), bounded by timeouts.

use std::time::Duration;

use crate::tmux_support::Tmux;

const DEVICE: &str = "POS-8F3A2C91";

/// `http://127.0.0.1:PORT` and the code, from the portal link on the pairing screen.
fn portal_link(screen: &str) -> Option<(String, String)> {
    let line = screen.lines().find(|l| l.contains("/portal?code="))?;
    let end = line.find("/portal?code=")?;
    let start = line[..end].rfind("http://")?;
    let url = line[start..end].to_string();
    let code: String = line[end + "/portal?code=".len()..]
        .chars()
        .take(6)
        .collect();
    (code.len() == 6 && code.chars().all(|c| c.is_ascii_alphanumeric())).then_some((url, code))
}

#[tokio::test]
async fn the_real_binary_pairs_activates_and_gives_the_terminal_back() {
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::new("test", "pos");
    tmux.start_posemu(home.path(), "--fresh", 120, 40);

    let (url, code) = tmux.wait_for("pairing code", Duration::from_secs(30), portal_link);
    // waited for, not asserted on one capture: a capture can catch a frame half drawn
    tmux.wait_text("Pair this terminal", Duration::from_secs(5));
    tmux.wait_text("Waiting for merchant", Duration::from_secs(5));
    assert_eq!(
        tmux.format("#{alternate_on}"),
        "1",
        "the screen runs on the alternate screen"
    );

    // the merchant's side, from outside the process
    let resp = reqwest::Client::new()
        .post(format!("{url}/sandbox/devices/{DEVICE}/claim"))
        .send()
        .await
        .expect("the embedded sandbox answers");
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["pairing_code"], code.as_str());

    tmux.wait_for(
        "ready screen with the merchant and terminal id",
        Duration::from_secs(30),
        |s| {
            (s.contains("Ready for payments") && s.contains("Demo Merchant") && s.contains("TID-"))
                .then_some(())
        },
    );

    assert_eq!(tmux.quit(), "0", "exit status");
    assert_eq!(
        tmux.format("#{alternate_on}"),
        "0",
        "back on the main screen"
    );
    assert_eq!(
        tmux.format("#{cursor_flag}"),
        "1",
        "the cursor is shown again"
    );
    let after = tmux.screen();
    assert!(
        !after.contains("Ready for payments"),
        "the POS screen is gone from the terminal:\n{after}"
    );
    // the progress was saved: reopening would resume as ready
    let state = home.path().join("data/state");
    assert!(std::fs::read_dir(&state).unwrap().count() >= 1);
}

/// A short message after a long one leaves nothing of the long one (nor of what it covers) on
/// its line, at 80×24 and 120×40.
#[tokio::test]
async fn a_short_message_after_a_long_one_leaves_no_leftovers() {
    for (w, h) in [(80, 24), (120, 40)] {
        let home = tempfile::tempdir().unwrap();
        let tmux = Tmux::new(&format!("msg{w}"), "pos");
        tmux.start_posemu(home.path(), "--fresh", w, h);
        // at 80 columns the link breaks before its query
        tmux.wait_for("pairing code", Duration::from_secs(30), |s| {
            s.contains("?code=").then_some(())
        });
        tmux.run(&["send-keys", "-t", tmux.session, "x"]);
        tmux.wait_for("the long message", Duration::from_secs(10), |s| {
            s.contains("the terminal will notice at its").then_some(())
        });
        tmux.run(&["send-keys", "-t", tmux.session, "r"]);
        let line = tmux.wait_for("the short message", Duration::from_secs(10), |s| {
            s.lines()
                .find(|l| l.contains("Restarted from scratch"))
                .map(str::to_string)
        });
        let rest = &line[line.find("Restarted from scratch").unwrap() + 22..];
        assert!(
            rest.trim().is_empty(),
            "{w}x{h}: leftovers after the message: {line:?}\n{}",
            tmux.screen()
        );
        let screen = tmux.screen();
        assert!(
            !screen.contains("scratchor") && !screen.contains("pollting"),
            "{w}x{h}:\n{screen}"
        );
        assert_eq!(tmux.quit(), "0");
    }
}
