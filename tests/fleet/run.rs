//! Whole fleet runs against the embedded sandbox over real loopback HTTP: every device
//! activates through the shared state machine, and the report's counts add up.

use std::sync::Arc;
use std::time::Duration;

use crate::fleet_support::*;
use posemu::fleet::devices::{DeviceSource, FileDevice};
use posemu::fleet::{Dist, FleetConfig, ServerChoice, Shard};
use posemu_client::{MerchantCredentials, TransportConfig};
use posemu_protocol::provision::{derive_identity_secret, derive_zmk};
use posemu_sandbox::{Sandbox, SandboxConfig};

#[test]
fn a_fleet_activates_every_device_and_its_report_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(dir.path(), "r.json");
    let out = fleet(&[
        "--devices",
        "60",
        "--poll",
        "100ms-200ms",
        "--report",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("60 devices: 60 activated, 0 failed"),
        "{stdout}"
    );
    let r = load(&path);
    assert_counts_add_up(&r);
    assert_eq!(r.devices.total, 60);
    assert_eq!(r.devices.activated, 60);
    assert_eq!(r.stopped_by, "settled");
    assert_eq!(r.errors, 0, "{:?}", r.errors_by_code);
    // one of each step per device; at least one poll and one claim each
    for step in [
        "bootstrap",
        "pairing-code",
        "attest",
        "keys",
        "config",
        "terminal-parameters",
        "activate",
    ] {
        assert_eq!(r.endpoints[step].requests, 60, "{step}");
    }
    assert!(r.endpoints["status"].requests >= 60);
    assert!(r.endpoints["claim"].requests >= 60);
    // lateness is measured for timer-driven polls only
    let late = &r.poll_lateness.percentiles;
    assert!(late.count >= 1 && late.count <= r.endpoints["status"].requests);
    assert!(r.config.seed_fingerprint.is_some());
    let json = std::fs::read_to_string(&path).unwrap();
    assert!(
        !json.contains("posemu-fleet\""),
        "the seed itself is never written"
    );
    assert!(r.processes[0].fleet.cpu_seconds > 0.0);
}

#[test]
fn pure_polling_load_runs_for_its_duration() {
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(dir.path(), "poll.json");
    let out = fleet(&[
        "--devices",
        "40",
        "--no-claim",
        "--duration",
        "1500ms",
        "--poll",
        "100ms-200ms",
        "--sandbox-process",
        "--report",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let r = load(&path);
    assert_counts_add_up(&r);
    assert_eq!(r.stopped_by, "duration");
    assert_eq!(
        r.devices.by_state["polling"], 40,
        "{:?}",
        r.devices.by_state
    );
    assert_eq!(r.endpoints["claim"].requests, 0);
    // 40 devices polling every 100–200 ms for over a second
    assert!(
        r.endpoints["status"].requests >= 150,
        "{}",
        r.endpoints["status"].requests
    );
    assert!(r.poll_lateness.percentiles.count >= 150);
    let sandbox = r.processes[0]
        .sandbox
        .expect("the sandbox process's cost is reported");
    assert!(sandbox.cpu_seconds > 0.0 && sandbox.peak_rss_bytes > 0);
}

#[test]
fn no_claim_without_duration_is_refused_clearly() {
    let out = fleet(&["--devices", "5", "--no-claim"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("--no-claim needs --duration"),
        "{}",
        text(&out)
    );
    let out = posemu()
        .args(["fleet", "--devices", "5", "--poll", "1-2", "--headless"])
        .output_within()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("outside 3–5 s"), "{}", text(&out));
    let out = fleet(&["--devices", "5", "--shard", "2/2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--shard"), "{}", text(&out));
}

/// Pre-provisioned devices from a file, against a server given by URL, claimed through
/// `POST /pos/claim` with merchant credentials, as against a real server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_devices_file_fleet_claims_as_a_merchant() {
    let seed = "file-fleet-seed";
    let sandbox = Sandbox::start(SandboxConfig {
        fleet: Some(posemu_sandbox::FleetSeed {
            seed: seed.into(),
            prefix: "A1".into(),
        }),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let devices: Vec<FileDevice> = (1..=12u32)
        .map(|i| {
            let id = format!("POS-A1{i:06X}");
            FileDevice {
                key_id: "device-id-key-2025-01".into(),
                identity_secret: derive_identity_secret(seed, &id),
                zmk: derive_zmk(seed, &id),
                device_id: id,
            }
        })
        .collect();
    let cfg = FleetConfig {
        source: DeviceSource::File(Arc::new(devices)),
        fleet_devices: 12,
        shard: Shard::WHOLE,
        server: ServerChoice::Url(sandbox.url()),
        ramp_per_sec: 0.0,
        poll: (Duration::from_millis(100), Duration::from_millis(150)),
        unclamped_poll: true,
        spread_first_poll: true,
        claim_after: Some(Dist::Fixed { ms: 0 }),
        merchant: Some(MerchantCredentials::demo()),
        duration: None,
        connection_per_device: true,
        max_in_flight: 64,
        workers: 2,
        transport: TransportConfig::default(),
        seed: 1,
        code_ttl: None,
        faults: Vec::new(),
        user_agent: "Viopay-POS/1.4.2 (Android 12; PAX-A920)".into(),
        app_version: "1.4.2".into(),
        charges: None,
    };
    let result = run_fleet(cfg).await;
    let r = result.report;
    assert_counts_add_up(&r);
    assert_eq!(r.devices.activated, 12, "{}", r.summary());
    assert!(r.endpoints["claim"].requests >= 12);
    assert!(r
        .config
        .claim
        .as_deref()
        .unwrap()
        .contains("POST /pos/claim"));
    assert!(r.config.connection_per_device);
}

#[test]
fn fleet_wide_device_faults_are_rejected_by_the_server_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(dir.path(), "faulty.json");
    let out = fleet(&[
        "--devices",
        "6",
        "--poll",
        "100ms",
        "--faulty",
        "100%:bad-secret",
        "--report",
        path.to_str().unwrap(),
    ]);
    // without thresholds a run passes only when no device failed
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("FAIL  failed==0"), "{}", text(&out));
    let r = load(&path);
    assert_counts_add_up(&r);
    assert_eq!(r.devices.failed, 6, "{:?}", r.devices.by_state);
    assert_eq!(
        r.errors_by_code.get("4001"),
        Some(&6),
        "{:?}",
        r.errors_by_code
    );
    assert_eq!(
        r.failures.get("attest: HTTP 401 4001 Invalid signature"),
        Some(&6),
        "{:?}",
        r.failures
    );
    assert_eq!(r.config.device_faults, ["100%:bad-secret"]);
    let bad = fleet(&["--devices", "1", "--faulty", "1%:sneeze"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("--faulty"), "{}", text(&bad));
}
