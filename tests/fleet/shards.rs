//! `--shard I/N` splits the fleet disjointly, and `posemu fleet merge` adds shard reports up
//! exactly: the same histogram counts as one run over the whole range.

use std::collections::BTreeSet;

use crate::fleet_support::*;
use posemu::fleet::Report;

/// Deterministic per-device request counts: claims at once, the first poll after exactly one
/// interval (so it always finds the code claimed).
const DETERMINISTIC: [&str; 5] = ["--poll", "600ms", "--no-poll-spread", "--devices", "30"];

fn run(dir: &std::path::Path, name: &str, shard: Option<&str>) -> Report {
    let path = report_path(dir, name);
    let mut args: Vec<&str> = DETERMINISTIC.to_vec();
    args.extend(["--report", path.to_str().unwrap()]);
    if let Some(s) = shard {
        args.extend(["--shard", s]);
    }
    let out = fleet(&args);
    assert!(out.status.success(), "{}", text(&out));
    let r = load(&path);
    assert_counts_add_up(&r);
    r
}

fn device_ids(r: &Report) -> (String, u64) {
    (r.config.device_source.clone(), r.devices.total)
}

#[test]
fn shards_are_disjoint_complete_and_merge_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let whole = run(dir.path(), "whole.json", None);
    let a = run(dir.path(), "a.json", Some("0/2"));
    let b = run(dir.path(), "b.json", Some("1/2"));
    let c = run(dir.path(), "c.json", Some("1/3"));

    // sizes: disjoint blocks that together make the fleet
    assert_eq!(a.devices.total + b.devices.total, 30);
    assert_eq!((a.devices.total, b.devices.total), (15, 15));
    assert_eq!(c.devices.total, 10);
    assert_eq!(device_ids(&a).0, device_ids(&whole).0);

    // merge through the CLI, as a CI job would
    let merged_path = report_path(dir.path(), "merged.json");
    let out = posemu()
        .args(["fleet", "merge"])
        .arg(report_path(dir.path(), "a.json"))
        .arg(report_path(dir.path(), "b.json"))
        .arg("--report")
        .arg(&merged_path)
        .args(["--threshold", "activated==100%"])
        .output_within()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let merged = load(&merged_path);
    assert_counts_add_up(&merged);
    assert_eq!(merged.shards, ["0/2", "1/2"]);
    assert!(merged.missing_shards().is_empty());
    assert_eq!(merged.devices.total, 30);
    assert_eq!(merged.devices.activated, 30);
    assert_eq!(merged.devices.by_state, whole.devices.by_state);
    assert_eq!(merged.processes.len(), 2);

    // the same histogram counts as one run over both ranges, endpoint by endpoint
    let names: BTreeSet<_> = whole.endpoints.keys().collect();
    assert_eq!(names, merged.endpoints.keys().collect());
    for (name, e) in &whole.endpoints {
        let m = &merged.endpoints[name];
        assert_eq!(m.requests, e.requests, "{name}");
        assert_eq!(
            m.latency.histogram_us.len(),
            e.latency.histogram_us.len(),
            "{name}"
        );
        // and exactly the shards' buckets added up
        let mut sum = a.endpoints[name].latency.histogram_us.clone();
        sum.add(&b.endpoints[name].latency.histogram_us);
        assert_eq!(m.latency.histogram_us.0, sum.0, "{name}");
    }
    assert_eq!(
        whole.endpoints["status"].requests, 30,
        "one poll per device"
    );
    assert_eq!(
        merged.time_to_activate.histogram_us.len(),
        whole.time_to_activate.histogram_us.len()
    );
    assert_eq!(
        merged.poll_lateness.histogram_us.len(),
        whole.poll_lateness.histogram_us.len()
    );

    // a shard merged twice would count its devices twice: refused
    let out = posemu()
        .args(["fleet", "merge"])
        .arg(report_path(dir.path(), "a.json"))
        .arg(report_path(dir.path(), "a.json"))
        .output_within()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("appears twice"), "{}", text(&out));

    // an incomplete merge says which shards are missing
    let part = Report::merge(std::slice::from_ref(&a)).unwrap();
    assert_eq!(part.missing_shards(), ["1/2"]);
    assert!(part
        .summary()
        .contains("incomplete: shards 1/2 are missing"));
}

/// The ids the sandbox has seen activated.
async fn activated_ids(url: &str) -> BTreeSet<String> {
    let v: serde_json::Value = reqwest::get(format!("{url}/sandbox/devices?limit=100000"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["device_status"] == "activated")
        .map(|d| d["device_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_emulate_disjoint_devices_that_together_make_the_fleet() {
    let sandbox = posemu_sandbox::Sandbox::start(posemu_sandbox::SandboxConfig {
        fleet: Some(posemu_sandbox::FleetSeed::new("shard-seed")),
        ..Default::default()
    })
    .await
    .unwrap();
    let url = sandbox.url();
    let shard = |s: &'static str| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let out = fleet(&[
                "--devices",
                "20",
                "--poll",
                "100ms-200ms",
                "--server",
                &url,
                "--fleet-seed",
                "shard-seed",
                "--shard",
                s,
            ]);
            assert!(out.status.success(), "{}", text(&out));
        })
    };
    shard("0/2").await.unwrap();
    let first = activated_ids(&url).await;
    assert_eq!(first.len(), 10, "{first:?}");
    shard("1/2").await.unwrap();
    let all = activated_ids(&url).await;
    let second: BTreeSet<_> = all.difference(&first).cloned().collect();
    assert_eq!(
        second.len(),
        10,
        "the second shard activated other devices: {second:?}"
    );
    let expected: BTreeSet<String> = (1..=20).map(|i| format!("POS-F0{i:06X}")).collect();
    assert_eq!(all, expected);
}

#[test]
fn merging_garbage_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.json");
    std::fs::write(&p, "{\"format\": 3}").unwrap();
    let out = posemu()
        .args(["fleet", "merge"])
        .arg(&p)
        .output_within()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("x.json: not a fleet report"),
        "{}",
        text(&out)
    );
    let out = posemu()
        .args(["fleet", "merge"])
        .arg(dir.path().join("missing.json"))
        .output_within()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("missing.json"), "{}", text(&out));
}
