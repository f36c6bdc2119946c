//! Strings that came from outside (a server, a flag) on their way to a person or a file: the one
//! control-character escaper, and the one URL credential stripper.

use std::borrow::Cow;
use std::fmt::Write;

/// `s` with every control character (C0, DEL, C1; `\n` and `\t` too) and bidi override
/// (U+202A–U+202E, U+2066–U+2069) written as a visible
/// escape (`\e` for ESC, `\u{9b}` …), so that text a server chose cannot move the cursor,
/// clear the screen, set the clipboard (OSC 52) or fake a line of output. Borrowed when there
/// is nothing to escape. Backslashes are left alone: the output is for eyes, not a parser.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// As [`escape_control`], but line feeds and tabs stay (bodies shown over several lines).
pub fn escape_control_multiline(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// Control characters, and the bidirectional overrides and isolates that reorder what a
/// terminal shows (U+202A–U+202E, U+2066–U+2069).
fn is_hidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape(s: &str, keep_lines: bool) -> Cow<'_, str> {
    let kept = |c: char| keep_lines && matches!(c, '\n' | '\t');
    if !s.chars().any(|c| is_hidden(c) && !kept(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if kept(c) => out.push(c),
            '\x1b' => out.push_str("\\e"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_hidden(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `url` without its userinfo (`http://alice:pw@host/` → `http://host/`), for everything that
/// shows or stores a server URL; the credentials travel only as the request's basic auth.
/// Text that is not `scheme://…` is returned as it is.
pub fn strip_userinfo(url: &str) -> Cow<'_, str> {
    let Some(i) = url.find("://") else {
        return Cow::Borrowed(url);
    };
    let rest = &url[i + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => Cow::Owned(format!("{}{}", &url[..i + 3], &rest[at + 1..])),
        None => Cow::Borrowed(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible() {
        assert!(matches!(escape_control("K7M3NP"), Cow::Borrowed(_)));
        assert_eq!(
            escape_control("\x1b]52;c;aGk=\x07\x1b[2J\u{9b}31m\r\nx"),
            "\\e]52;c;aGk=\\u{7}\\e[2J\\u{9b}31m\\r\\nx"
        );
        assert_eq!(escape_control("ü–ok"), "ü–ok");
        assert_eq!(escape_control("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(
            escape_control_multiline("{\n\t\x1b[2J\r}"),
            "{\n\t\\e[2J\\r}"
        );
    }

    #[test]
    fn userinfo_goes() {
        assert_eq!(
            strip_userinfo("http://alice:s3cretpw@127.0.0.1:9/x@y"),
            "http://127.0.0.1:9/x@y"
        );
        assert_eq!(strip_userinfo("https://u@h"), "https://h");
        assert!(matches!(strip_userinfo("http://h:1/p"), Cow::Borrowed(_)));
        assert_eq!(strip_userinfo("embedded-sandbox"), "embedded-sandbox");
    }
}
