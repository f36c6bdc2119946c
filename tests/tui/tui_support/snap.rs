//! The one `snap()` of every POS screen snapshot, and the masks for what differs between
//! runs (ports, trace ids, latencies, times, tokens).
//!
//! A mask KEEPS WIDTHS: the volatile value becomes a label padded or cut to exactly the width it
//! had, so a snapshot shows the real layout (every border where it is drawn) and an overflow
//! shows. A value whose own width varies (a latency `0 ms` or `12 ms`, a date) is matched with
//! the padding that follows it up to the panel's border (`pad`), so the whole match keeps one
//! width and only the padding gives.

use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::Harness;

/// The sizes every screen is snapshotted at: compact and roomy.
pub const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

/// Snapshots the screen at every size of [`SIZES`] as `{name}_{w}x{h}`.
pub fn snap(h: &mut Harness, name: &str) {
    for (w, ht) in SIZES {
        snap_at(h, name, w, ht);
    }
}

/// Snapshots the screen at `w` × `ht` as `{name}_{w}x{ht}`.
pub fn snap_at(h: &mut Harness, name: &str, w: u16, ht: u16) {
    let text = mask(&h.render(w, ht));
    insta::with_settings!({
        snapshot_path => "../snapshots",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(format!("{name}_{w}x{ht}"), text);
    });
}

/// What differs between runs. `v` (or the whole match) is replaced by the label; `pad`, when
/// present, is resized so the whole match keeps its width.
const MASKS: &[(&str, &str)] = &[
    (r"127\.0\.0\.1:(?<v>\d+)", "PORT"),
    // a URL wrapped in the details: the port after the break
    (
        r"(?m)^│?[^│\n]*││ ?[\d.]*:(?<v>\d{2,5})/(?:pos|sandbox)/",
        "PORT",
    ),
    (r"\b(?<v>[0-9a-f]{32})\b", "TRACE_ID"),
    // the end of a trace id peeking out beside a popup
    (r"(?m)│(?<v>[0-9a-f]{1,31}) *│$", "…"),
    (r"\b(?<v>[0-9a-f]{6,})…", "HEX"),
    (
        r"(?m)(?<v>\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?: UTC)?)(?<mid>[^│\n]*?)(?<pad> *)(?:│|$)",
        "DATETIME",
    ),
    (
        r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT",
        "HTTP-DATE",
    ),
    (r"│  (?<v>\d{2}:\d{2}) ", "HH:MM"),
    // the exchange list's latency column, right-aligned against the border
    (r"(?m)(?<v> +\d+\.\d ms)│", "N ms"),
    // the details' status line: the latency right-aligned in a fixed width (its spaces too)
    (
        r"(?m)(?<v> {2,}\d+\.\d ms)(?<mid>[^│\n]*?)(?<pad> *)(?:│|$)",
        "        N ms",
    ),
    // latencies in running text: the step times
    (
        r"(?m)(?<v>\d+(?:\.\d+)? ms)(?<mid>[^│\n]*?)(?<pad> *)(?:│|$)",
        "N ms",
    ),
    // backoff delays are drawn with full jitter
    (
        r"(?m)retry \d+ in (?<v>\d+:\d{2})(?<mid>[^│\n]*?)(?<pad> *)(?:│|$)",
        "M:SS",
    ),
    (
        r"(?m)(?<v>ks-[0-9a-f]+)(?<mid>[^│\n]*?)(?<pad> *)(?:│|$)",
        "ks-ID",
    ),
    // timeline times follow backoff jitter and loopback scheduling
    (r"(?<v> *\d+\.\ds) [·✓⚠✕]", "T.Ts"),
    (r"(?<v>att_[A-Za-z0-9]+)", "att_TOKEN"),
    // Idempotency-Keys are drawn from the device's random seed
    (r"Idempotency-Key (?<v>[0-9a-f][0-9a-f-]*)", "UUID"),
    (r"(?<v>[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏])", "⠿"),
];

static COMPILED: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    MASKS
        .iter()
        .map(|(re, label)| (Regex::new(re).expect("a mask's regex"), *label))
        .collect()
});

/// `text` with every volatile value masked, each line keeping its width.
pub fn mask(text: &str) -> String {
    let mut out = text.to_string();
    for (re, label) in COMPILED.iter() {
        out = re
            .replace_all(&out, |c: &Captures| masked(c, label))
            .into_owned();
    }
    out
}

fn masked(c: &Captures, label: &str) -> String {
    let whole = c.get(0).expect("a match");
    let v = c.name("v").unwrap_or(whole);
    let at = |i: usize| i - whole.start();
    let s = whole.as_str();
    let (before, value) = (&s[..at(v.start())], v.as_str());
    let Some(pad) = c.name("pad") else {
        // the label takes the value's width; right-aligned if the value was
        let fitted = fit(label, width(value), value.starts_with(' '));
        return format!("{before}{fitted}{}", &s[at(v.end())..]);
    };
    let (mid, after) = (&s[at(v.end())..at(pad.start())], &s[at(pad.end())..]);
    let fixed = width(before) + width(mid) + width(after);
    let room = width(s).saturating_sub(fixed);
    let label = fit(label, width(label).min(room), false);
    let spaces = " ".repeat(room - width(&label));
    format!("{before}{label}{mid}{spaces}{after}")
}

/// `label` cut or padded with spaces to `w` columns.
fn fit(label: &str, w: usize, right: bool) -> String {
    let mut cut = String::new();
    for ch in label.chars() {
        if width(&cut) + width(&ch.to_string()) > w {
            break;
        }
        cut.push(ch);
    }
    let fill = " ".repeat(w - width(&cut));
    if right {
        fill + &cut
    } else {
        cut + &fill
    }
}

fn width(s: &str) -> usize {
    ratatui::text::Span::raw(s).width()
}

#[test]
fn masks_keep_every_line_width() {
    let lines = [
        "│   1 POST   /pos/bootstrap     200     12.3 ms│",
        "│ ✓ bootstrap 1234 ms         │",
        "│ → 200 OK 7.5 ms  HTTP/1.1 status    │",
        "│ → 200 OK       7.5 ms  HTTP/1.1 status    │",
        "│ sent 2026-12-04T17:50:28.123Z     │",
        "│ http://127.0.0.1:43210/portal │",
        "│    12.3s ✓ key set ks-0a1b2c installed │",
    ];
    for line in lines {
        let m = mask(line);
        assert_eq!(width(&m), width(line), "{line:?} became {m:?}");
        assert_ne!(m, line, "something was masked in {line:?}");
    }
    // a longer value gives only its padding: the border stays where it was
    assert_eq!(
        mask("│ ✓ bootstrap 1234 ms         │"),
        mask("│ ✓ bootstrap 5 ms            │")
    );
    // a right-aligned latency: its leading spaces go with it
    assert_eq!(
        mask("│ → 200 OK      12.4 ms  HTTP/1.1  keys    │"),
        mask("│ → 200 OK       0.4 ms  HTTP/1.1  keys    │")
    );
}
