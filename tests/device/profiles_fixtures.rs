//! Profile files are validated with precise errors: every file under
//! `tests/fixtures/invalid_profiles/` states the error it must give in its first three lines
//! (`# expect-line:`, `# expect-field:`, `# expect-problem:`), and every file under
//! `tests/fixtures/valid_profiles/` loads.

use std::path::{Path, PathBuf};

use posemu_profile::{self as profile, FormFactor, ProfileError};

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

struct Expected {
    line: Option<usize>,
    field: Option<String>,
    problem: String,
}

fn expectation(path: &Path) -> Expected {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let mut take = |key: &str| {
        let l = lines.next().unwrap_or("");
        l.strip_prefix(&format!("# expect-{key}: "))
            .unwrap_or_else(|| panic!("{}: line should start `# expect-{key}: `", path.display()))
            .to_string()
    };
    let line = take("line");
    let field = take("field");
    let problem = take("problem");
    Expected {
        line: (line != "none").then(|| line.parse().expect("a line number")),
        field: (field != "none").then_some(field),
        problem,
    }
}

#[test]
fn every_invalid_profile_gives_its_precise_error() {
    let files = fixtures("invalid_profiles");
    assert!(files.len() >= 20, "{} fixtures", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let want = expectation(path);
        let err: ProfileError = match profile::load(path) {
            Ok(p) => {
                failures.push(format!("{}: loaded as {p:?}", path.display()));
                continue;
            }
            Err(e) => e,
        };
        let got = (err.line, err.field.clone(), err.problem.clone());
        let expected = (want.line, want.field.clone(), want.problem.clone());
        if got != expected {
            failures.push(format!(
                "{}:\n   got {got:?}\n  want {expected:?}",
                path.display()
            ));
            continue;
        }
        // The message names the file, then the line, the field and the problem.
        let mut display = path.display().to_string();
        if let Some(l) = want.line {
            display += &format!(":{l}");
        }
        if let Some(f) = &want.field {
            display += &format!(": field `{f}`");
        }
        display += &format!(": {}", want.problem);
        assert_eq!(err.file, path.display().to_string());
        assert_eq!(err.to_string(), display);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_never_echo_a_secret() {
    let secret = "0F1E2D3C0F1E2D3C0F1E2D3C0F1E2D3C0F1E2D3C0F1E2D3C0F1E2D3C0F1E2D";
    for path in fixtures("invalid_profiles") {
        let e = profile::load(&path).unwrap_err().to_string();
        assert!(!e.contains(secret), "{e}");
        assert!(!e.contains(&"1".repeat(32)), "{e}");
    }
}

#[test]
fn every_valid_profile_loads() {
    let files = fixtures("valid_profiles");
    assert!(files.len() >= 3);
    for path in &files {
        let p = profile::load(path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.source.as_deref(), Some(path.as_path()));
        assert_eq!(
            Some(p.name.as_str()),
            path.file_stem().and_then(|s| s.to_str())
        );
        let dbg = format!("{p:?}");
        assert!(
            !dbg.contains(&hex::encode_upper(p.identity_secret)),
            "{dbg}"
        );
        assert!(!dbg.contains(&hex::encode(p.zmk)), "{dbg}");
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid_profiles");
    let all = profile::load_dir(&dir).unwrap();
    assert_eq!(all.len(), files.len());

    let min = all.iter().find(|p| p.name == "minimal").unwrap();
    assert_eq!(min.device_id, "POS-0F1E2D3C");
    assert_eq!(min.form, FormFactor::Handheld);
    assert_eq!(min.user_agent(), "Viopay-POS/1.4.2 (Android 10; PAX-A77)");
    assert_eq!(min.merchant_id, None);
    assert_eq!(min.identity_secret[..4], [0x0F, 0x1E, 0x2D, 0x3C]);

    let full = all.iter().find(|p| p.name == "everything").unwrap();
    assert_eq!(full.form, FormFactor::Countertop);
    assert_eq!(full.app_version, "2.0.0-rc1");
    assert_eq!(
        full.user_agent(),
        "Viopay-POS/2.0.0-rc1 (Telium TETRA 22; INGENICO-MOVE5000) build/4711"
    );
    assert_eq!(full.key_id, "device-id-key-2026-03");
    assert_eq!(full.identity_secret[..3], [0xAB, 0xCD, 0xEF]);
    assert_eq!(
        full.merchant_id.as_deref(),
        Some("7d3f2a10-0000-4000-8000-000000000002")
    );
    assert!(full.description.starts_with("Ingenico"));

    let inline = all.iter().find(|p| p.name == "compact-inline").unwrap();
    assert_eq!(inline.form, FormFactor::Compact);
}

#[test]
fn a_directory_with_one_bad_file_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for p in fixtures("valid_profiles") {
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let bad = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/invalid_profiles/missing-model.toml");
    std::fs::copy(&bad, dir.path().join("zz-bad.toml")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a profile").unwrap();
    let e = profile::load_dir(dir.path()).unwrap_err();
    assert!(e.file.ends_with("zz-bad.toml"), "{e}");
    assert_eq!(e.line, Some(6));
    assert_eq!(e.field.as_deref(), Some("device.model"));

    let e = profile::load_dir(&dir.path().join("missing")).unwrap_err();
    assert!(
        e.problem.starts_with("cannot read profile directory"),
        "{e}"
    );
    let e = profile::load(&dir.path().join("nope.toml")).unwrap_err();
    assert!(e.problem.starts_with("cannot read"), "{e}");
    assert_eq!((e.line, e.field), (None, None));
}

#[test]
fn the_shipped_profiles_are_valid_files_too() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let shipped = profile::load_dir(&dir).unwrap();
    assert_eq!(shipped.len(), profile::builtin().len());
    for p in &shipped {
        let text = std::fs::read_to_string(p.source.as_ref().unwrap()).unwrap();
        assert!(text.contains("DEMO SECRETS ONLY"), "{}", p.name);
    }
}
