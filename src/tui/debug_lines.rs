//! One exchange in full, as styled lines for the details panel: request line and headers,
//! pretty-printed bodies, the attestation signing string, decrypted envelope plaintexts, the
//! answer and its trace id. Built once when the selection changes, not on every frame.
//! Everything here is already redacted by the client's exchange log.

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::theme::Theme;
use posemu_client::exchange::pretty_json;
use posemu_client::{Captured, Exchange};

/// Longest line kept: hex ciphertexts run to tens of kilobytes on one line.
const MAX_LINE_CHARS: usize = 240;
/// Lines kept per body.
const MAX_BODY_LINES: usize = 400;

pub fn detail_lines(e: &Exchange, theme: Theme) -> Vec<Line<'static>> {
    let head = theme.accent();
    let key = theme.dim();
    let mut out: Vec<Line<'static>> = Vec::new();
    let status_style = match e.status {
        Some(s) if s < 300 => theme.good_text(),
        Some(s) if s < 500 => theme.warn_text(),
        _ => theme.bad_text(),
    };
    out.push(Line::from(vec![
        Span::styled(format!("{} ", e.method), head),
        Span::raw(clip(&e.url)),
    ]));
    // the latency right-aligned in a fixed width: a slow answer moves nothing after it
    out.push(Line::from(vec![
        Span::styled("→ ", key),
        Span::styled(e.status_line(), status_style),
        Span::styled(
            format!(
                " {:>8.1} ms  {}  {}",
                e.latency.as_secs_f64() * 1000.0,
                e.http_version,
                e.step
            ),
            key,
        ),
    ]));
    if let Some(t) = &e.trace_id {
        out.push(kv("trace id", t, key));
    }
    out.push(kv(
        "sent",
        &e.started_at.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
        key,
    ));
    if let Some(err) = &e.error {
        out.push(Line::from(vec![
            Span::styled("error ", key),
            Span::styled(clip(err), theme.bad_text()),
        ]));
    }

    section(&mut out, "Request headers", head);
    headers(&mut out, &e.request_headers, key);
    if let Some(s) = &e.signing_string {
        section(&mut out, "Signing string (HMAC-SHA256, v1)", head);
        for l in s.split('\n') {
            out.push(Line::from(Span::raw(format!("  {}", clip(l)))));
        }
    }
    if let Some(h) = &e.body_sha256 {
        out.push(kv("  body sha256", h, key));
    }
    if let Some(b) = &e.request_plaintext {
        section(&mut out, "Request plaintext (sealed under the MSK)", head);
        body(&mut out, b, key);
    }
    if let Some(b) = &e.request_body {
        section(&mut out, "Request body", head);
        body(&mut out, b, key);
    }
    if e.status.is_some() {
        section(&mut out, "Response headers", head);
        headers(&mut out, &e.response_headers, key);
    }
    if let Some(b) = &e.response_plaintext {
        section(&mut out, "Response plaintext (decrypted envelope)", head);
        body(&mut out, b, key);
    }
    if let Some(b) = &e.response_body {
        section(&mut out, "Response body", head);
        body(&mut out, b, key);
    }
    out
}

fn kv(k: &str, v: &str, key: Style) -> Line<'static> {
    Line::from(vec![Span::styled(format!("{k} "), key), Span::raw(clip(v))])
}

fn section(out: &mut Vec<Line<'static>>, title: &str, style: Style) {
    out.push(Line::default());
    out.push(Line::from(Span::styled(title.to_string(), style)));
}

fn headers(out: &mut Vec<Line<'static>>, hs: &[(String, String)], key: Style) {
    if hs.is_empty() {
        out.push(Line::from(Span::styled("  (none)", key)));
    }
    for (n, v) in hs {
        out.push(Line::from(vec![
            Span::styled(format!("  {n}: "), key),
            Span::raw(clip(v)),
        ]));
    }
}

fn body(out: &mut Vec<Line<'static>>, b: &Captured, key: Style) {
    if b.text.is_empty() {
        out.push(Line::from(Span::styled("  (empty)", key)));
        return;
    }
    let pretty = if b.truncated {
        None
    } else {
        pretty_json(&b.text)
    };
    let text = pretty.as_deref().unwrap_or(&b.text);
    let mut lines = text.lines();
    for l in lines.by_ref().take(MAX_BODY_LINES) {
        out.push(Line::from(Span::raw(format!("  {}", clip(l)))));
    }
    let rest = lines.count();
    if rest > 0 {
        out.push(Line::from(Span::styled(
            format!("  … {rest} more lines (export HAR with e for everything)"),
            key,
        )));
    }
    if b.truncated {
        let digest = b
            .sha256
            .as_deref()
            .map(|d| format!(", sha256 {d}"))
            .unwrap_or_default();
        out.push(Line::from(Span::styled(
            format!("  … {} bytes in all{digest}", b.bytes),
            key,
        )));
    }
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_LINE_CHARS) {
        Some((i, _)) => format!("{}… ({} chars)", &s[..i], s.chars().count()),
        None => s.to_string(),
    }
}
