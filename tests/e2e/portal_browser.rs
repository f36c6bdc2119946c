//! The merchant portal in a real browser: headless Chromium driven over WebDriver
//! (chromedriver + fantoccini) against an in-process sandbox on 127.0.0.1. One scenario: sign
//! in, claim a terminal, watch it activate, then its payments (stages in `portal_payments.rs`).
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (`.ci/run` installs them). When
//! they are missing this test FAILS and says so: a skipped browser test would hide a broken
//! portal. `POSEMU_CHROMIUM` / `POSEMU_CHROMEDRIVER` point at other binaries.
//!
//! It saves a screenshot of the signed-in portal to `target/tmp/portal.png`; with
//! `POSEMU_UPDATE_SCREENSHOT=1` also to `docs/portal.png` (the README's picture).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::portal_payments::{
    amounts_are_exact, payment_panels_are_capped, payments_are_bounded, payments_loop, Till,
};
use crate::portal_support::*;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use posemu_sandbox::{Sandbox, SandboxConfig};
use serde_json::{json, Value};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 800;
/// The README's picture is taller than the window, so that it shows the payments.
const SHOT_HEIGHT: u32 = 1080;
/// How long the page may take to show a change; it polls the list every 1.5 s.
const UI_TIMEOUT: Duration = Duration::from_secs(15);

pub fn find_binary(env: &str, names: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "{} not found on PATH (nor set in {env}). The portal's browser test needs headless \
         Chromium and ChromeDriver: `apt-get install -y chromium chromium-driver` \
         (.ci/run installs them).",
        names.join(" / ")
    );
}

/// chromedriver on a free loopback port, killed when dropped.
pub struct ChromeDriver {
    child: Child,
    addr: SocketAddr,
}

impl ChromeDriver {
    pub async fn spawn(binary: &Path, log: &Path) -> ChromeDriver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let driver = ChromeDriver {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        // Waits for the process to listen (start-up, not a protocol timer).
        let started = Instant::now();
        while tokio::net::TcpStream::connect(driver.addr).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen on {} within 20 s (log: {})",
                driver.addr,
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        driver
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn browser(driver: &ChromeDriver, chromium: &Path, profile_dir: &Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--lang=en-US",
        &format!("--window-size={WIDTH},{HEIGHT}"),
        &format!("--user-data-dir={}", profile_dir.display()),
    ];
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": chromium, "args": args },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .unwrap_or_else(|e| panic!("cannot start a Chromium session through chromedriver: {e}"))
}

/// Evaluates `expr` in the page until it is truthy; panics with `what` after [`UI_TIMEOUT`].
pub async fn wait_until(c: &Client, expr: &str, what: &str) {
    let started = Instant::now();
    loop {
        let v = c
            .execute(&format!("return !!({expr});"), vec![])
            .await
            .unwrap_or_else(|e| panic!("{what}: script failed: {e}"));
        if v == Value::Bool(true) {
            return;
        }
        if started.elapsed() > UI_TIMEOUT {
            let msg = text_of(c, "#claim-msg").await;
            let rows = text_of(c, "#terminal-rows").await;
            panic!("timed out waiting for {what} ({expr}); message: {msg:?}; rows: {rows:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn text_of(c: &Client, css: &str) -> String {
    let v = c
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            vec![json!(css)],
        )
        .await
        .unwrap_or(Value::Null);
    v.as_str().unwrap_or_default().trim().to_string()
}

pub async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script {script:?} failed: {e}"))
}

/// Types `code` into the pairing-code field and presses Enter; waits for the answer's title.
async fn enter_code(c: &Client, code: &str) -> String {
    js(c, "document.getElementById('claim-msg').replaceChildren();").await;
    let input = c.find(Locator::Id("pairing-code")).await.unwrap();
    input.clear().await.unwrap();
    input
        .send_keys(&format!("{code}{}", Key::Enter))
        .await
        .unwrap();
    wait_until(
        c,
        "document.querySelector('#claim-msg .alert-title')",
        "a claim answer",
    )
    .await;
    text_of(c, "#claim-msg").await
}

fn row_status(device: &str) -> String {
    format!("document.querySelector('tr[data-device-id=\"{device}\"]')?.dataset.status")
}

async fn post(url: String) {
    let r = reqwest::Client::new().post(&url).send().await.unwrap();
    assert!(r.status().is_success(), "POST {url}: {}", r.status());
}

/// `code` as a hurried merchant would type it: lower case, with a dash in the middle.
fn sloppy(code: &str) -> String {
    let lower = code.to_lowercase();
    format!("{}-{}", &lower[..3], &lower[3..])
}

/// Sizes the window so that the page itself (the viewport) is `width` x `height`. Headless
/// Chromium's window counts some browser chrome, and how much varies with the size, so this
/// corrects by what the page reports until the two agree.
async fn set_viewport(c: &Client, width: u32, height: u32) {
    let (mut w, mut h) = (width as i64, height as i64);
    for _ in 0..5 {
        c.set_window_size(w.max(1) as u32, h.max(1) as u32)
            .await
            .unwrap();
        let inner = js(c, "return [window.innerWidth, window.innerHeight];").await;
        let (iw, ih) = (inner[0].as_i64().unwrap(), inner[1].as_i64().unwrap());
        if (iw, ih) == (width as i64, height as i64) {
            return;
        }
        w += width as i64 - iw;
        h += height as i64 - ih;
    }
    panic!("could not size the browser's viewport to {width}x{height}");
}

/// Screenshots that are not committed, for a person to look at (`target/tmp/`).
async fn save_for_review(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(Path::new(env!("CARGO_TARGET_TMPDIR")).join(name), png).unwrap();
}

fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

async fn scenario(c: &Client, sb_url: &str) {
    let pax = default_device();
    let verifone = profile("verifone-v400c");
    let sunmi = profile("sunmi-p2");

    // --- sign in, keyboard only: the demo credentials are filled in; Enter submits.
    c.goto(&format!("{sb_url}/portal")).await.unwrap();
    set_viewport(c, WIDTH, HEIGHT).await;
    let id = c.find(Locator::Id("client-id")).await.unwrap();
    assert_eq!(
        id.prop("value").await.unwrap().as_deref(),
        Some("demo-merchant")
    );
    let secret = c.find(Locator::Id("client-secret")).await.unwrap();
    assert_eq!(
        secret.prop("value").await.unwrap().as_deref(),
        Some("demo-secret")
    );
    secret.send_keys(&Key::Enter.to_string()).await.unwrap();
    wait_until(
        c,
        "!document.getElementById('app-view').hidden",
        "the signed-in view",
    )
    .await;
    assert_eq!(text_of(c, "#merchant-name").await, "Demo Merchant");
    assert_eq!(
        js(c, "return document.activeElement.id;").await,
        "pairing-code",
        "after sign-in the code field has the focus"
    );

    // --- a device powers on and shows its code: the list shows it, still inactive.
    let code = start_device_showing_code(sb_url).await;
    wait_until(
        c,
        &format!("{} === 'inactive'", row_status(&pax.device_id)),
        "the new terminal",
    )
    .await;

    // --- a wrong code.
    let wrong = if code == "ZZZZZZ" { "YYYYYY" } else { "ZZZZZZ" };
    let msg = enter_code(c, wrong).await;
    assert!(msg.starts_with("Code not found"), "{msg}");

    // --- an expired code; the device then shows a fresh one.
    post(format!(
        "{sb_url}/sandbox/devices/{}/expire-code",
        pax.device_id
    ))
    .await;
    let msg = enter_code(c, &code).await;
    assert!(msg.starts_with("Code expired"), "{msg}");
    let code = start_device_showing_code(sb_url).await;

    // --- a terminal of another merchant: refused, and never listed.
    let foreign = provision_foreign_device(sb_url, "POS-0BADC0DE").await;
    let foreign_code = show_code(sb_url, &foreign).await;
    let msg = enter_code(c, &foreign_code).await;
    assert!(
        msg.starts_with("This terminal belongs to another merchant"),
        "{msg}"
    );

    // --- two more of the merchant's terminals, for a realistic list: one being set up, one
    // still showing its code.
    let verifone_code = show_code(sb_url, &verifone).await;
    post(format!(
        "{sb_url}/sandbox/devices/{}/claim",
        verifone.device_id
    ))
    .await;
    show_code(sb_url, &sunmi).await;
    let msg = enter_code(c, &verifone_code).await;
    assert!(msg.starts_with("Code already used"), "{msg}");

    // --- the real claim, typed sloppily: the page normalises it.
    let msg = enter_code(c, &sloppy(&code)).await;
    assert!(msg.starts_with("Terminal added"), "{msg}");
    assert!(msg.contains(&pax.device_id), "{msg}");
    wait_until(
        c,
        &format!("{} === 'claimed'", row_status(&pax.device_id)),
        "claimed",
    )
    .await;

    // --- the device finishes by itself: attest, keys, activate. The list turns activated.
    let keys = finish_activation(sb_url, &pax).await;
    wait_until(
        c,
        &format!("{} === 'activated'", row_status(&pax.device_id)),
        "activated",
    )
    .await;
    wait_until(
        c,
        &format!("{} === 'claimed'", row_status(&verifone.device_id)),
        "verifone",
    )
    .await;
    wait_until(
        c,
        &format!("{} === 'inactive'", row_status(&sunmi.device_id)),
        "sunmi",
    )
    .await;
    let listed = js(
        c,
        "return [...document.querySelectorAll('#terminal-rows > tr.terminal-row')].map(r => r.dataset.deviceId);",
    )
    .await;
    assert_eq!(
        listed,
        json!([verifone.device_id, pax.device_id, sunmi.device_id]),
        "only the merchant's terminals, in id order"
    );
    let row = text_of(c, &format!("tr[data-device-id=\"{}\"]", pax.device_id)).await;
    assert!(row.contains("PAX-A920") && row.contains("TID-"), "{row}");
    assert_eq!(text_of(c, "#count-activated").await, "1");
    assert_eq!(text_of(c, "#count-claimed").await, "1");
    assert_eq!(text_of(c, "#count-inactive").await, "1");
    // Only the activated terminal has a payments panel.
    assert_eq!(
        js(
            c,
            "return [...document.querySelectorAll('#terminal-rows > tr.payments-row')].length;"
        )
        .await,
        json!(1)
    );

    // --- the activated terminal takes payments; the portal shows them and settles them.
    amounts_are_exact(c).await;
    let till = Till::open(sb_url, &pax, keys).await;
    payments_loop(c, &till).await;

    // --- the picture for the README: a good demo state (three terminals, one with payments
    // settled and refunded, the settle messages).
    js(
        c,
        "document.querySelectorAll('.is-changed').forEach(r => r.classList.remove('is-changed')); \
           document.querySelectorAll('.settle-msg').forEach(m => m.replaceChildren()); \
           document.activeElement.blur();",
    )
    .await;
    set_viewport(c, WIDTH, SHOT_HEIGHT).await;
    let png = c.screenshot().await.unwrap();
    assert_eq!(png_size(&png), (WIDTH, SHOT_HEIGHT));
    set_viewport(c, WIDTH, HEIGHT).await;
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("portal.png");
    std::fs::write(&tmp, &png).unwrap();
    if std::env::var_os("POSEMU_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/portal.png");
        std::fs::create_dir_all(docs.parent().unwrap()).unwrap();
        std::fs::write(&docs, &png).unwrap();
    }

    // --- past 20 payments, the panel counts the rest.
    payments_are_bounded(c, &till).await;
    payment_panels_are_capped(c, sb_url).await;

    // --- phone width: nothing wider than the screen; the list becomes cards.
    set_viewport(c, 390, 844).await;
    let overflow = js(
        c,
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
    )
    .await;
    assert_eq!(overflow, json!(0), "horizontal scrolling at phone width");
    assert_eq!(
        js(
            c,
            "return getComputedStyle(document.querySelector('.terminals > thead')).display;"
        )
        .await,
        "none"
    );
    assert_eq!(
        js(
            c,
            "return getComputedStyle(document.querySelector('.payments-table thead')).display;"
        )
        .await,
        "none"
    );
    save_for_review(c, "portal-phone.png").await;
    js(c, "document.querySelector('.list-card').scrollIntoView();").await;
    save_for_review(c, "portal-phone-list.png").await;
    js(c, "document.querySelector('.payments').scrollIntoView();").await;
    save_for_review(c, "portal-phone-payments.png").await;

    // --- sign out, and the link from a terminal's QR code: the code is filled in.
    c.find(Locator::Id("sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        c,
        "!document.getElementById('signin-view').hidden",
        "the sign-in view",
    )
    .await;
    c.goto(&format!("{sb_url}/portal?code=k7m-3np"))
        .await
        .unwrap();
    let code_field = c.find(Locator::Id("pairing-code")).await.unwrap();
    assert_eq!(
        code_field.prop("value").await.unwrap().as_deref(),
        Some("K7M3NP")
    );
    assert_eq!(text_of(c, "#signin-code").await, "K7M3NP");
    set_viewport(c, WIDTH, HEIGHT).await;
    save_for_review(c, "portal-signin.png").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merchant_adds_a_terminal_in_headless_chromium() {
    let chromium = find_binary("POSEMU_CHROMIUM", &["chromium", "chromium-browser"]);
    let chromedriver = find_binary("POSEMU_CHROMEDRIVER", &["chromedriver"]);
    let tmp = tempfile::tempdir().unwrap();
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let driver = ChromeDriver::spawn(&chromedriver, &tmp.path().join("chromedriver.log")).await;
    let client = browser(&driver, &chromium, &tmp.path().join("profile")).await;

    // Run the scenario on its own task so that a failed assertion still closes the browser.
    let (c, url) = (client.clone(), sb.url());
    let outcome = tokio::spawn(async move { scenario(&c, &url).await }).await;
    let _ = client.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
