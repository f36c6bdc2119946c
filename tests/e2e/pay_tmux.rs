//! End to end, issue "Payments" §4: the real `posemu` binary on a real terminal (tmux, at 80×24
//! and 120×40) sells. On the POS screen against its embedded sandbox, `c` claims the code (as
//! the merchant would), then a person types `1500`, presses Enter on the amount, on the tip
//! prompt if there is one and on the card screen, and sees APPROVED with EUR 15.00; OK opens
//! the receipt, which shows the amount and the approval. Launched again in the same home, the
//! terminal is ready at once and its first sale (20.00) is approved without pairing again.
//!
//! The device's timers run 10× faster (`--time-warp 10`: the first poll after the claim comes
//! in 0.3 s instead of 3 s); every wait is a bounded poll of the screen.

use std::time::Duration;

use crate::tmux_support::{big_word_on, free_port, Tmux};

const WAIT: Duration = Duration::from_secs(20);

fn sells_1500_and_shows_the_receipt(w: u16, h: u16) {
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::new(&format!("pay{w}"), "pos");
    let args = format!("--fresh --listen 127.0.0.1:{} --time-warp 10", free_port());
    tmux.start_posemu(home.path(), &args, w, h);
    tmux.wait_text("?code=", WAIT);
    tmux.keys(&["c"]);
    tmux.wait_text("Ready for payments", WAIT);

    tmux.keys(&["1", "5", "0", "0"]);
    tmux.wait_for("15.00 typed", WAIT, |s| {
        big_word_on(s, "15.00").then_some(())
    });
    tmux.keys(&["Enter"]);
    let next = tmux.wait_for("the tip prompt or the card screen", WAIT, |s| {
        ["Add a tip?", "Present card"]
            .into_iter()
            .find(|t| s.contains(t))
    });
    if next == "Add a tip?" {
        tmux.wait_text("No tip", WAIT);
        tmux.keys(&["Enter"]);
        tmux.wait_text("Present card", WAIT);
    }
    tmux.wait_text("4242", WAIT); // a test card, Visa 4242 first
    tmux.keys(&["Enter"]);

    // the whole outcome screen: a capture can catch a frame half drawn, so every part is
    // waited for, not asserted on the first capture that shows the big word
    let outcome = tmux.wait_for(
        "APPROVED with EUR 15.00, its auth code and OK receipt",
        WAIT,
        |s| {
            (big_word_on(s, "APPROVED")
                && s.contains("EUR 15.00")
                && s.contains("Auth code")
                && s.contains("OK receipt"))
            .then(|| s.to_string())
        },
    );
    assert!(!big_word_on(&outcome, "DECLINED"), "{w}x{h}:\n{outcome}");

    tmux.keys(&["Enter"]);
    tmux.wait_for(
        "the receipt with its TOTAL EUR 15.00, APPROVED",
        WAIT,
        |s| {
            let total = s
                .lines()
                .any(|l| l.contains("TOTAL") && l.contains("EUR 15.00"));
            (s.contains("MERCHANT COPY") && total && s.contains("APPROVED")).then_some(())
        },
    );

    assert_eq!(tmux.quit(), "0", "{w}x{h}: exit status");
    drop(tmux);

    // launched again: the embedded sandbox is a new one, the device comes back activated from
    // its saved progress, and its first sale fetches new keys and is approved, no pairing
    let tmux = Tmux::new(&format!("pay{w}again"), "pos");
    let args = format!("--listen 127.0.0.1:{} --time-warp 10", free_port());
    tmux.start_posemu(home.path(), &args, w, h);
    tmux.wait_text("Ready for payments", WAIT);
    tmux.keys(&["2", "0", "0", "0"]);
    tmux.wait_for("20.00 typed", WAIT, |s| {
        big_word_on(s, "20.00").then_some(())
    });
    tmux.keys(&["Enter"]);
    if tmux.wait_for("the tip prompt or the card screen", WAIT, |s| {
        ["Add a tip?", "Present card"]
            .into_iter()
            .find(|t| s.contains(t))
    }) == "Add a tip?"
    {
        tmux.keys(&["Enter"]);
        tmux.wait_text("Present card", WAIT);
    }
    tmux.keys(&["Enter"]);
    let outcome = tmux.wait_for("APPROVED with EUR 20.00", WAIT, |s| {
        (big_word_on(s, "APPROVED") && s.contains("EUR 20.00")).then(|| s.to_string())
    });
    assert!(
        !outcome.contains("Pair this terminal"),
        "{w}x{h}:\n{outcome}"
    );
    assert_eq!(tmux.quit(), "0", "{w}x{h}: exit status");
}

#[test]
fn typing_1500_and_enter_through_the_screens_approves_at_80x24() {
    sells_1500_and_shows_the_receipt(80, 24);
}

#[test]
fn typing_1500_and_enter_through_the_screens_approves_at_120x40() {
    sells_1500_and_shows_the_receipt(120, 40);
}
