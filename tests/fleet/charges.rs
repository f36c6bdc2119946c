//! Fleets that take payments (`--charges-per-minute`, `--charge-mix`) against the embedded
//! sandbox over real loopback HTTP: latency rows and outcomes in the report, declines by magic
//! amount counted by code, refunds after the settle helper, cancels, late approvals retried
//! with the same Idempotency-Key (one charge on the server each), and payment thresholds.

use std::time::Duration;

use crate::fleet_support::*;
use posemu::fleet::charges::{ChargeMix, ChargePlan, DECLINE_ENDINGS};
use posemu::fleet::{DeviceSource, Dist, FleetConfig, ServerChoice, Shard};
use posemu_client::TransportConfig;
use posemu_protocol::api::Secret;
use posemu_sandbox::{FleetSeed, Sandbox, SandboxConfig};

const DEVICES: &str = "20";

fn charging_fleet(path: &std::path::Path, mix: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "--devices",
        DEVICES,
        "--poll",
        "100ms-200ms",
        "--duration",
        "3s",
        "--charges-per-minute",
        "300",
        "--charge-mix",
        mix,
        "--report",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    fleet(&args)
}

#[test]
fn activated_terminals_charge_and_the_report_has_latencies_and_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(dir.path(), "charges.json");
    let out = charging_fleet(
        &path,
        "approve=100",
        &[
            "--threshold",
            "p99(charge)<10s",
            "--threshold",
            "unknown==0",
            "--threshold",
            "approved>=99%",
            "--threshold",
            "errors(charge)==0",
            "--threshold",
            "p99(charge-activated)<10s",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("pass  ").count(), 5, "{stdout}");
    assert!(stdout.contains("payments: "), "{stdout}");
    let r = load(&path);
    assert_counts_add_up(&r);
    assert_eq!(r.devices.activated, 20, "{:?}", r.devices.by_state);
    assert_eq!(r.stopped_by, "duration");
    assert!(r.config.charges.as_deref().unwrap().contains("300/min"));
    let p = r.payments.as_ref().expect("a payments section");
    let o = &p.outcomes;
    let charge = &p.requests_by_kind["charge"];
    assert!(o.charges >= 20, "{o:?}");
    assert_eq!(o.approved, o.charges, "{o:?}");
    assert_eq!(o.unknown + o.declined + o.rejected + o.refused, 0, "{o:?}");
    // one request per approved charge: no retries were needed, none was sent twice
    assert!(charge.requests >= o.charges && charge.requests <= o.started);
    assert_eq!(charge.latency.histogram_us.len(), charge.requests);
    assert!(charge.latency.percentiles.p99_ms.unwrap() > 0.0);
    assert_eq!(p.errors, 0, "{:?}", p.errors_by_code);
    assert_eq!(p.requests_by_kind["refund"].requests, 0);
    // charges sent after the last terminal activated: a part of all charges
    let steady = &p.charge_after_activation;
    assert!(
        steady.percentiles.count >= 1 && steady.percentiles.count <= charge.requests,
        "{:?}",
        steady.percentiles
    );
    // payments are reported apart from the activation API's requests
    assert_eq!(
        r.requests,
        r.endpoints.values().map(|e| e.requests).sum::<u64>()
    );
    // the same report judged again
    let judge = |expr: &str| {
        posemu()
            .args(["fleet", "merge"])
            .arg(&path)
            .args(["--threshold", expr])
            .output_within()
            .unwrap()
    };
    for failing in ["declined>0", "p99(charge)<0.001ms", "requests(charge)<1"] {
        let out = judge(failing);
        assert_eq!(out.status.code(), Some(1), "{failing}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("FAIL  {failing}")));
    }
    let ok = judge("cancelled==0");
    assert!(ok.status.success(), "{}", text(&ok));
}

#[test]
fn declines_by_magic_amount_are_counted_by_code_and_fail_a_decline_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(dir.path(), "declines.json");
    let out = charging_fleet(
        &path,
        "approve=50,decline=50",
        &["--threshold", "declined<=5%", "--threshold", "unknown==0"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAIL  declined<=5%"), "{stdout}");
    assert!(stdout.contains("pass  unknown==0"), "{stdout}");
    let r = load(&path);
    let o = &r.payments.as_ref().unwrap().outcomes;
    assert!(o.declined >= 5 && o.approved >= 5, "{o:?}");
    assert_eq!(o.declined_by_code.values().sum::<u64>(), o.declined);
    let codes: Vec<&str> = DECLINE_ENDINGS.iter().map(|(_, c)| *c).collect();
    for code in o.declined_by_code.keys() {
        assert!(codes.contains(&code.as_str()), "{code}");
    }
    assert!(o.declined_by_code.len() >= 2, "{:?}", o.declined_by_code);
    assert!(
        stdout.contains("declined by code: "),
        "the summary lists them: {stdout}"
    );
    // a declined charge is an answer, not an error
    assert_eq!(r.payments.as_ref().unwrap().errors, 0);
}

#[test]
fn charge_flags_are_checked_before_running() {
    for (args, why) in [
        (
            vec!["--devices", "5", "--charges-per-minute", "2"],
            "--charges-per-minute needs --duration",
        ),
        (
            vec![
                "--devices",
                "5",
                "--duration",
                "1s",
                "--charges-per-minute",
                "0",
            ],
            "--charges-per-minute",
        ),
        (
            vec![
                "--devices",
                "5",
                "--duration",
                "1s",
                "--charges-per-minute",
                "1",
                "--charge-mix",
                "approve=1,steal=2",
            ],
            "not a kind of charge",
        ),
        (
            vec!["--devices", "5", "--threshold", "declined(Bad Code)>1"],
            "not a decline code",
        ),
    ] {
        let out = fleet(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(why), "{args:?}: {}", text(&out));
    }
}

/// Refunds go through the settle helper, cancels follow fresh charges, and a late approval
/// (504, spec 7.7 row 13) retried with its Idempotency-Key is one charge on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_cancels_and_late_approvals_never_make_a_second_payment() {
    let seed = "charges-fleet-seed";
    let sandbox = Sandbox::start(SandboxConfig {
        fleet: Some(FleetSeed::new(seed)),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let devices = 8u32;
    let cfg = FleetConfig {
        source: DeviceSource::Derived {
            seed: Secret(seed.into()),
            prefix: "F0".into(),
            first: 1,
        },
        fleet_devices: devices,
        shard: Shard::WHOLE,
        server: ServerChoice::Url(sandbox.url()),
        ramp_per_sec: 0.0,
        poll: (Duration::from_millis(100), Duration::from_millis(150)),
        unclamped_poll: true,
        spread_first_poll: true,
        claim_after: Some(Dist::Fixed { ms: 0 }),
        merchant: None,
        // the late approvals' retries back off 0–1 s, 0–2 s…: room for them to finish
        duration: Some(Duration::from_secs(6)),
        connection_per_device: false,
        max_in_flight: 64,
        workers: 2,
        transport: TransportConfig::default(),
        seed: 3,
        code_ttl: None,
        faults: Vec::new(),
        user_agent: "Viopay-POS/1.4.2 (Android 12; PAX-A920)".into(),
        app_version: "1.4.2".into(),
        charges: Some(ChargePlan {
            per_minute: 30.0,
            mix: ChargeMix::parse("refund=40,cancel=30,late=30").unwrap(),
        }),
    };
    let r = run_fleet(cfg).await.report;
    assert_counts_add_up(&r);
    let p = r.payments.as_ref().unwrap();
    let o = &p.outcomes;
    assert_eq!(r.devices.activated, devices as u64, "{}", r.summary());
    assert!(o.refunded >= 1, "{}", r.summary());
    assert!(o.cancelled >= 1, "{}", r.summary());
    assert_eq!(o.unknown, 0, "{}", r.summary());
    assert_eq!(o.refunds_skipped, 0);
    assert!(p.requests_by_kind["settle"].requests >= o.refunded);
    assert_eq!(p.requests_by_kind["settle"].errors, 0);
    assert_eq!(p.requests_by_kind["refund"].errors, 0);
    assert_eq!(p.requests_by_kind["cancel"].errors, 0);
    // the only errors are the late approvals' 504s, each retried
    for k in p.errors_by_code.keys() {
        assert_eq!(k, "charge 5004", "{:?}", p.errors_by_code);
    }
    assert!(o.retries >= 1, "a late approval came up: {}", r.summary());

    // the server's side: every stored charge is one charge operation, never two
    let http = reqwest::Client::new();
    let listed: serde_json::Value = http
        .get(format!("{}/sandbox/devices", sandbox.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut stored = 0u64;
    let mut statuses = std::collections::BTreeMap::<String, u64>::new();
    for d in listed["devices"].as_array().unwrap() {
        let tid = d["terminal_id"].as_str().unwrap();
        let charges: serde_json::Value = http
            .get(format!("{}/sandbox/terminals/{tid}/charges", sandbox.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for c in charges["charges"].as_array().unwrap() {
            stored += 1;
            *statuses
                .entry(c["status"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert!(
        stored <= o.started && stored >= o.charges,
        "{stored} charges stored for {} begun, {} ended ({statuses:?})",
        o.started,
        o.charges
    );
    assert!(statuses.get("refunded").copied().unwrap_or(0) >= o.refunded);
    assert!(statuses.get("cancelled").copied().unwrap_or(0) >= o.cancelled);
    sandbox.shutdown().await;
}
