//! `posemu sandbox` as a process: the first stdout line, a fleet device activated by a client
//! that knows only the spec and the seed, request log lines, `--quiet`, SIGTERM, the flags, and
//! bad flags or files (exit code 2, naming the flag, file and line).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use crate::sandbox_common::*;
use posemu_protocol::clock::rfc3339;
use posemu_protocol::crypto::hmac_sha256;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_posemu");

/// A guard against a hung process: generous, never waited out when things work.
const PATIENCE: Duration = Duration::from_secs(20);

struct Proc {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    url: String,
    http: reqwest::Client,
}

async fn spawn(args: &[&str]) -> Proc {
    let mut child = Command::new(BIN)
        .arg("sandbox")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn posemu");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("first line in time")
        .unwrap()
        .expect("a first line");
    let url = first
        .strip_prefix("posemu sandbox listening on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_string();
    let port: u16 = url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{url}"));
    assert_ne!(port, 0, "the real port");
    Proc {
        child,
        lines,
        url,
        http: client(),
    }
}

impl Proc {
    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.url))
    }

    fn dev(&self, method: reqwest::Method, path: &str, dev: &Dev) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .header("X-Device-Id", &dev.id)
            .header("User-Agent", &dev.ua)
            .header("X-Client-Type", "pos")
    }

    async fn next_line(&mut self) -> Option<String> {
        tokio::time::timeout(PATIENCE, self.lines.next_line())
            .await
            .expect("a line in time")
            .unwrap()
    }

    /// SIGTERM, then the exit status and whatever else it printed.
    async fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        let pid = self.child.id().expect("running").to_string();
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("stops after SIGTERM")
            .unwrap();
        let mut rest = Vec::new();
        while let Some(l) = self.next_line().await {
            rest.push(l);
        }
        (status, rest)
    }
}

/// A device known only from the spec (section 5) and the seed.
fn derived(seed: &str, id: &str) -> Dev {
    Dev {
        id: id.into(),
        key_id: "device-id-key-2025-01".into(),
        secret: hmac_sha256(seed.as_bytes(), format!("identity|{id}").as_bytes()),
        zmk: hmac_sha256(seed.as_bytes(), format!("zmk|{id}").as_bytes()),
        ua: "Viopay-POS/1.4.2 (Android 12; PAX-A920)".into(),
    }
}

async fn json_ok(r: reqwest::RequestBuilder) -> Value {
    ok_json(r.send().await).await
}

#[tokio::test]
async fn a_fleet_device_activates_knowing_only_the_spec_and_the_seed() {
    let p = spawn(&["--fleet-seed", "cli-seed", "--quiet"]).await;
    let dev = derived("cli-seed", "POS-F0C0FFEE");
    use reqwest::Method;

    let b = json_ok(p.dev(Method::POST, "/pos/bootstrap", &dev)).await;
    assert_eq!(b["status"], "ok");
    let code = json_ok(p.dev(Method::POST, "/pos/pairing-code", &dev)).await["pairing_code"]
        .as_str()
        .unwrap()
        .to_string();
    let s = json_ok(p.dev(Method::GET, "/pos/status", &dev)).await;
    assert_eq!(s["pairing_code_status"], "pending");

    let jwt = json_ok(
        p.post("/client/session")
            .json(&json!({"client_id": "demo-merchant", "client_secret": "demo-secret"})),
    )
    .await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    json_ok(
        p.post("/session/initiate")
            .bearer_auth(&jwt)
            .json(&json!({"host": "merchant.viopay.io"})),
    )
    .await;
    let c = json_ok(
        p.post("/pos/claim")
            .bearer_auth(&jwt)
            .json(&json!({"pairing_code": code, "device_id": dev.id})),
    )
    .await;
    assert_eq!(c, json!({"status": "claimed", "device_id": "POS-F0C0FFEE"}));

    let ts = rfc3339(chrono::Utc::now());
    let mut att = p.dev(Method::POST, "/pos/attest", &dev);
    for (k, v) in signature_headers(&dev, &ts, &nonce()) {
        att = att.header(k, v);
    }
    let token = json_ok(att).await["attestation_token"]
        .as_str()
        .unwrap()
        .to_string();
    let auth = format!("Attestation {token}");
    let keys: posemu_protocol::wire::KeysResponse = serde_json::from_value(
        json_ok(
            p.dev(Method::POST, "/pos/keys", &dev)
                .header("Authorization", &auth),
        )
        .await,
    )
    .unwrap();
    let keys = unwrap_keys(&dev.zmk, &keys);
    let config = json_ok(
        p.dev(Method::POST, "/pos/config", &dev)
            .header("Authorization", &auth),
    )
    .await;
    assert_eq!(open_json(&keys.msk, &config)["device_id"], "POS-F0C0FFEE");
    let params = json_ok(
        p.dev(Method::POST, "/pos/terminal-parameters", &dev)
            .header("Authorization", &auth),
    )
    .await;
    assert_eq!(params["format"], "TR31-DATA-CHUNKED");
    assert_eq!(open_json(&keys.msk, &params)["device_id"], "POS-F0C0FFEE");
    let act = json_ok(
        p.dev(Method::POST, "/pos/activate", &dev)
            .header("Authorization", &auth)
            .json(&seal_json(&keys.msk, ALL_OK)),
    )
    .await;
    assert_eq!(open_json(&keys.msk, &act)["status"], "activated");
    let s = json_ok(p.dev(Method::GET, "/pos/status", &dev)).await;
    assert_eq!(
        s,
        json!({"device_status": "activated", "is_claimed": true, "pairing_code_status": "used"})
    );
    // The shipped profiles are served beside the fleet.
    json_ok(p.dev(Method::POST, "/pos/bootstrap", &pax())).await;

    let (status, rest) = p.terminate().await;
    assert!(status.success(), "{status:?}");
    assert!(rest.is_empty(), "--quiet logs nothing: {rest:?}");
}

#[tokio::test]
async fn one_log_line_per_request_then_a_clean_stop() {
    let mut p = spawn(&[]).await;
    use reqwest::Method;
    let r = p
        .dev(Method::GET, "/pos/status", &pax())
        .send()
        .await
        .unwrap();
    let trace = trace_header(&r);
    let line = p.next_line().await.unwrap();
    for part in [
        "GET",
        "/pos/status",
        "POS-8F3A2C91",
        " 200 ",
        "ms",
        &format!("trace={trace}"),
    ] {
        assert!(line.contains(part), "{part:?} not in {line:?}");
    }
    let ghost = Dev {
        id: "POS-00000000".into(),
        ..pax()
    };
    let r = p
        .dev(Method::POST, "/pos/bootstrap", &ghost)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let line = p.next_line().await.unwrap();
    assert!(
        line.starts_with("POST") && line.contains("POS-00000000") && line.contains(" 404 "),
        "{line}"
    );
    p.post("/pos/claim").send().await.unwrap();
    let line = p.next_line().await.unwrap();
    assert!(
        line.contains("/pos/claim") && line.contains(" - ") && line.contains(" 400 "),
        "{line}"
    );
    // An idle keep-alive connection does not hold up the stop.
    let (status, rest) = p.terminate().await;
    assert!(status.success(), "{status:?}");
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn the_flags_shape_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let faults = dir.path().join("faults.toml");
    std::fs::write(
        &faults,
        "seed = 5\n\n[[rules]]\nroute = \"/health/live\"\nerror_status = 503\nerror_probability = 1.0\nretry_after_secs = 9\n",
    )
    .unwrap();
    let fixtures = fixture_dir("valid_profiles");
    let p = spawn(&[
        "--quiet",
        "--profiles",
        fixtures.to_str().unwrap(),
        "--faults",
        faults.to_str().unwrap(),
        "--code-ttl",
        "60",
        "--token-ttl",
        "120",
        "--min-version",
        "1.5.0",
        "--enforce-min-version",
    ])
    .await;
    use reqwest::Method;
    let new = Dev {
        id: "POS-0F1E2D3C".into(),
        ua: "Viopay-POS/1.5.0 (Android 10; PAX-A77)".into(),
        key_id: "device-id-key-2025-01".into(),
        secret: hex::decode("0F1E2D3C".repeat(8))
            .unwrap()
            .try_into()
            .unwrap(),
        zmk: [0x11; 32],
    };
    let b = json_ok(p.dev(Method::POST, "/pos/bootstrap", &new)).await;
    assert_eq!(b["min_supported_version"], "1.5.0");
    let v = json_ok(p.dev(Method::POST, "/pos/pairing-code", &new)).await;
    assert_eq!(v["expires_in_sec"], 60);
    let old = Dev {
        ua: "Viopay-POS/1.4.9 (Android 10; PAX-A77)".into(),
        ..new.clone()
    };
    expect_error(
        p.dev(Method::GET, "/pos/status", &old).send().await,
        426,
        "POS app version 1.4.9 is below the minimum supported version 1.5.0",
        Some(json!({"min_supported_version": "1.5.0"})),
    )
    .await;
    let v = json_ok(
        p.post("/client/session")
            .json(&json!({"client_id": "demo-merchant", "client_secret": "demo-secret"})),
    )
    .await;
    assert_eq!(v["expires_in"], 120);
    // --profiles replaces the shipped profiles.
    expect_error(
        p.dev(Method::POST, "/pos/bootstrap", &pax()).send().await,
        404,
        "Device not found",
        Some(json!({"device_id": "POS-8F3A2C91"})),
    )
    .await;
    // The fault file is in force.
    let f = json_ok(p.http.get(format!("{}/sandbox/faults", p.url))).await;
    assert_eq!(f["seed"], 5);
    let (h, _) = expect_error(
        p.http.get(format!("{}/health/live", p.url)).send().await,
        503,
        "Service unavailable",
        Some(json!({"injected": true})),
    )
    .await;
    assert_eq!(h["retry-after"], "9");
    let (status, _) = p.terminate().await;
    assert!(status.success());
}

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Runs `posemu sandbox ARGS` expecting it to refuse: exit code 2 and its stderr.
fn refuses(args: &[&str]) -> String {
    let out = std::process::Command::new(BIN)
        .arg("sandbox")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "{args:?} printed {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    for (args, needles) in [
        (&["--listen", "nope"][..], &["--listen <ADDR>", "nope"][..]),
        (
            &["--fleet-prefix", "f0"],
            &["--fleet-prefix <HH>", "2 uppercase hex digits"],
        ),
        (&["--fleet-prefix", "F00"], &["--fleet-prefix <HH>"]),
        (&["--code-ttl", "0"], &["--code-ttl <SECS>"]),
        (&["--token-ttl", "soon"], &["--token-ttl <SECS>"]),
        (&["--settle-every", "soon"], &["--settle-every <SECS>"]),
        (&["--settle-every", "1.5"], &["--settle-every <SECS>"]),
        (&["--min-version", "1.x"], &["--min-version <X.Y.Z>", "1.x"]),
        (&["--bogus"], &["--bogus"]),
        (&["--fleet-seed"], &["--fleet-seed <SEED>"]),
    ] {
        let e = refuses(args);
        for n in needles {
            assert!(e.contains(n), "{args:?}: {n:?} not in {e}");
        }
    }
}

#[test]
fn bad_files_exit_2_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = |name: &str| d.join(name).to_str().unwrap().to_string();

    let e = refuses(&["--profiles", &path("none")]);
    assert!(e.contains("--profiles") && e.contains(&path("none")), "{e}");

    let bad_profiles = d.join("bad");
    std::fs::create_dir(&bad_profiles).unwrap();
    std::fs::copy(
        fixture_dir("invalid_profiles").join("secret-too-short.toml"),
        bad_profiles.join("p.toml"),
    )
    .unwrap();
    let e = refuses(&["--profiles", bad_profiles.to_str().unwrap()]);
    let want = format!(
        "--profiles: {}:14: field `identity.secret_hex`: is 8 hex characters, expected 64 (32 bytes)",
        bad_profiles.join("p.toml").display()
    );
    assert!(e.contains(&want), "{e}");

    let e = refuses(&["--faults", &path("missing.toml")]);
    assert!(
        e.contains(&format!("--faults {}: cannot read", path("missing.toml"))),
        "{e}"
    );
    for (text, at) in [
        (
            "seed = 1\n[[rules]]\nroute = \"*\"\nlatency_ms = \"slow\"\n",
            "line 4: ",
        ),
        ("[[rules]\n", "line 1: "),
        (
            "[[rules]]\nroute = \"/pos/status\"\n\n[[rules]]\nroute = \"/pos/nothing\"\n",
            "line 5: rules[2].route: \"/pos/nothing\" is not a route",
        ),
    ] {
        std::fs::write(d.join("f.toml"), text).unwrap();
        let e = refuses(&["--faults", &path("f.toml")]);
        assert!(
            e.contains(&format!("--faults {}: {at}", path("f.toml"))),
            "{e}"
        );
    }

    // A port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let e = refuses(&["--listen", &addr]);
    assert!(
        e.contains(&format!("--listen: cannot listen on {addr}")),
        "{e}"
    );
}

#[test]
fn conflicting_devices_are_refused_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    let minimal = fixture_dir("valid_profiles").join("minimal.toml");
    std::fs::copy(&minimal, a.join("m.toml")).unwrap();
    // Other keys for the same id: refused, naming both files (identical copies are fine, see
    // `identical_profiles_in_two_directories_are_one_device`).
    let text = std::fs::read_to_string(&minimal)
        .unwrap()
        .replace(&"1".repeat(64), &"2".repeat(64));
    std::fs::write(b.join("m.toml"), text).unwrap();
    let e = refuses(&[
        "--profiles",
        a.to_str().unwrap(),
        "--profiles",
        b.to_str().unwrap(),
    ]);
    assert!(
        e.contains(&format!(
            "{}: device POS-0F1E2D3C is also defined by {}",
            b.join("m.toml").display(),
            a.join("m.toml").display()
        )),
        "{e}"
    );
    // A profile inside the fleet range.
    let text = std::fs::read_to_string(&minimal)
        .unwrap()
        .replace("POS-0F1E2D3C", "POS-F0000001");
    std::fs::write(b.join("m.toml"), text).unwrap();
    let e = refuses(&["--profiles", b.to_str().unwrap(), "--fleet-seed", "s"]);
    assert!(
        e.contains("device POS-F0000001 is inside the fleet range POS-F0xxxxxx"),
        "{e}"
    );
}

#[tokio::test]
async fn identical_profiles_in_two_directories_are_one_device() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    let minimal = fixture_dir("valid_profiles").join("minimal.toml");
    std::fs::copy(&minimal, a.join("m.toml")).unwrap();
    std::fs::copy(&minimal, b.join("m.toml")).unwrap();
    let p = spawn(&[
        "--quiet",
        "--profiles",
        a.to_str().unwrap(),
        "--profiles",
        b.to_str().unwrap(),
    ])
    .await;
    let v = json_ok(p.http.get(format!("{}/sandbox/devices", p.url))).await;
    assert_eq!(v["total"], 1);
    let (status, _) = p.terminate().await;
    assert!(status.success());
}
