//! The architecture's arrows, checked on the real crate graph (`cargo metadata`): which workspace
//! crate may reach which, transitively, through normal dependencies.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Workspace crate → the workspace crates it reaches (transitively) through normal dependencies.
fn reach() -> BTreeMap<String, BTreeSet<String>> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let members: BTreeSet<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["source"].is_null())
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let direct: BTreeMap<String, BTreeSet<String>> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["source"].is_null())
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null()) // normal dependencies only
                .map(|d| d["name"].as_str().unwrap().to_string())
                .filter(|n| members.contains(n))
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect();
    direct
        .keys()
        .map(|k| {
            let mut seen = BTreeSet::new();
            let mut todo = vec![k.clone()];
            while let Some(c) = todo.pop() {
                for d in &direct[&c] {
                    if seen.insert(d.clone()) {
                        todo.push(d.clone());
                    }
                }
            }
            (k.clone(), seen)
        })
        .collect()
}

#[test]
fn the_crate_graph_keeps_the_arrows() {
    let r = reach();
    let names: BTreeSet<&str> = r.keys().map(String::as_str).collect();
    for c in [
        "posemu",
        "posemu-protocol",
        "posemu-device",
        "posemu-client",
        "posemu-sandbox",
        "posemu-profile",
        "posemu-runtime",
    ] {
        assert!(names.contains(c), "workspace crate {c} missing: {names:?}");
    }
    let forbidden: &[(&str, &[&str])] = &[
        ("posemu-protocol", &["*"]),
        (
            "posemu-device",
            &[
                "posemu-client",
                "posemu-sandbox",
                "posemu-runtime",
                "posemu",
            ],
        ),
        (
            "posemu-client",
            &[
                "posemu-device",
                "posemu-sandbox",
                "posemu-runtime",
                "posemu",
            ],
        ),
        (
            "posemu-sandbox",
            &["posemu-device", "posemu-client", "posemu-runtime", "posemu"],
        ),
        (
            "posemu-profile",
            &[
                "posemu-device",
                "posemu-client",
                "posemu-sandbox",
                "posemu-runtime",
                "posemu",
            ],
        ),
        ("posemu-runtime", &["posemu"]),
    ];
    for (from, never) in forbidden {
        let reached = &r[*from];
        if never == &["*"] {
            assert!(reached.is_empty(), "{from} reaches {reached:?}");
            continue;
        }
        for n in *never {
            assert!(!reached.contains(*n), "{from} reaches {n}: {reached:?}");
        }
    }
    for (from, reached) in &r {
        assert!(
            !reached.contains("posemu"),
            "{from} reaches the binary package"
        );
    }
}
