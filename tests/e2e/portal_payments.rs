//! The portal's payments in headless Chromium, as stages of the browser scenario in
//! `portal_browser.rs` (one browser, one sandbox): the activated terminal takes sales over
//! plain HTTP (spec 7: the plaintext sealed under the MSK, signed with the MAC key), the
//! portal lists each payment live under the terminal, "Settle now" settles them, refunds made
//! on the terminal show as refunded, and the list stays bounded.

use crate::portal_browser::{js, text_of, wait_until};
use crate::portal_support::{default_device, finish_activation, ok_json, show_code, PaymentKeys};
use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use posemu_profile::Profile;
use posemu_protocol::clock::rfc3339;
use posemu_protocol::envelope::{open, seal_single, Envelope};
use posemu_protocol::headers::{USER_AGENT, X_CLIENT_TYPE};
use posemu_protocol::payments::{paths, SignedRequest};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Value};

/// The terminal's side of a sale, over plain HTTP: what a device does after activation.
pub struct Till {
    http: reqwest::Client,
    url: String,
    profile: Profile,
    keys: PaymentKeys,
    pub terminal_id: String,
}

impl Till {
    /// `p` activated with `keys`; its terminal id is read from the sandbox's device list.
    pub async fn open(url: &str, p: &Profile, keys: PaymentKeys) -> Till {
        let http = reqwest::Client::new();
        let r = http
            .get(format!("{url}/sandbox/devices"))
            .send()
            .await
            .expect("device list request");
        let list = ok_json(r, "device list").await;
        let terminal_id = list["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .find(|d| d["device_id"] == p.device_id.as_str())
            .and_then(|d| d["terminal_id"].as_str())
            .unwrap_or_else(|| panic!("{} has no terminal id in {list}", p.device_id))
            .to_string();
        Till {
            http,
            url: url.to_string(),
            profile: p.clone(),
            keys,
            terminal_id,
        }
    }

    /// Seals `plain` under the MSK, signs the envelope as sent, POSTs it to `path`, and opens
    /// the 200 answer.
    async fn send(&self, path: &str, plain: &Value) -> Value {
        let plain = serde_json::to_vec(plain).expect("plaintext serializes");
        let envelope = seal_single(&self.keys.msk, &plain, &mut rand::rng());
        let body = serde_json::to_vec(&envelope).expect("envelope serializes");
        let timestamp = rfc3339(chrono::Utc::now());
        let nonce = Alphanumeric.sample_string(&mut rand::rng(), 24);
        let signed = SignedRequest {
            terminal_id: &self.terminal_id,
            key_id: &self.keys.mac_key_id,
            timestamp: &timestamp,
            nonce: &nonce,
            path,
            body: &body,
        };
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .header(USER_AGENT, self.profile.user_agent())
            .header(X_CLIENT_TYPE, "pos")
            .header("Content-Type", "application/json");
        for (name, value) in signed.headers(&self.keys.mac) {
            req = req.header(name, value);
        }
        let r = req.body(body).send().await.expect("payment request");
        let answer = ok_json(r, path).await;
        let envelope = Envelope::from_value(answer).expect("an envelope answer");
        let plain = open(&self.keys.msk, &envelope).expect("the answer opens under the MSK");
        serde_json::from_slice(&plain).expect("the answer's plaintext is JSON")
    }

    /// A card sale in EUR; returns the charge object.
    pub async fn charge(&self, pan: &str, amount: &str, tip: Option<&str>, entry: &str) -> Value {
        let mut plain = json!({
            "amount": {"value": amount, "currency": "EUR"},
            "entry_mode": entry,
            "card": {"pan": pan, "exp_month": 12, "exp_year": 2030},
        });
        if let Some(tip) = tip {
            plain["tip"] = json!({"value": tip, "currency": "EUR"});
        }
        self.send(paths::CHARGE, &plain).await
    }

    /// A refund made on the terminal; returns the charge object after it.
    pub async fn refund(&self, charge_id: &str, amount: &str) -> Value {
        let plain = json!({"amount": {"value": amount}});
        let answer = self.send(&paths::refund(charge_id), &plain).await;
        answer["charge"].clone()
    }
}

fn id_of(charge: &Value) -> String {
    charge["charge_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no charge_id in {charge}"))
        .to_string()
}

/// The CSS selector of `tid`'s payments panel row.
fn panel(tid: &str) -> String {
    format!("tr.payments-row[data-terminal-id=\"{tid}\"]")
}

fn payment(tid: &str, charge_id: &str) -> String {
    format!("{} tr.payment[data-charge-id=\"{charge_id}\"]", panel(tid))
}

/// Waits until the payment row's `data-{attr}` is `value`.
async fn wait_row(c: &Client, tid: &str, charge_id: &str, attr: &str, value: &str) {
    let sel = payment(tid, charge_id);
    wait_until(
        c,
        &format!("document.querySelector('{sel}')?.dataset.{attr} === '{value}'"),
        &format!("payment {charge_id} {attr} {value}"),
    )
    .await;
}

async fn wait_message(c: &Client, region: &str, title: &str) -> String {
    wait_until(
        c,
        &format!("document.querySelector('{region} .alert-title')?.textContent === '{title}'"),
        &format!("the message {title:?}"),
    )
    .await;
    text_of(c, region).await
}

async fn listed_charges(c: &Client, tid: &str) -> Value {
    js(
        c,
        &format!(
            "return [...document.querySelectorAll('{} tr.payment')].map(r => r.dataset.chargeId);",
            panel(tid)
        ),
    )
    .await
}

/// Amounts are moved by two places in the string, and added as BigInt: never as floats.
pub async fn amounts_are_exact(c: &Client) {
    let v = js(
        c,
        "const P = window.ViopayPayments; \
         return [P.major('0'), P.major('5'), P.major('007'), P.major('1650'), \
                 P.major('12345678901234567890'), P.major('-5'), P.major('1.5'), P.major(''), \
                 P.major(1650), P.money({value: '1650', currency: 'EUR'}), \
                 P.money({value: '100', currency: '<b>'}), P.money(null), \
                 P.sumByCurrency([{value: '9007199254740993', currency: 'EUR'}, \
                                  {value: '1', currency: 'EUR'}, {value: '250', currency: 'USD'}])];",
    )
    .await;
    assert_eq!(
        v,
        json!([
            "0.00",
            "0.05",
            "0.07",
            "16.50",
            "123456789012345678.90",
            null,
            null,
            null,
            null,
            "EUR 16.50",
            "??? 1.00",
            null,
            "EUR 90071992547409.94 + USD 2.50"
        ])
    );
}

/// The whole loop: sales appear live (pending), the focused "Settle now" survives polling and
/// settles them from the keyboard, refunds on the terminal show, "Settle all terminals".
pub async fn payments_loop(c: &Client, till: &Till) {
    let tid = &till.terminal_id;
    let p = panel(tid);
    // Anything the page's CSP blocks from here on (inline style or script) is recorded.
    js(
        c,
        "window.cspViolations = []; document.addEventListener('securitypolicyviolation', \
         (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));",
    )
    .await;
    wait_until(
        c,
        &format!("document.querySelector('{p} .payments-empty')?.hidden === false"),
        "the empty payments panel",
    )
    .await;
    assert!(text_of(c, &p).await.contains("No payments yet"));

    // --- a sale with a tip: EUR 15.00 + 1.50.
    let sale = till
        .charge("4242424242424242", "1500", Some("150"), "chip")
        .await;
    assert_eq!(sale["status"], "approved", "{sale}");
    let sale_id = id_of(&sale);
    wait_row(c, tid, &sale_id, "settlement", "pending").await;
    let row = text_of(c, &payment(tid, &sale_id)).await;
    for part in [
        "EUR 16.50",
        "incl. tip EUR 1.50",
        "Visa",
        "424242******4242",
        "Approved",
        "Pending",
    ] {
        assert!(row.contains(part), "{part:?} not in {row:?}");
    }
    assert!(!row.contains("4242424242424242"), "full PAN shown: {row}");

    // --- a decline, with its code and no settlement.
    let declined = till.charge("4000000000000002", "2000", None, "swipe").await;
    assert_eq!(declined["decline_code"], "do_not_honor", "{declined}");
    let declined_id = id_of(&declined);
    wait_row(c, tid, &declined_id, "status", "declined").await;
    let row = text_of(c, &payment(tid, &declined_id)).await;
    for part in ["EUR 20.00", "Declined", "do_not_honor", "\u{2014}"] {
        assert!(row.contains(part), "{part:?} not in {row:?}");
    }

    // --- the keyboard user's focus on "Settle now" survives the polled refresh that brings
    // the next sale.
    let button = format!("{p} .settle-button");
    js(c, &format!("document.querySelector('{button}').focus();")).await;
    let big = till.charge("5555555555554444", "4200", None, "swipe").await;
    let big_id = id_of(&big);
    wait_row(c, tid, &big_id, "settlement", "pending").await;
    assert_eq!(
        js(
            c,
            &format!("return document.activeElement === document.querySelector('{button}');")
        )
        .await,
        json!(true),
        "polling took the focus away from Settle now"
    );
    assert_eq!(
        listed_charges(c, tid).await,
        json!([big_id, declined_id, sale_id]),
        "newest first"
    );
    assert!(text_of(c, &format!("{p} .payments-note"))
        .await
        .contains("3 payments \u{b7} 2 to settle"));

    // --- Enter on the focused button settles this terminal: 16.50 + 42.00.
    c.active_element()
        .await
        .unwrap()
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    let msg = wait_message(c, &format!("{p} .settle-msg"), "Settled 2 payments").await;
    assert!(msg.contains("Total EUR 58.50"), "{msg}");
    assert!(msg.contains("batch bat_"), "{msg}");
    wait_row(c, tid, &sale_id, "settlement", "settled").await;
    wait_row(c, tid, &big_id, "settlement", "settled").await;
    assert_eq!(
        js(
            c,
            &format!(
                "return document.querySelector('{}').dataset.settlement;",
                payment(tid, &declined_id)
            )
        )
        .await,
        "none"
    );

    // --- refunds happen on the terminal; the portal shows them.
    let after = till.refund(&big_id, "1000").await;
    assert_eq!(after["status"], "partially_refunded", "{after}");
    let after = till.refund(&sale_id, "1650").await;
    assert_eq!(after["status"], "refunded", "{after}");
    wait_row(c, tid, &big_id, "status", "partially_refunded").await;
    wait_row(c, tid, &sale_id, "status", "refunded").await;
    let row = text_of(c, &payment(tid, &big_id)).await;
    assert!(
        row.contains("Partially refunded") && row.contains("EUR 10.00 refunded"),
        "{row}"
    );
    let row = text_of(c, &payment(tid, &sale_id)).await;
    assert!(
        row.contains("Refunded") && row.contains("EUR 16.50 refunded") && row.contains("Settled"),
        "{row}"
    );

    // --- nothing left to settle on this terminal.
    c.find(Locator::Css(&button))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let msg = wait_message(c, &format!("{p} .settle-msg"), "Nothing to settle").await;
    assert!(msg.contains(tid.as_str()), "{msg}");

    // --- one more sale, settled with "Settle all terminals".
    let last = till.charge("378282246310005", "990", None, "swipe").await;
    let last_id = id_of(&last);
    wait_row(c, tid, &last_id, "settlement", "pending").await;
    assert!(text_of(c, &payment(tid, &last_id))
        .await
        .contains("378282*****0005"));
    c.find(Locator::Id("settle-all"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let msg = wait_message(c, "#settle-all-msg", "Settled 1 payment").await;
    assert!(msg.contains("Total EUR 9.90"), "{msg}");
    assert!(msg.contains(&format!("1 batch ({tid})")), "{msg}");
    wait_row(c, tid, &last_id, "settlement", "settled").await;

    assert_eq!(
        js(c, "return window.cspViolations;").await,
        json!([]),
        "the page broke its Content-Security-Policy"
    );
}

/// The panel shows the newest 20 payments and counts the rest.
pub async fn payments_are_bounded(c: &Client, till: &Till) {
    let tid = &till.terminal_id;
    let before = listed_charges(c, tid).await.as_array().unwrap().len();
    assert_eq!(before, 4, "payments_loop leaves four payments");
    let mut newest = String::new();
    for i in 0..18u32 {
        let amount = format!("{}", 100 * (i + 1));
        newest = id_of(
            &till
                .charge("6011111111111117", &amount, None, "swipe")
                .await,
        );
    }
    let p = panel(tid);
    wait_until(
        c,
        &format!("document.querySelector('{p} .payments-more')?.textContent === 'and 2 earlier payments'"),
        "the count of earlier payments",
    )
    .await;
    let listed = listed_charges(c, tid).await;
    assert_eq!(listed.as_array().unwrap().len(), 20);
    assert_eq!(listed[0], json!(newest));
    assert!(text_of(c, &format!("{p} .payments-note"))
        .await
        .starts_with("22 payments"));
}

/// With more activated terminals than the page asks payments for (10 per poll), the most
/// recently active ones get panels and the list says so.
pub async fn payment_panels_are_capped(c: &Client, url: &str) {
    let http = reqwest::Client::new();
    for i in 0..10u32 {
        let mut p = default_device();
        p.device_id = format!("POS-0CA9{i:04X}");
        let r = http
            .post(format!("{url}/sandbox/devices"))
            .json(&json!({
                "device_id": p.device_id,
                "identity_key_id": p.key_id,
                "identity_secret_hex": hex::encode_upper(p.identity_secret),
                "zmk_hex": hex::encode_upper(p.zmk),
            }))
            .send()
            .await
            .expect("provision request");
        ok_json(r, "provision").await;
        show_code(url, &p).await;
        let r = http
            .post(format!("{url}/sandbox/devices/{}/claim", p.device_id))
            .send()
            .await
            .expect("claim request");
        ok_json(r, "claim").await;
        finish_activation(url, &p).await;
    }
    wait_until(
        c,
        "document.getElementById('count-activated').textContent === '11'",
        "eleven activated terminals",
    )
    .await;
    wait_until(
        c,
        "document.getElementById('list-note').textContent.endsWith('payments of the 10 most recently active')",
        "the note on the payments shown",
    )
    .await;
    assert_eq!(
        js(
            c,
            "return document.querySelectorAll('#terminal-rows > tr.payments-row').length;"
        )
        .await,
        json!(10)
    );
}
