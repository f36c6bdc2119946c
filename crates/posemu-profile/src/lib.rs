//! Device profiles: one TOML file per emulated terminal (identity, secrets, model).
//!
//! Shared by the device side (who am I) and the sandbox (whom to provision). Parsing is strict:
//! every problem names the file, the line, the field, what is wrong and what was expected.
//!
//! In the workspace: depends only on `posemu-protocol`; used by the sandbox (whom to
//! provision) and the runtime (who the device is).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use posemu_protocol::crypto::{key_from_hex, Key};
use posemu_protocol::headers::{is_valid_device_id, user_agent};
use posemu_protocol::version::Version;

/// The shape of the device, used by the POS screen to draw its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormFactor {
    /// Portrait handheld with a printer (PAX A920, Sunmi V2).
    #[default]
    Handheld,
    /// Countertop terminal with a keypad (Verifone V400c).
    Countertop,
    /// Compact smart POS / card reader (PAX A77).
    Compact,
}

#[derive(Clone, PartialEq)]
pub struct Profile {
    /// The file stem, e.g. `pax-a920`.
    pub name: String,
    pub description: String,
    pub device_id: String,
    pub model: String,
    pub os: String,
    pub app_version: String,
    pub form: FormFactor,
    pub user_agent_override: Option<String>,
    pub key_id: String,
    pub identity_secret: Key,
    pub zmk: Key,
    /// Merchant the sandbox provisions this device for (default: the demo merchant).
    pub merchant_id: Option<String>,
    /// Where the profile came from (`None` when built in code).
    pub source: Option<PathBuf>,
}

impl Profile {
    pub fn user_agent(&self) -> String {
        self.user_agent_override
            .clone()
            .unwrap_or_else(|| user_agent(&self.app_version, &self.os, &self.model))
    }
}

/// Secrets never show in debug output.
impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("device_id", &self.device_id)
            .field("model", &self.model)
            .field("os", &self.os)
            .field("app_version", &self.app_version)
            .field("key_id", &self.key_id)
            .field("identity_secret", &"<redacted>")
            .field("zmk", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ProfileError {
    pub file: String,
    pub line: Option<usize>,
    pub field: Option<String>,
    pub problem: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.problem)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    #[serde(default)]
    description: String,
    device: RawDevice,
    identity: RawIdentity,
    keys: RawKeys,
    #[serde(default)]
    merchant: Option<RawMerchant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    id: Spanned<String>,
    model: Spanned<String>,
    os: Spanned<String>,
    app_version: Spanned<String>,
    #[serde(default)]
    form: FormFactor,
    #[serde(default)]
    user_agent: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    key_id: Spanned<String>,
    secret_hex: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    zmk_hex: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMerchant {
    id: Spanned<String>,
}

fn line_of(text: &str, span: Range<usize>) -> usize {
    text[..span.start.min(text.len())].matches('\n').count() + 1
}

/// Parses the TOML into the raw shape. Syntax errors name the line; shape errors (missing,
/// unknown or mistyped fields) also name the field by its dotted path, e.g. `device.model`.
fn deserialize(text: &str, file: &str) -> Result<RawProfile, ProfileError> {
    let fail = |line: Option<usize>, field: Option<String>, problem: String| ProfileError {
        file: file.to_string(),
        line,
        field,
        problem,
    };
    let de = toml::de::Deserializer::parse(text).map_err(|e| {
        let span = e.span();
        let message = e.message().trim().to_string();
        let key = span
            .as_ref()
            .and_then(|s| text.get(s.clone()))
            .map(str::trim);
        if let (Some(span), Some(key), "duplicate key") = (&span, key, message.as_str()) {
            let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
            let line = Some(line_of(text, span.clone()));
            if text[line_start..].trim_start().starts_with('[') {
                let problem = "is defined twice (a duplicate table)".to_string();
                return fail(line, Some(key.to_string()), problem);
            }
            // A key: name it `table.key`, the table being the last `[header]` above it.
            let table = text[..line_start]
                .lines()
                .rev()
                .map(str::trim)
                .find_map(|l| l.strip_prefix('[')?.strip_suffix(']'))
                .map(|t| t.trim_matches(['[', ']']).trim());
            let field = match table {
                Some(t) => format!("{t}.{key}"),
                None => key.to_string(),
            };
            return fail(line, Some(field), "is set twice (a duplicate key)".into());
        }
        fail(span.map(|s| line_of(text, s)), None, message)
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        // `Spanned` fields add a private segment of their own to the path.
        let path = e
            .path()
            .to_string()
            .split('.')
            .filter(|seg| !seg.is_empty() && !seg.starts_with("$__serde_spanned"))
            .collect::<Vec<_>>()
            .join(".");
        let inner = e.into_inner();
        let line = inner.span().map(|s| line_of(text, s));
        let message = inner.message().trim().to_string();
        let join = |key: &str| {
            if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            }
        };
        if let Some(key) = quoted_after(&message, "missing field ") {
            // A missing top-level table has no line worth showing (the error points at line 1).
            let line = line.filter(|_| !path.is_empty());
            let what = if path.is_empty() { "table" } else { "field" };
            return fail(
                line,
                Some(join(key)),
                format!("is missing (a required {what})"),
            );
        }
        if let Some(key) = quoted_after(&message, "unknown field ") {
            let expected = message
                .split_once(", expected ")
                .map(|(_, x)| x)
                .unwrap_or("");
            let field = if path.ends_with(key) {
                path.clone()
            } else {
                join(key)
            };
            let mut problem = format!("is not a profile field; expected {expected}");
            if let Some(close) = closest(key, expected) {
                problem = format!(
                    "is not a profile field; did you mean `{close}`? (expected {expected})"
                );
            }
            return fail(line, Some(field), problem);
        }
        // serde names our private structs ("expected struct RawDevice"): say what a user wrote.
        let message = match message.split_once(", expected struct Raw") {
            Some((head, _)) => format!("{head}, expected a table"),
            None => message,
        };
        fail(line, (!path.is_empty()).then_some(path), message)
    })
}

/// `x` of a message that starts with `{prefix}` then `` `x` ``.
fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split_once('`').map(|(k, _)| k)
}

/// The expected name (from `` `a`, `b` ``) closest to a misspelt `key`, if it is close.
fn closest<'a>(key: &str, expected: &'a str) -> Option<&'a str> {
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|name| (edit_distance(key, name), name))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses profile text; `file` names it in errors and `name` is the profile's name.
pub fn parse(text: &str, file: &str, name: &str) -> Result<Profile, ProfileError> {
    let raw = deserialize(text, file)?;
    let err = |v: &Spanned<String>, field: &str, problem: String| ProfileError {
        file: file.to_string(),
        line: Some(line_of(text, v.span())),
        field: Some(field.to_string()),
        problem,
    };
    let non_empty = |v: &Spanned<String>, field: &str, example: &str| {
        if v.get_ref().trim().is_empty() || v.get_ref().chars().any(|c| c.is_control()) {
            Err(err(
                v,
                field,
                format!(
                    "is {:?}, expected a non-empty single line such as {example:?}",
                    v.get_ref()
                ),
            ))
        } else {
            Ok(v.get_ref().clone())
        }
    };
    let d = &raw.device;
    if !is_valid_device_id(d.id.get_ref()) {
        return Err(err(
            &d.id,
            "device.id",
            format!(
                "is {:?}, expected \"POS-\" and 8 uppercase hex digits, e.g. \"POS-8F3A2C91\"",
                d.id.get_ref()
            ),
        ));
    }
    let model = non_empty(&d.model, "device.model", "PAX-A920")?;
    if model.contains([';', '(', ')']) {
        return Err(err(
            &d.model,
            "device.model",
            format!(
                "is {model:?}, which may not contain ';', '(' or ')' (it goes into the User-Agent)"
            ),
        ));
    }
    let os = non_empty(&d.os, "device.os", "Android 12")?;
    if os.contains([';', '(', ')']) {
        return Err(err(
            &d.os,
            "device.os",
            format!(
                "is {os:?}, which may not contain ';', '(' or ')' (it goes into the User-Agent)"
            ),
        ));
    }
    if Version::parse(d.app_version.get_ref()).is_none() || d.app_version.get_ref().contains(' ') {
        return Err(err(
            &d.app_version,
            "device.app_version",
            format!(
                "is {:?}, expected a version like \"1.4.2\"",
                d.app_version.get_ref()
            ),
        ));
    }
    let ua = match &d.user_agent {
        Some(ua) => Some(non_empty(
            ua,
            "device.user_agent",
            "Viopay-POS/1.4.2 (Android 12; PAX-A920)",
        )?),
        None => None,
    };
    let key_id = non_empty(
        &raw.identity.key_id,
        "identity.key_id",
        "device-id-key-2025-01",
    )?;
    let secret = key_from_hex(raw.identity.secret_hex.get_ref())
        .map_err(|p| err(&raw.identity.secret_hex, "identity.secret_hex", p))?;
    let zmk = key_from_hex(raw.keys.zmk_hex.get_ref())
        .map_err(|p| err(&raw.keys.zmk_hex, "keys.zmk_hex", p))?;
    let merchant_id = match &raw.merchant {
        Some(m) => Some(non_empty(
            &m.id,
            "merchant.id",
            posemu_protocol::rules::DEMO_MERCHANT_ID,
        )?),
        None => None,
    };
    Ok(Profile {
        name: name.to_string(),
        description: raw.description,
        device_id: d.id.get_ref().clone(),
        model,
        os,
        app_version: d.app_version.get_ref().clone(),
        form: d.form,
        user_agent_override: ua,
        key_id,
        identity_secret: secret,
        zmk,
        merchant_id,
        source: None,
    })
}

/// Reads and parses one profile file; its name is the file stem.
pub fn load(path: &Path) -> Result<Profile, ProfileError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
        file: file.clone(),
        line: None,
        field: None,
        problem: format!("cannot read: {e}"),
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut p = parse(&text, &file, &name)?;
    p.source = Some(path.to_path_buf());
    Ok(p)
}

/// Every `*.toml` profile in `dir`, sorted by name. A bad file fails the whole load: a sandbox
/// or fleet that silently skips a device would be worse than one that refuses to start.
pub fn load_dir(dir: &Path) -> Result<Vec<Profile>, ProfileError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ProfileError {
        file: dir.display().to_string(),
        line: None,
        field: None,
        problem: format!("cannot read profile directory: {e}"),
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| load(p)).collect()
}

/// The profiles shipped in `profiles/`, compiled into the binary so it works from anywhere.
pub const BUILTIN: &[(&str, &str)] = &[
    ("pax-a920", include_str!("../../../profiles/pax-a920.toml")),
    (
        "verifone-v400c",
        include_str!("../../../profiles/verifone-v400c.toml"),
    ),
    ("sunmi-p2", include_str!("../../../profiles/sunmi-p2.toml")),
];

/// The default profile's name.
pub const DEFAULT_PROFILE: &str = "pax-a920";

/// Parses the built-in profiles (they are tested, so this cannot fail at run time).
pub fn builtin() -> Vec<Profile> {
    BUILTIN
        .iter()
        .map(|(name, text)| {
            parse(text, &format!("profiles/{name}.toml"), name)
                .expect("built-in profiles are valid")
        })
        .collect()
}

pub fn builtin_named(name: &str) -> Option<Profile> {
    builtin().into_iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_profile_is_the_documented_device() {
        let p = builtin_named(DEFAULT_PROFILE).unwrap();
        assert_eq!(p.device_id, "POS-8F3A2C91");
        assert_eq!(p.model, "PAX-A920");
        assert_eq!(p.os, "Android 12");
        assert_eq!(p.app_version, "1.4.2");
        assert_eq!(p.key_id, "device-id-key-2025-01");
        assert_eq!(p.user_agent(), "Viopay-POS/1.4.2 (Android 12; PAX-A920)");
        assert!(!format!("{p:?}").contains(&hex::encode_upper(p.identity_secret)));
    }

    #[test]
    fn builtin_profiles_are_distinct_devices() {
        let all = builtin();
        assert!(all.len() >= 3);
        let mut ids: Vec<_> = all.iter().map(|p| &p.device_id).collect();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
    }
}
