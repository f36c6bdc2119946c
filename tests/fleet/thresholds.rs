//! `--threshold` sets the exit code: passing thresholds exit 0, a failing one exits 1 (the
//! report is still written), a malformed one exits 2 before anything runs.

use crate::fleet_support::*;
use posemu::fleet::Threshold;

#[test]
fn thresholds_pass_and_fail_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(dir.path(), "r.json");
    let out = fleet(&[
        "--devices",
        "25",
        "--poll",
        "100ms-200ms",
        "--report",
        path.to_str().unwrap(),
        "--threshold",
        "activated>=99.9%",
        "--threshold",
        "p99(status)<10s",
        "--threshold",
        "errors(4029)<10",
        "--threshold",
        "failed==0",
        "--threshold",
        "max(time-to-activate)<=60s",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("pass  ").count(), 5, "{stdout}");
    assert!(
        stdout.contains("activated>=99.9%  (actual 100.000% (25 of 25))"),
        "{stdout}"
    );

    // the same report judged again through `merge` (one report merges to itself)
    let judge = |exprs: &[&str]| {
        let mut c = posemu();
        c.args(["fleet", "merge"]).arg(&path);
        for e in exprs {
            c.args(["--threshold", e]);
        }
        c.output_within().unwrap()
    };
    let ok = judge(&["requests(bootstrap)==25", "errors<0.1%", "p50(keys)>0ms"]);
    assert!(ok.status.success(), "{}", text(&ok));
    for failing in [
        "activated<50%",
        "requests(bootstrap)!=25",
        "p99(status)<0.001ms",
        "errors(status)>0",
        "unsettled>0",
    ] {
        let out = judge(&[failing]);
        assert_eq!(out.status.code(), Some(1), "{failing}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("FAIL  {failing}")));
    }

    // the library gives the measured values
    let r = load(&path);
    let o = Threshold::parse("requests(activate)>=25")
        .unwrap()
        .check(&r);
    assert!(o.pass && o.actual == "25", "{o}");
    let o = Threshold::parse("p99(claim)<1ms").unwrap().check(&r);
    assert!(o.actual.ends_with("ms") || o.actual.ends_with('s'), "{o}");
    let o = Threshold::parse("errors(claim)<1%").unwrap().check(&r);
    assert!(o.pass, "{o}");
    // no data fails rather than passes
    let mut empty = r.clone();
    let claim = empty.endpoints.get_mut("claim").unwrap();
    claim.latency.histogram_us = posemu::fleet::stats::Hist::default();
    let o = Threshold::parse("p99(claim)<1s").unwrap().check(&empty);
    assert!(!o.pass && o.actual == "no data", "{o}");
}

#[test]
fn a_failing_threshold_fails_the_run_but_keeps_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(dir.path(), "r.json");
    let out = fleet(&[
        "--devices",
        "5",
        "--poll",
        "100ms",
        "--report",
        path.to_str().unwrap(),
        "--threshold",
        "requests(status)<1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL  requests(status)<1"));
    assert_eq!(load(&path).devices.activated, 5);
}

#[test]
fn malformed_thresholds_exit_2_before_running() {
    for (bad, why) in [
        ("p99(status)<200", "needs a time unit"),
        ("p99(stat)<2ms", "not an endpoint"),
        ("activated", "no comparison"),
    ] {
        let out = fleet(&["--devices", "100000", "--threshold", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(bad) && err.contains(why), "{bad}: {err}");
        assert!(out.stdout.is_empty(), "nothing ran: {}", text(&out));
    }
}
