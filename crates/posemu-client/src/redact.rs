//! Redaction of what the exchange log keeps: tokens and secrets in bodies (at any size) and
//! credential headers. Applied when an entry is recorded, so nothing downstream (the debug
//! view, HAR, curl) ever holds the secret.

use std::borrow::Cow;

/// JSON fields whose string values are tokens or secrets, redacted in logged bodies.
pub const SECRET_FIELDS: &[&str] = &[
    "attestation_token",
    "access_token",
    "refresh_token",
    "client_secret",
    "identity_secret_hex",
    "zmk_hex",
];

/// The first 8 characters of a token and an ellipsis: enough to tell tokens apart, useless
/// to an attacker (`att_f83k…`). Short tokens show nothing.
pub fn redact_token(token: &str) -> String {
    const KEEP: usize = 8;
    if token.chars().count() <= KEEP + 4 {
        return "…".into();
    }
    let mut s: String = token.chars().take(KEEP).collect();
    s.push('…');
    s
}

/// `Attestation att_f83k…`: the scheme stays, the credential goes.
pub fn redact_authorization(value: &str) -> String {
    match value.trim().split_once(' ') {
        Some((scheme, token)) => format!("{scheme} {}", redact_token(token.trim())),
        None => redact_token(value),
    }
}

/// `text` with the string values of [`SECRET_FIELDS`] redacted (`"access_token": "eyJhbGci…"`).
/// Works on the text, not a parse, so it also covers bodies cut short, bodies that are not
/// quite JSON, and a value that runs to the end of a truncated text.
pub fn redact_json_text(text: &str) -> Cow<'_, str> {
    if !SECRET_FIELDS.iter().any(|f| text.contains(f)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    // the earliest `"field"` of any secret field
    let next = |t: &str| {
        SECRET_FIELDS
            .iter()
            .filter_map(|f| {
                let quoted = format!("\"{f}\"");
                t.find(&quoted).map(|i| (i, i + quoted.len()))
            })
            .min()
    };
    while let Some((_, name_end)) = next(rest) {
        out.push_str(&rest[..name_end]);
        rest = &rest[name_end..];
        let after_colon = rest.trim_start().strip_prefix(':').map(str::trim_start);
        let Some(value) = after_colon.and_then(|v| v.strip_prefix('"')) else {
            continue; // a key not followed by a string value
        };
        out.push_str(&rest[..rest.len() - value.len()]);
        // the string runs to the first unescaped quote, or to the end of a cut text
        let mut end = value.len();
        let mut escaped = false;
        for (i, c) in value.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        out.push_str(&redact_token(&value[..end]));
        changed = true;
        rest = &value[end..];
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// Headers whose values are credentials: kept as their scheme or cookie names only.
pub const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// A header value as logged: credentials of [`SECRET_HEADERS`] redacted, the rest as sent.
pub fn redact_header(name: &str, value: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if !SECRET_HEADERS.contains(&lower.as_str()) {
        return value.to_string();
    }
    if lower.ends_with("authorization") {
        return redact_authorization(value);
    }
    // cookies: `name=…` for each (`Cookie: a=1; b=2`, `Set-Cookie: sid=x; Path=/`): the
    // value of the first pair of each cookie is the secret, its attributes are not
    let cookie = |pair: &str| match pair.split_once('=') {
        Some((n, _)) => format!("{}=…", n.trim()),
        None => "…".to_string(),
    };
    if lower == "cookie" {
        value.split(';').map(cookie).collect::<Vec<_>>().join("; ")
    } else {
        let mut parts = value.split(';');
        let first = cookie(parts.next().unwrap_or(""));
        std::iter::once(first)
            .chain(parts.map(|p| p.trim().to_string()))
            .collect::<Vec<_>>()
            .join("; ")
    }
}
