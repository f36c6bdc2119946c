//! Fleets against hostile or dead servers: bounded memory and report, and an honest exit code.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::fleet_support::*;
use crate::hostile_server::*;

async fn fleet_async(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fleet(&args)
    })
    .await
    .unwrap()
}

/// 12: a fleet where nothing works (no server on the port) exits 1, not 0.
#[test]
fn a_fleet_where_nothing_works_fails() {
    let out = fleet(&[
        "--devices",
        "20",
        "--server",
        "http://127.0.0.1:9",
        "--duration",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FAIL  activated>0  (actual 0 of 20)"),
        "{stdout}"
    );
}

/// 11: a server answering 503 with a new 100 KB error code per request cannot grow the
/// fleet's error table or its report beyond the caps.
#[tokio::test(flavor = "multi_thread")]
async fn unique_huge_error_codes_are_capped() {
    let n = AtomicU64::new(0);
    let server = Hostile::start(move |_| {
        let i = n.fetch_add(1, Ordering::Relaxed);
        // three in four codes are short and new (the table's cap), the rest 100 KB (the key's)
        let code = if !i.is_multiple_of(4) {
            format!("E{i}")
        } else {
            format!("{i}{}", "\u{1b}X".repeat(50_000))
        };
        json_answer(
            503,
            &serde_json::json!({"error": {"code": code, "message": code, "trace_id": "t"}}),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(dir.path(), "r.json");
    let out = fleet_async(
        [
            "--devices",
            "300",
            "--server",
            &server.url,
            "--duration",
            "3s",
            "--report",
            path.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    let r = load(&path);
    assert!(r.requests >= 100, "{}", text(&out));
    // 64 kinds (the huge codes all count as `HTTP 503`), then `other`
    assert_eq!(r.errors_by_code.len(), 65, "{:?}", r.errors_by_code.keys());
    assert!(r.errors_by_code.contains_key("other") && r.errors_by_code.contains_key("HTTP 503"));
    assert!(r.errors_by_code.keys().all(|k| k.len() <= 16));
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 512 * 1024, "report of {size} bytes");
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\u{1b}'));
}

/// 14: credentials in `--server` stay out of the report and the summary.
#[test]
fn credentials_in_the_server_url_stay_out_of_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(dir.path(), "r.json");
    let out = fleet(&[
        "--devices",
        "2",
        "--server",
        "http://alice:s3cretpw@127.0.0.1:9",
        "--duration",
        "1s",
        "--report",
        path.to_str().unwrap(),
    ]);
    let report = std::fs::read_to_string(&path).unwrap();
    assert!(report.contains("http://127.0.0.1:9"), "{report}");
    assert!(!report.contains("s3cretpw"));
    assert!(!text(&out).contains("s3cretpw"), "{}", text(&out));
}
