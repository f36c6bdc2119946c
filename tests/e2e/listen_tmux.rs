//! End to end, "What users hit" item 2: the POS screen's embedded sandbox stays where it was
//! said to be. The real binary on a real terminal (tmux, 80×24 and 120×40): the portal URL on
//! the pairing screen is the `--listen` address; after `p` (another profile) it is the same URL
//! and that sandbox serves the new device (claimed there, it activates); when the port is
//! taken, a notice on screen says so and names the port it fell back to.
//!
//! Tests pick a free port with `--listen` rather than the stable default 127.0.0.1:8765, so
//! parallel tests (and a person's demo) do not collide; the default itself is checked by the
//! unit tests of `src/cli/device_args.rs`. The device's timers run 10× faster
//! (`--time-warp 10`) so the claim is seen by the next poll in 0.3 s.

use std::time::Duration;

use crate::tmux_support::{free_port, Tmux};

const WAIT: Duration = Duration::from_secs(20);

/// `http://127.0.0.1:PORT` and the code, from the portal link of the pairing screen (at 80
/// columns the `?code=` part is on the next line).
fn portal_link(screen: &str) -> Option<(String, String)> {
    let lines: Vec<&str> = screen.lines().collect();
    let (i, line) = lines
        .iter()
        .enumerate()
        .find(|(_, l)| l.contains("/portal") && l.contains("http://127.0.0.1:"))?;
    let start = line.find("http://127.0.0.1:")?;
    let end = start + line[start..].find("/portal")?;
    let url = line[start..end].to_string();
    let rest = [line[end..].to_string(), lines.get(i + 1)?.to_string()].concat();
    let code: String = rest.split("?code=").nth(1)?.chars().take(6).collect();
    (code.len() == 6 && code.chars().all(|c| c.is_ascii_alphanumeric())).then_some((url, code))
}

async fn the_url_stays_across_a_profile_switch(w: u16, h: u16) {
    let port = free_port();
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::new(&format!("listen{w}"), "pos");
    let args = format!("--fresh --listen 127.0.0.1:{port} --time-warp 10");
    tmux.start_posemu(home.path(), &args, w, h);

    let (url, code) = tmux.wait_for("pairing link", WAIT, portal_link);
    assert_eq!(url, format!("http://127.0.0.1:{port}"), "{w}x{h}");
    assert!(
        !tmux.screen().contains("is busy"),
        "{w}x{h}:\n{}",
        tmux.screen()
    );

    // another profile: the second of the list (verifone-v400c, POS-3C7B19E4)
    tmux.keys(&["p"]);
    tmux.wait_text("Device profile", WAIT);
    tmux.keys(&["Down", "Enter"]);
    // (the new device's own code: a capture may catch a frame half drawn, the new title
    // over the old link, so wait for the new code)
    let (url2, code2) = tmux.wait_for("the new device's pairing link", WAIT, |s| {
        s.contains("VERIFONE V400C")
            .then(|| portal_link(s))
            .flatten()
            .filter(|(_, c)| *c != code)
    });
    assert_eq!(url2, url, "{w}x{h}: the portal URL moved");

    // the sandbox at that URL is the one the new device talks to
    let page = reqwest::get(format!("{url}/portal?code={code2}"))
        .await
        .expect("the sandbox answers at the URL on screen");
    assert_eq!(page.status(), 200);
    let claim = reqwest::Client::new()
        .post(format!("{url}/sandbox/devices/POS-3C7B19E4/claim"))
        .send()
        .await
        .unwrap();
    assert_eq!(claim.status(), 200, "{w}x{h}");
    let body: serde_json::Value = claim.json().await.unwrap();
    assert_eq!(body["pairing_code"], code2.as_str(), "{w}x{h}");
    tmux.wait_text("Ready for payments", WAIT);

    assert_eq!(tmux.quit(), "0", "{w}x{h}");
}

fn a_busy_port_falls_back_and_says_where(w: u16, h: u16) {
    // the port is taken while posemu starts
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::new(&format!("busy{w}"), "pos");
    tmux.start_posemu(
        home.path(),
        &format!("--fresh --listen 127.0.0.1:{port}"),
        w,
        h,
    );

    let notice = format!("Port {port} is busy: the merchant portal is at http://127.0.0.1:");
    let (fallback, screen) = tmux.wait_for("the fallback notice", WAIT, |s| {
        let line = s.lines().find(|l| l.contains(&notice))?;
        let rest = &line[line.find(&notice)? + notice.len()..];
        let port: u16 = rest.split('/').next()?.parse().ok()?;
        Some((port, s.to_string()))
    });
    assert_ne!(fallback, port, "{w}x{h}:\n{screen}");
    let (url, _) = tmux.wait_for("pairing link", WAIT, portal_link);
    assert_eq!(
        url,
        format!("http://127.0.0.1:{fallback}"),
        "{w}x{h}: the link is the fallback's"
    );
    assert_eq!(tmux.quit(), "0", "{w}x{h}");
    drop(held);
}

#[tokio::test]
async fn the_portal_url_is_the_listen_address_and_stays_after_p_at_80x24() {
    the_url_stays_across_a_profile_switch(80, 24).await;
}

#[tokio::test]
async fn the_portal_url_is_the_listen_address_and_stays_after_p_at_120x40() {
    the_url_stays_across_a_profile_switch(120, 40).await;
}

#[test]
fn a_busy_port_falls_back_and_the_screen_says_to_which_at_80x24() {
    a_busy_port_falls_back_and_says_where(80, 24);
}

#[test]
fn a_busy_port_falls_back_and_the_screen_says_to_which_at_120x40() {
    a_busy_port_falls_back_and_says_where(120, 40);
}

/// Without `--listen`, the POS screen's sandbox is at the stable 127.0.0.1:8765; if something
/// holds that port (another posemu, a parallel test), the screen says so and where it went
/// instead; never a silent random port.
#[test]
fn without_listen_the_pos_screen_takes_the_stable_port_or_says_why_not() {
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::new("listen-default", "pos");
    tmux.start_posemu(home.path(), "--fresh", 80, 24);
    let (url, screen) = tmux.wait_for("pairing link", WAIT, |s| {
        portal_link(s).map(|(url, _)| (url, s.to_string()))
    });
    if url != "http://127.0.0.1:8765" {
        assert!(
            screen.contains(&format!(
                "Port 8765 is busy: the merchant portal is at {url}/portal"
            )),
            "{screen}"
        );
    }
    assert_eq!(tmux.quit(), "0");
}
