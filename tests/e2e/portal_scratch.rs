//! SCRATCH (not committed): the payments UI against a mocked fetch, for screenshots.
use std::path::Path;
use std::time::Duration;

use crate::portal_browser::{browser, find_binary, js, wait_until, ChromeDriver};
use crate::portal_support::*;
use fantoccini::key::Key;
use fantoccini::Locator;
use posemu_sandbox::{Sandbox, SandboxConfig};

const MOCK: &str = r#"
const ch = (id, status, settle, total, pan, brand, extra) => Object.assign({
  charge_id: id, terminal_id: 'T', status, amount: {value: total, currency: 'EUR'}, tip: {value: '0', currency: 'EUR'},
  total: {value: total, currency: 'EUR'}, approved_amount: status === 'declined' ? null : {value: total, currency: 'EUR'},
  partial_approval: false, refunded_amount: {value: '0', currency: 'EUR'}, card: {brand, masked_pan: pan, last4: pan.slice(-4)},
  decline_code: null, settlement: {status: settle, batch_id: null, settled_at: settle === 'settled' ? '2026-12-04T18:00:00Z' : null},
  created_at: new Date().toISOString().slice(0,19) + 'Z', cancelled_at: null }, extra || {});
const charges = [
  ch('ch_5', 'approved', 'pending', '1650', '424242******4242', 'visa', {tip: {value: '150', currency: 'EUR'}, amount: {value: '1500', currency: 'EUR'}}),
  ch('ch_4', 'declined', 'none', '2000', '400000******0002', 'visa', {decline_code: 'do_not_honor'}),
  ch('ch_3', 'partially_refunded', 'settled', '4200', '555555******4444', 'mastercard', {refunded_amount: {value: '1000', currency: 'EUR'}}),
  ch('ch_2', 'refunded', 'settled', '990', '378282*****0005', 'amex', {refunded_amount: {value: '990', currency: 'EUR'}}),
  ch('ch_1', 'cancelled', 'none', '5', '601111******1117', 'discover'),
  ch('ch_0', 'approved', 'pending', '1000', '424242******4242', 'visa', {partial_approval: true, approved_amount: {value: '500', currency: 'EUR'}}),
];
for (let i = 0; i < 17; i++) charges.push(ch('ch_x' + i, 'approved', 'settled', '100', '424242******4242', 'visa'));
const orig = window.fetch;
window.fetch = async (path, opts) => {
  if (/^\/sandbox\/terminals\/.*\/charges$/.test(path)) return new Response(JSON.stringify({terminal_id: 'T', charges}), {status: 200});
  if (path === '/sandbox/settle') return new Response(JSON.stringify({settled_at: 'x', batches: [{batch_id: 'bat_ABCDEFGHIJKLMNOPQRSTUVWX', terminal_id: 'T', charge_ids: ['ch_5'], total: {value: '1650', currency: 'EUR'}}]}), {status: 200});
  return orig(path, opts);
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_payments_ui() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let url = sb.url();
    let (c, _guard) = browser_for_scratch().await;
    let pax = default_device();
    show_code(&url, &pax).await;
    reqwest::Client::new()
        .post(format!("{url}/sandbox/devices/{}/claim", pax.device_id))
        .send()
        .await
        .unwrap();
    finish_activation(&url, &pax).await;
    let v = profile("verifone-v400c");
    show_code(&url, &v).await;
    c.goto(&format!("{url}/portal")).await.unwrap();
    c.find(Locator::Id("client-secret"))
        .await
        .unwrap()
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    wait_until(&c, "!document.getElementById('app-view').hidden", "app").await;
    js(&c, "window.cspViolations = []; document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));").await;
    js(&c, "document.body.setAttribute('style', 'color: red');").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!(
        "violations {}",
        js(&c, "return window.cspViolations;").await
    );
    js(&c, MOCK).await;
    wait_until(&c, "document.querySelector('tr.payment')", "payments").await;
    c.find(Locator::Css(".settle-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(&c, "document.querySelector('.settle-msg .alert')", "msg").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    js(&c, "document.body.style.zoom = 1;").await;
    std::fs::write(
        dir.join("scratch-desktop.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
    js(&c, "document.querySelector('.payments').scrollIntoView();").await;
    std::fs::write(
        dir.join("scratch-desktop2.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
    c.set_window_size(390, 844).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let o = js(
        &c,
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
    )
    .await;
    println!("overflow {o}");
    js(&c, "document.querySelector('.payments').scrollIntoView();").await;
    std::fs::write(dir.join("scratch-phone.png"), c.screenshot().await.unwrap()).unwrap();
    js(&c, "window.scrollBy(0, 700);").await;
    std::fs::write(
        dir.join("scratch-phone2.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
    let _ = c.close().await;
}

pub struct ScratchGuard(ChromeDriver, tempfile::TempDir);
pub async fn browser_for_scratch() -> (fantoccini::Client, ScratchGuard) {
    let chromium = find_binary("POSEMU_CHROMIUM", &["chromium", "chromium-browser"]);
    let chromedriver = find_binary("POSEMU_CHROMEDRIVER", &["chromedriver"]);
    let tmp = tempfile::tempdir().unwrap();
    let driver = ChromeDriver::spawn(&chromedriver, &tmp.path().join("chromedriver.log")).await;
    let client = browser(&driver, &chromium, &tmp.path().join("profile")).await;
    (client, ScratchGuard(driver, tmp))
}
