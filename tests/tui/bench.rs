//! How long one frame of the POS screen takes to render at 120×40: the pairing screen (big
//! code, QR code, countdown) beside the debug side with its exchange list and details, the
//! busiest screen there is. Run in release mode for the figure the README quotes:
//!
//! ```sh
//! cargo test --release --test tui_bench -- --ignored --nocapture
//! ```
//!
//! (`#[ignore]`d so the normal test run, in debug mode, does not time anything.)

use std::time::{Duration, Instant};

use crate::tui_support::*;
use posemu_device::Phase;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const FRAMES: usize = 2_000;

#[tokio::test(start_paused = true)]
#[ignore]
async fn one_frame_at_120x40_renders_within_a_millisecond() {
    let mut h = Harness::start(Setup::default()).await;
    h.until("pairing with a few polls", |m| {
        m.device()
            .is_some_and(|d| d.phase == Phase::Pairing && d.polls >= 5)
    })
    .await;
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let model = h.model();
    let mut times = Vec::with_capacity(FRAMES);
    for i in 0..FRAMES + 100 {
        // force a full redraw each time, as after a resize: the worst case
        terminal.clear().unwrap();
        let start = Instant::now();
        terminal
            .draw(|f| posemu::tui::view::view(model, f))
            .unwrap();
        if i >= 100 {
            times.push(start.elapsed());
        }
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    let p50 = times[times.len() / 2];
    let p99 = times[times.len() * 99 / 100];
    let max = times[times.len() - 1];
    println!(
        "frame at 120x40 (pairing + debug side), {FRAMES} frames: mean {:.3} ms, p50 {:.3} ms, \
         p99 {:.3} ms, max {:.3} ms",
        ms(mean),
        ms(p50),
        ms(p99),
        ms(max)
    );
    if cfg!(debug_assertions) {
        println!("(debug build: run with --release for the real figure)");
    } else {
        assert!(
            p99 <= Duration::from_millis(1),
            "p99 {:.3} ms is above 1 ms",
            ms(p99)
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
