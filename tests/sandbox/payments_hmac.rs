//! Payments over real HTTP: the HMAC checks of spec 7.2 as a table with one row per spec row,
//! and how cancel signs its empty body and its path.

use reqwest::Method;
use serde_json::{json, Value};

use crate::payments_support::*;
use crate::sandbox_common::*;
use posemu_protocol::payments::{body_sha256, sign, string_to_sign};

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
