//! Payments over real HTTP (spec 7): the whole loop of a terminal, and the HMAC checks of 7.2
//! as a table with one row per spec row.

use reqwest::Method;
use serde_json::{json, Value};

use crate::payments_support::*;
use crate::sandbox_common::*;
use posemu_protocol::payments::{body_sha256, sign, string_to_sign};

fn is_base62_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|t| t.len() == 24 && t.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_charges_settles_refunds_and_cancels() {
    let env = start().await;
    let t = activate(&env, &pax()).await;
    assert!(t.tid.starts_with("TID-") && t.mac_key_id.starts_with("hmac-key-"));
    env.advance_secs(30);

    // The spec's example charge (7.13), with a fresh IV, nonce and signature.
    let example: Value = json!({"amount":{"value":"1500","currency":"EUR"},"tip":{"value":"150","currency":"EUR"},
        "entry_mode":"chip","card":{"pan":"4242424242424242","exp_month":12,"exp_year":2030},"reference":"ORDER-1001"});
    let r = t
        .charge(&env, &example, Some("0f8fad5b-d9cb-469f-a165-70867728950e"))
        .await;
    assert!(r.headers().get("idempotent-replayed").is_none());
    let c = t.open_ok(r).await;
    let id = c["charge_id"].as_str().unwrap().to_string();
    assert!(is_base62_id(&id, "ch_"), "{id}");
    let auth = c["auth_code"].as_str().unwrap();
    assert!(
        auth.len() == 6
            && auth
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    );
    let rrn = c["gateway"]["rrn"].as_str().unwrap();
    assert!(
        rrn.len() == 12 && rrn.bytes().all(|b| b.is_ascii_digit()),
        "{rrn}"
    );
    let eur = |v: &str| json!({"value": v, "currency": "EUR"});
    assert_eq!(
        c,
        json!({"charge_id": id, "terminal_id": t.tid, "merchant_id": "550e8400-e29b-41d4-a716-446655440000",
            "status": "approved", "amount": eur("1500"), "tip": eur("150"), "total": eur("1650"),
            "approved_amount": eur("1650"), "partial_approval": false, "refunded_amount": eur("0"),
            "entry_mode": "chip", "card": {"brand": "visa", "masked_pan": "424242******4242", "last4": "4242"},
            "cvm": "none", "auth_code": auth, "decline_code": null, "reference": "ORDER-1001",
            "gateway": {"acquirer": "posemu-sandbox", "response_code": "00", "rrn": rrn, "stan": "000001", "pos_entry_mode": "05"},
            "settlement": {"status": "pending", "batch_id": null, "settled_at": null},
            "refunds": [], "created_at": "2025-12-13T14:26:00Z", "cancelled_at": null})
    );
    assert_eq!(sandbox_charge(&env, &id).await, c);

    // A second charge takes the next STAN and another RRN; it is cancelled, twice.
    let c2 = t.charge_ok(&env, &plain("2000", "5555555555554444")).await;
    assert_eq!(c2["gateway"]["stan"], "000002");
    assert_eq!(c2["gateway"]["pos_entry_mode"], "90");
    assert_eq!(c2["card"]["brand"], "mastercard");
    assert_ne!(c2["gateway"]["rrn"], c["gateway"]["rrn"]);
    let id2 = c2["charge_id"].as_str().unwrap().to_string();
    env.advance_secs(10);
    let x = t.open_ok(t.cancel(&env, &id2).await).await;
    assert_eq!(x["status"], "cancelled");
    assert_eq!(x["settlement"]["status"], "none");
    assert_eq!(x["cancelled_at"], "2025-12-13T14:26:10Z");
    env.advance_secs(10);
    let again = t
        .open_ok(
            t.signed(&env, &format!("/pos/charge/{id2}/reverse"), Vec::new())
                .send(&env)
                .await,
        )
        .await;
    assert_eq!(again, x, "a cancelled charge answers the same object again");

    // Refund before settlement: 409; settle; refunds in two parts.
    expect_error(
        Ok(t.refund(&env, &id, "500").await),
        409,
        "Charge is not settled; cancel it instead",
        Some(json!({"charge_id": id, "settlement_status": "pending"})),
    )
    .await;
    let s = ok_json(settle(&env, None).await).await;
    let batch = s["batches"][0]["batch_id"].as_str().unwrap().to_string();
    assert!(is_base62_id(&batch, "bat_"));
    assert_eq!(
        s,
        json!({"settled_at": "2025-12-13T14:26:20Z", "batches": [{"batch_id": batch,
            "terminal_id": t.tid, "charge_ids": [id], "total": eur("1650")}]})
    );
    expect_error(
        Ok(t.cancel(&env, &id).await),
        409,
        "Charge is already settled; refund it instead",
        Some(json!({"charge_id": id, "settled_at": "2025-12-13T14:26:20Z"})),
    )
    .await;
    env.advance_secs(60);
    let r1 = t
        .open_ok(
            t.refund_req(
                &env,
                &id,
                &json!({"amount": {"value": "500"}, "reason": "duplicate"}),
            )
            .send(&env)
            .await,
        )
        .await;
    let rid = r1["refund_id"].as_str().unwrap().to_string();
    assert!(is_base62_id(&rid, "re_"));
    assert_eq!(r1["status"], "succeeded");
    assert_eq!(r1["amount"], eur("500"));
    assert_eq!(r1["reason"], "duplicate");
    assert_eq!(r1["created_at"], "2025-12-13T14:27:20Z");
    assert_eq!(r1["charge"]["status"], "partially_refunded");
    assert_eq!(r1["charge"]["refunded_amount"], eur("500"));
    assert_eq!(
        r1["charge"]["refunds"],
        json!([{"refund_id": rid, "charge_id": id, "status": "succeeded", "amount": eur("500"),
                "reason": "duplicate", "created_at": "2025-12-13T14:27:20Z"}])
    );
    expect_error(
        Ok(t.refund(&env, &id, "1151").await),
        422,
        "Refund amount exceeds remaining amount",
        Some(json!({"charge_id": id, "requested": "1151", "remaining": "1150"})),
    )
    .await;
    let r2 = t.open_ok(t.refund(&env, &id, "1150").await).await;
    assert_eq!(r2["reason"], "requested_by_customer");
    assert_eq!(r2["charge"]["status"], "refunded");
    assert_eq!(r2["charge"]["refunded_amount"], eur("1650"));
    assert_eq!(r2["charge"]["refunds"].as_array().unwrap().len(), 2);
    assert_eq!(r2["charge"]["settlement"]["status"], "settled");
    expect_error(
        Ok(t.refund(&env, &id, "1").await),
        409,
        "Charge is already fully refunded",
        Some(json!({"charge_id": id, "status": "refunded"})),
    )
    .await;

    // The helper lists newest first.
    let list = ok_json(
        env.req(
            Method::GET,
            &format!("/sandbox/terminals/{}/charges", t.tid),
        )
        .send()
        .await,
    )
    .await;
    assert_eq!(list["terminal_id"], t.tid);
    let ids: Vec<&str> = list["charges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["charge_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id2.as_str(), id.as_str()]);
    assert_eq!(list["charges"][1], r2["charge"]);
}

/// One row of spec 7.2's table: a change to a valid charge request, and the answer.
struct Row {
    spec_row: u8,
    what: &'static str,
    change: Box<dyn Fn(Signed) -> Signed>,
    status: u16,
    message: &'static str,
    details: Option<Value>,
}

fn row(
    spec_row: u8,
    what: &'static str,
    change: impl Fn(Signed) -> Signed + 'static,
    status: u16,
    message: &'static str,
    details: Option<Value>,
) -> Row {
    Row {
        spec_row,
        what,
        change: Box::new(change),
        status,
        message,
        details,
    }
}

fn drop_header(name: &'static str) -> impl Fn(Signed) -> Signed {
    move |s| s.set(name, None)
}

fn put(name: &'static str, value: &'static str) -> impl Fn(Signed) -> Signed {
    move |s| s.set(name, Some(value))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_checks_answer_in_the_spec_order() {
    let env = start().await;
    let t = activate(&env, &pax()).await;
    let ua = json!({"header": "User-Agent", "expected": "Viopay-POS/{version} ({OS}; {model})"});
    let ct = json!({"header": "X-Client-Type", "expected": "pos"});
    let big = vec![b' '; 64 * 1024 + 1];
    let rows = vec![
        row(
            1,
            "no terminal id",
            drop_header("X-Terminal-Id"),
            400,
            "X-Terminal-Id header is required",
            None,
        ),
        row(
            1,
            "terminal id first",
            |s| s.set("X-Terminal-Id", None).set("User-Agent", None),
            400,
            "X-Terminal-Id header is required",
            None,
        ),
        row(
            2,
            "terminal id with a space",
            put("X-Terminal-Id", "TID 004812"),
            400,
            "X-Terminal-Id header is invalid",
            Some(json!({"header": "X-Terminal-Id", "expected": "[A-Za-z0-9_-]{1,64}"})),
        ),
        row(
            2,
            "terminal id of 65",
            |s| s.set("X-Terminal-Id", Some(&"T".repeat(65))),
            400,
            "X-Terminal-Id header is invalid",
            Some(json!({"header": "X-Terminal-Id", "expected": "[A-Za-z0-9_-]{1,64}"})),
        ),
        row(
            3,
            "no User-Agent",
            drop_header("User-Agent"),
            400,
            "User-Agent header is required",
            None,
        ),
        row(
            3,
            "bad User-Agent",
            put("User-Agent", "curl/8.0"),
            400,
            "User-Agent header is invalid",
            Some(ua),
        ),
        row(
            3,
            "no X-Client-Type",
            drop_header("X-Client-Type"),
            400,
            "X-Client-Type header is required",
            None,
        ),
        row(
            3,
            "X-Client-Type web",
            put("X-Client-Type", "web"),
            400,
            "X-Client-Type header is invalid",
            Some(ct),
        ),
        row(
            3,
            "client type before the terminal lookup",
            |s| {
                s.set("X-Client-Type", None)
                    .set("X-Terminal-Id", Some("TERM-001"))
            },
            400,
            "X-Client-Type header is required",
            None,
        ),
        row(
            4,
            "unknown terminal",
            put("X-Terminal-Id", "TERM-001"),
            404,
            "Terminal not found",
            Some(json!({"terminal_id": "TERM-001"})),
        ),
        row(
            4,
            "terminal before the signature headers",
            |s| {
                s.set("X-Terminal-Id", Some("TID-0048121"))
                    .set("X-Key-Id", None)
            },
            404,
            "Terminal not found",
            Some(json!({"terminal_id": "TID-0048121"})),
        ),
        row(
            5,
            "no key id",
            drop_header("X-Key-Id"),
            400,
            "X-Key-Id header is required",
            None,
        ),
        row(
            5,
            "no timestamp",
            drop_header("X-Timestamp"),
            400,
            "X-Timestamp header is required",
            None,
        ),
        row(
            5,
            "no nonce",
            drop_header("X-Nonce"),
            400,
            "X-Nonce header is required",
            None,
        ),
        row(
            5,
            "no signature",
            drop_header("X-Signature"),
            400,
            "X-Signature header is required",
            None,
        ),
        row(
            5,
            "missing before malformed",
            |s| {
                s.set("X-Timestamp", Some("yesterday"))
                    .set("X-Signature", None)
            },
            400,
            "X-Signature header is required",
            None,
        ),
        row(
            6,
            "timestamp not RFC 3339",
            put("X-Timestamp", "2025-12-13 14:30:00"),
            400,
            "X-Timestamp header is invalid",
            None,
        ),
        row(
            6,
            "nonce of 11",
            put("X-Nonce", "abcdefghijk"),
            400,
            "X-Nonce header is invalid",
            None,
        ),
        row(
            6,
            "nonce with a dash",
            put("X-Nonce", "abcdef-ghijkl"),
            400,
            "X-Nonce header is invalid",
            None,
        ),
        row(
            6,
            "signature v2",
            put(
                "X-Signature",
                "v2=rbnorETwJqXIrO8qOQZdD0am8TVEuas8ykET2r2lMG4=",
            ),
            400,
            "X-Signature header is invalid",
            None,
        ),
        row(
            6,
            "signature of 3 bytes",
            put("X-Signature", "v1=YWJj"),
            400,
            "X-Signature header is invalid",
            None,
        ),
        row(
            6,
            "nonce before signature",
            |s| s.set("X-Nonce", Some("x")).set("X-Signature", Some("v1=!")),
            400,
            "X-Nonce header is invalid",
            None,
        ),
        row(
            7,
            "body over 64 KiB",
            move |s| Signed {
                body: big.clone(),
                ..s
            },
            413,
            "Request body too large",
            Some(json!({"limit_bytes": 65536})),
        ),
        row(
            8,
            "another key id",
            put("X-Key-Id", "hmac-key-2025-01"),
            401,
            "Unknown or revoked MAC key",
            None,
        ),
        row(
            8,
            "the identity key id",
            put("X-Key-Id", "device-id-key-2025-01"),
            401,
            "Unknown or revoked MAC key",
            None,
        ),
        row(
            10,
            "wrong signature",
            put(
                "X-Signature",
                "v1=rbnorETwJqXIrO8qOQZdD0am8TVEuas8ykET2r2lMG4=",
            ),
            401,
            "Invalid signature",
            None,
        ),
        row(
            10,
            "body changed after signing",
            |s| {
                let mut b = s.body.clone();
                b.push(b' ');
                Signed { body: b, ..s }
            },
            401,
            "Invalid signature",
            None,
        ),
        row(
            10,
            "path changed after signing",
            |s| Signed {
                path: "/pos/charge/ch_x/refund".into(),
                ..s
            },
            401,
            "Invalid signature",
            None,
        ),
        row(
            10,
            "timestamp re-formatted after signing",
            |s| {
                let ts = s.header("X-Timestamp").unwrap().replace('Z', "+00:00");
                s.set("X-Timestamp", Some(&ts))
            },
            401,
            "Invalid signature",
            None,
        ),
    ];
    for r in rows {
        let req = (r.change)(t.charge_req(&env, &plain("1500", VISA), None));
        let (_, _) = expect_error(
            Ok(req.send(&env).await),
            r.status,
            r.message,
            r.details.clone(),
        )
        .await;
        let _ = (r.spec_row, r.what);
    }

    // 9: the window is 5 min either way, inclusive, in milliseconds of server time.
    let path = "/pos/charge";
    for (offset, ok) in [(-301i64, false), (-300, true), (300, true), (301, false)] {
        let ts = posemu_protocol::clock::rfc3339(
            posemu_protocol::clock::Clock::now(&env.clock) + chrono::Duration::seconds(offset),
        );
        let s = t.signed_at(path, t.seal(&plain("1500", VISA)), &ts, &nonce());
        let r = s.send(&env).await;
        if ok {
            t.open_ok(r).await;
        } else {
            expect_error(
                Ok(r),
                401,
                "Timestamp outside allowed window",
                Some(json!({"server_time": env.now()})),
            )
            .await;
        }
    }
    // the window is checked before the signature: a wrong signature far off is a window error
    let far = t
        .signed_at(
            path,
            t.seal(&plain("1500", VISA)),
            "2025-12-13T13:00:00Z",
            &nonce(),
        )
        .set(
            "X-Signature",
            Some("v1=rbnorETwJqXIrO8qOQZdD0am8TVEuas8ykET2r2lMG4="),
        );
    expect_error(
        Ok(far.send(&env).await),
        401,
        "Timestamp outside allowed window",
        Some(json!({"server_time": env.now()})),
    )
    .await;

    // 11: a nonce is remembered for 10 min once its signature verified, even when a later
    // check fails; a failed signature does not burn it.
    let n = nonce();
    let bad = t
        .signed_at(path, t.seal(&plain("1500", VISA)), &env.now(), &n)
        .set(
            "X-Signature",
            Some("v1=rbnorETwJqXIrO8qOQZdD0am8TVEuas8ykET2r2lMG4="),
        );
    expect_error(Ok(bad.send(&env).await), 401, "Invalid signature", None).await;
    let first = t.signed_at(path, b"not json".to_vec(), &env.now(), &n);
    expect_error(
        Ok(first.send(&env).await),
        400,
        "Invalid request body",
        Some(json!({"reason": "expected a TR31-DATA envelope"})),
    )
    .await;
    let replay = t.signed_at(path, t.seal(&plain("1500", VISA)), &env.now(), &n);
    expect_error(Ok(replay.send(&env).await), 401, "Nonce already used", None).await;
    env.advance_secs(599);
    let replay = t.signed_at(path, t.seal(&plain("1500", VISA)), &env.now(), &n);
    expect_error(Ok(replay.send(&env).await), 401, "Nonce already used", None).await;
    env.advance_secs(1);
    let replay = t.signed_at(path, t.seal(&plain("1500", VISA)), &env.now(), &n);
    t.open_ok(replay.send(&env).await).await;

    // 12: a claimed device with keys is found by its terminal id, and is not activated.
    let other = profile_dev("sunmi-p2");
    let (_, keys, mac_key_id, tid) = keyed(&env, &other).await;
    let claimed = Term {
        dev: other,
        tid,
        mac_key_id,
        keys,
    };
    expect_error(
        Ok(claimed.charge(&env, &plain("1500", VISA), None).await),
        409,
        "Device is not activated",
        Some(json!({"device_status": "claimed"})),
    )
    .await;
    let list = ok_json(
        env.req(
            Method::GET,
            &format!("/sandbox/terminals/{}/charges", claimed.tid),
        )
        .send()
        .await,
    )
    .await;
    assert_eq!(list, json!({"terminal_id": claimed.tid, "charges": []}));
    // and its MAC key is not the activated terminal's (row 8 is per device)
    let cross = t
        .charge_req(&env, &plain("1500", VISA), None)
        .set("X-Terminal-Id", Some(&claimed.tid));
    expect_error(
        Ok(cross.send(&env).await),
        401,
        "Unknown or revoked MAC key",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_signs_the_empty_body_and_its_path() {
    let env = start().await;
    let t = activate(&env, &pax()).await;
    let c = t.charge_ok(&env, &plain("1500", VISA)).await;
    let id = c["charge_id"].as_str().unwrap();
    // a signature of /cancel does not serve /reverse, nor another charge
    let s = t.signed(&env, &format!("/pos/charge/{id}/cancel"), Vec::new());
    let moved = Signed {
        path: format!("/pos/charge/{id}/reverse"),
        ..s.clone()
    };
    expect_error(Ok(moved.send(&env).await), 401, "Invalid signature", None).await;
    assert_eq!(
        string_to_sign(&t.tid, &t.mac_key_id, "t", "n", "POST", &s.path, b"")
            .lines()
            .last(),
        Some(body_sha256(b"").as_str())
    );
    // a body on cancel is ignored but signed
    let with_body = t.signed(
        &env,
        &format!("/pos/charge/{id}/cancel"),
        b"{\"x\":1}".to_vec(),
    );
    let x = t.open_ok(with_body.send(&env).await).await;
    assert_eq!(x["status"], "cancelled");
    let unsigned_body = Signed {
        body: b"{}".to_vec(),
        ..t.signed(&env, &format!("/pos/charge/{id}/cancel"), Vec::new())
    };
    expect_error(
        Ok(unsigned_body.send(&env).await),
        401,
        "Invalid signature",
        None,
    )
    .await;
    let _ = sign(&t.keys.mac, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_log_shows_the_string_the_sandbox_verified() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let env = start_with(|c| c.request_log = Some(tx)).await;
    let t = activate(&env, &pax()).await;
    while rx.try_recv().is_ok() {}
    let s = t.charge_req(&env, &plain("1500", VISA), None).set(
        "X-Signature",
        Some("v1=rbnorETwJqXIrO8qOQZdD0am8TVEuas8ykET2r2lMG4="),
    );
    let r = s.send(&env).await;
    let text = r.text().await.unwrap();
    let line = rx.recv().await.expect("a log line");
    let expected = string_to_sign(
        &t.tid,
        &t.mac_key_id,
        s.header("X-Timestamp").unwrap(),
        s.header("X-Nonce").unwrap(),
        "POST",
        "/pos/charge",
        &s.body,
    );
    assert_eq!(line.signed.as_deref(), Some(expected.as_str()));
    assert_eq!(line.device_id.as_deref(), Some(t.tid.as_str()));
    assert_eq!(line.status, 401);
    let shown = line.to_string();
    assert!(shown.contains(&format!("signed={expected:?}")), "{shown}");
    assert!(
        !text.contains(&body_sha256(&s.body)),
        "never in the response: {text}"
    );
    assert!(!shown.contains(VISA), "no PAN in the log: {shown}");
    // other requests have no string
    env.bootstrap(&t.dev).await;
    assert_eq!(rx.recv().await.unwrap().signed, None);
}
