//! Every vector of spec 7.13, plus the request checks of 7.3/7.6/7.8.

use super::validate::{
    charge_request, open_request_envelope, refund_request, BodyProblem, EnvelopeProblem, Reason,
};
use super::*;
use crate::crypto::{kcv, Key};
use crate::envelope::seal_single_with_iv;
use crate::tr31;

fn key(start: u8) -> Key {
    std::array::from_fn(|i| start + i as u8)
}

const PLAIN: &str = r#"{"amount":{"value":"1500","currency":"EUR"},"tip":{"value":"150","currency":"EUR"},"entry_mode":"chip","card":{"pan":"4242424242424242","exp_month":12,"exp_year":2030},"reference":"ORDER-1001"}"#;
const BODY: &str = r#"{"format":"TR31-DATA","ciphertext":"829A299C9D726AB3137185B1EF9F4E89AFE528657F92ECD0DDEB9D0590311A3EF0A0FD2BFCFE00842855B5848EBF8A1710E87B6454788E87005EADE3BB60FB2A7D0214B6C39A37932C5B6437D874D46A3B4B9388780AE20C7261F3BD620577AB7FD85A0B977585551E7F7887D32EA28E67CD975C70CEE8043A3828E0D4E78BC5A543A0DDA5C5B6BAE987378A97CD8F62C5128B7BCF1E39B01F4BEBDDC4AC94B118AB48CFCCB3EFA6185B949DF7AC4F9FD6670FFA7703B0B1F1EAE42E92BF75EB70A5EC5F568E80663D48B9ABB9AAFBF2","initialization_vector":"A0A1A2A3A4A5A6A7A8A9AAABACADAEAF","mode":"CBC","key_kcv":"377822"}"#;
const MAC_BLOCK: &str = "D0144M7HC00E0000FEAF7AC264F7A851AC19B07129849ADD1BDAEEC1E3341CD9D155C045AFEA6CD931CC62C39EF8580D79B5D92C5A84B369200FF1EFA3774B4F40F523FEB4D4162F";

fn vector_request() -> ChargeRequest {
    ChargeRequest {
        amount: Money::new(1500, "EUR"),
        tip: Some(Money::new(150, "EUR")),
        entry_mode: EntryMode::Chip,
        card: wire::CardData {
            pan: "4242424242424242".into(),
            exp_month: 12,
            exp_year: 2030,
        },
        pin_block: None,
        reference: Some("ORDER-1001".into()),
        allow_partial_approval: None,
    }
}

#[test]
fn kcvs() {
    assert_eq!(kcv(&key(0x00)), "377822");
    assert_eq!(kcv(&key(0x20)), "8210D0");
    assert_eq!(kcv(&key(0x40)), "7CF7A4");
}

#[test]
fn mac_key_block_unwraps_under_the_4_7_kbpk() {
    let kbpk: Key = hex::decode("00112233445566778899AABBCCDDEEFF".repeat(2))
        .unwrap()
        .try_into()
        .unwrap();
    let (h, k) = tr31::unwrap(&kbpk, MAC_BLOCK).unwrap();
    assert_eq!(h, tr31::Header::MAC);
    assert_eq!(k, key(0x20));
}

#[test]
fn charge_vector() {
    // the device's plaintext serializes to the spec's 193 bytes
    let plain = serde_json::to_string(&vector_request()).unwrap();
    assert_eq!(plain, PLAIN);
    assert_eq!(plain.len(), 193);
    let iv: [u8; 16] = std::array::from_fn(|i| 0xA0 + i as u8);
    let env = seal_single_with_iv(&key(0), plain.as_bytes(), &iv);
    let body = serde_json::to_string(&env).unwrap();
    assert_eq!(body, BODY);
    assert_eq!(body.len(), 545);
    assert_eq!(
        body_sha256(body.as_bytes()),
        "a696e31f57176355a42f308d08ed8250d1abfd1cbd04ad15db8c5905405fbffe"
    );
    let s = string_to_sign(
        "TID-004812",
        "hmac-key-2025-01",
        "2025-12-13T14:30:00Z",
        "chargenonce001",
        "POST",
        paths::CHARGE,
        body.as_bytes(),
    );
    assert_eq!(
        s,
        "TID-004812\nhmac-key-2025-01\n2025-12-13T14:30:00Z\nchargenonce001\nPOST\n/pos/charge\na696e31f57176355a42f308d08ed8250d1abfd1cbd04ad15db8c5905405fbffe"
    );
    let sig = sign(&key(0x20), &s);
    assert_eq!(sig, "v1=rbnorETwJqXIrO8qOQZdD0am8TVEuas8ykET2r2lMG4=");
    assert!(verify(&key(0x20), &s, &parse_signature(&sig).unwrap()));
    assert!(!verify(&key(0x21), &s, &parse_signature(&sig).unwrap()));
    let signed = SignedRequest {
        terminal_id: "TID-004812",
        key_id: "hmac-key-2025-01",
        timestamp: "2025-12-13T14:30:00Z",
        nonce: "chargenonce001",
        path: paths::CHARGE,
        body: body.as_bytes(),
    };
    let h = signed.headers(&key(0x20));
    assert_eq!(h[0], ("X-Terminal-Id", "TID-004812".to_string()));
    assert_eq!(h[4], ("X-Signature", sig));
    // the sandbox side opens and validates it
    let opened = open_request_envelope(&key(0), body.as_bytes()).unwrap();
    assert_eq!(opened, PLAIN.as_bytes());
    let v = charge_request(&opened, &key(0x40)).unwrap();
    assert_eq!(v.tip(), 150);
    assert!(!v.allow_partial_approval());
    assert!(v.pin.is_none());
}

#[test]
fn cancel_vector_signs_the_empty_body() {
    assert_eq!(
        body_sha256(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let s = string_to_sign(
        "TID-004812",
        "hmac-key-2025-01",
        "2025-12-13T14:31:00Z",
        "cancelnonce001",
        "POST",
        &paths::cancel("ch_4fR9kT2mXq7LbN3vZp8sWc1D"),
        b"",
    );
    assert_eq!(
        sign(&key(0x20), &s),
        "v1=RSoBHHrE+7adSeX2pOIzg1Im+lx4q5CFS0OhMxbrT/c="
    );
}

#[test]
fn pin_block_vector() {
    let pad = [0xF1, 0xE2, 0xD3, 0xC4, 0xB5, 0xA6, 0x97, 0x88];
    assert_eq!(
        pinblock::encipher_with_pad(&key(0x40), "1234", "4242424242424242", pad).unwrap(),
        "0CFE7172884A7E0970A6DB5A6D585969"
    );
}

#[test]
fn header_syntaxes() {
    assert!(is_valid_terminal_id("TID-004812") && is_valid_terminal_id("a_b-C"));
    assert!(!is_valid_terminal_id("") && !is_valid_terminal_id("TID 1"));
    assert!(!is_valid_terminal_id(&"a".repeat(65)) && is_valid_terminal_id(&"a".repeat(64)));
    assert!(is_valid_idempotency_key(
        "0f8fad5b-d9cb-469f-a165-70867728950e"
    ));
    assert!(is_valid_idempotency_key("~!") && is_valid_idempotency_key(&"k".repeat(255)));
    for bad in ["", "a b", "é", "a\tb"] {
        assert!(!is_valid_idempotency_key(bad), "{bad:?}");
    }
    assert!(!is_valid_idempotency_key(&"k".repeat(256)));
}

#[test]
fn envelope_problems() {
    let msk = key(0);
    let shape = |b: &str| open_request_envelope(&msk, b.as_bytes());
    for b in [
        "",
        "[]",
        "{}",
        r#"{"format":"TR31-DATA-CHUNKED","ciphertext":"00","initialization_vector":"00","mode":"CBC"}"#,
        r#"{"format":"TR31-DATA","ciphertext":"00","initialization_vector":"00","mode":"ECB"}"#,
        r#"{"format":"TR31-DATA","ciphertext":1,"initialization_vector":"00","mode":"CBC"}"#,
        r#"{"format":"TR31-DATA","ciphertext":"00","initialization_vector":"00","mode":"CBC","content_encoding":"gzip"}"#,
    ] {
        assert_eq!(shape(b), Err(EnvelopeProblem::Shape), "{b}");
    }
    let with = |extra: &str| BODY.replace(r#","key_kcv":"377822""#, extra);
    assert_eq!(
        open_request_envelope(&msk, with(r#","key_kcv":"000000""#).as_bytes()),
        Err(EnvelopeProblem::Kcv)
    );
    assert_eq!(
        open_request_envelope(&msk, with(r#","key_kcv":7"#).as_bytes()),
        Err(EnvelopeProblem::Kcv)
    );
    assert!(open_request_envelope(
        &msk,
        with(r#","key_kcv":null,"content_encoding":null"#).as_bytes()
    )
    .is_ok());
    assert!(open_request_envelope(&msk, with("").as_bytes()).is_ok());
    assert_eq!(
        open_request_envelope(&key(1), with("").as_bytes()),
        Err(EnvelopeProblem::Decrypt)
    );
    for b in [
        BODY.replace("\"A0A1A2A3A4A5A6A7A8A9AAABACADAEAF\"", "\"A0A1\""),
        BODY.replace("\"829A", "\"Z29A"),
        BODY.replace("FBF2\"", "FB\""),
    ] {
        assert_eq!(
            open_request_envelope(&msk, b.as_bytes()),
            Err(EnvelopeProblem::Decrypt),
            "{b}"
        );
    }
}

fn charge_problem(plain: &str) -> BodyProblem {
    match charge_request(plain.as_bytes(), &key(0x40)) {
        Ok(_) => panic!("accepted {plain}"),
        Err(e) => e,
    }
}

#[test]
fn charge_fields_in_the_spec_order() {
    use Reason::{Invalid, Required};
    let f = |field, reason| BodyProblem::Field { field, reason };
    let card = r#""card":{"pan":"4242424242424242","exp_month":12,"exp_year":2030}"#;
    let amount = r#""amount":{"value":"1500","currency":"EUR"}"#;
    let with = |rest: &str| format!(r#"{{{amount},"entry_mode":"chip",{card}{rest}}}"#);
    assert_eq!(charge_problem("[1]"), BodyProblem::NotObject);
    assert_eq!(charge_problem("\"x\""), BodyProblem::NotObject);
    for (plain, want) in [
        ("{}".to_string(), f("amount", Required)),
        (r#"{"amount":null}"#.into(), f("amount", Required)),
        (r#"{"amount":""}"#.into(), f("amount", Required)),
        (r#"{"amount":5}"#.into(), f("amount", Invalid)),
        (r#"{"amount":{}}"#.into(), f("amount.value", Required)),
        (
            r#"{"amount":{"value":1500}}"#.into(),
            f("amount.value", Invalid),
        ),
        (
            r#"{"amount":{"value":"0"}}"#.into(),
            f("amount.value", Invalid),
        ),
        (
            r#"{"amount":{"value":"12345678901"}}"#.into(),
            f("amount.value", Invalid),
        ),
        (
            r#"{"amount":{"value":"15"}}"#.into(),
            f("amount.currency", Required),
        ),
        (
            r#"{"amount":{"value":"15","currency":"eur"}}"#.into(),
            f("amount.currency", Invalid),
        ),
        (format!(r#"{{{amount},"tip":[]}}"#), f("tip", Invalid)),
        (
            format!(r#"{{{amount},"tip":{{}}}}"#),
            f("tip.value", Required),
        ),
        (
            format!(r#"{{{amount},"tip":{{"value":"00"}}}}"#),
            f("tip.value", Invalid),
        ),
        (
            format!(r#"{{{amount},"tip":{{"value":"0"}}}}"#),
            f("tip.currency", Required),
        ),
        (
            format!(r#"{{{amount},"tip":{{"value":"0","currency":"USD"}}}}"#),
            f("tip.currency", Invalid),
        ),
        (
            format!(r#"{{{amount},"tip":null}}"#),
            f("entry_mode", Required),
        ),
        (
            format!(r#"{{{amount},"entry_mode":"tap"}}"#),
            f("entry_mode", Invalid),
        ),
        (
            format!(r#"{{{amount},"entry_mode":"chip"}}"#),
            f("card", Required),
        ),
        (
            format!(r#"{{{amount},"entry_mode":"chip","card":{{}}}}"#),
            f("card.pan", Required),
        ),
        (
            format!(r#"{{{amount},"entry_mode":"chip","card":{{"pan":"42424242424"}}}}"#),
            f("card.pan", Invalid),
        ),
        (
            format!(r#"{{{amount},"entry_mode":"chip","card":{{"pan":"4242424242424242"}}}}"#),
            f("card.exp_month", Required),
        ),
        (
            format!(
                r#"{{{amount},"entry_mode":"chip","card":{{"pan":"4242424242424242","exp_month":12.0}}}}"#
            ),
            f("card.exp_month", Invalid),
        ),
        (
            format!(
                r#"{{{amount},"entry_mode":"chip","card":{{"pan":"4242424242424242","exp_month":"12"}}}}"#
            ),
            f("card.exp_month", Invalid),
        ),
        (
            format!(
                r#"{{{amount},"entry_mode":"chip","card":{{"pan":"4242424242424242","exp_month":13}}}}"#
            ),
            f("card.exp_month", Invalid),
        ),
        (
            format!(
                r#"{{{amount},"entry_mode":"chip","card":{{"pan":"4242424242424242","exp_month":1}}}}"#
            ),
            f("card.exp_year", Required),
        ),
        (
            format!(
                r#"{{{amount},"entry_mode":"chip","card":{{"pan":"4242424242424242","exp_month":1,"exp_year":2100}}}}"#
            ),
            f("card.exp_year", Invalid),
        ),
        (with(r#","pin_block":"00""#), f("pin_block", Invalid)),
        (
            with(r#","pin_block":"00000000000000000000000000000000""#),
            f("pin_block", Invalid),
        ),
        (with(r#","reference":"""#), f("reference", Invalid)),
        (
            with(&format!(r#","reference":"{}""#, "r".repeat(65))),
            f("reference", Invalid),
        ),
        (with(r#","reference":"a\u0007""#), f("reference", Invalid)),
        (
            with(r#","allow_partial_approval":"true""#),
            f("allow_partial_approval", Invalid),
        ),
    ] {
        assert_eq!(charge_problem(&plain), want, "{plain}");
    }
    // optional nulls are absent; unknown fields are dropped from the normalized request
    let a = charge_request(
        with(r#","tip":null,"reference":null,"pin_block":null,"x":1"#).as_bytes(),
        &key(0x40),
    )
    .unwrap();
    let b = charge_request(
        with(r#","allow_partial_approval":false,"tip":{"value":"0","currency":"EUR"}"#).as_bytes(),
        &key(0x40),
    )
    .unwrap();
    assert_eq!(a.digest(), b.digest());
    let c = charge_request(
        with(r#","allow_partial_approval":true"#).as_bytes(),
        &key(0x40),
    )
    .unwrap();
    assert_ne!(a.digest(), c.digest());
    // a PIN block in either case, same request
    let block = "0CFE7172884A7E0970A6DB5A6D585969";
    let up = charge_request(
        with(&format!(r#","pin_block":"{block}""#)).as_bytes(),
        &key(0x40),
    )
    .unwrap();
    let low = charge_request(
        with(&format!(r#","pin_block":"{}""#, block.to_lowercase())).as_bytes(),
        &key(0x40),
    )
    .unwrap();
    assert_eq!(up.digest(), low.digest());
    assert_eq!(up.pin.as_ref().map(|p| p.0.as_str()), Some("1234"));
    assert!(!format!("{:?}", up.request).contains("4242424242424242"));
    let red = up.request.redacted_json();
    assert_eq!(red["card"]["pan"], "424242******4242");
    assert_eq!(red["pin_block"], "***");
}

#[test]
fn refund_fields_in_the_spec_order() {
    use Reason::{Invalid, Required};
    let f = |field, reason| BodyProblem::Field { field, reason };
    let p = |s: &str| refund_request(s.as_bytes());
    assert_eq!(p("null"), Err(BodyProblem::NotObject));
    assert_eq!(p("{}"), Err(f("amount", Required)));
    assert_eq!(
        p(r#"{"amount":{"value":""}}"#),
        Err(f("amount.value", Required))
    );
    assert_eq!(
        p(r#"{"amount":{"value":"1.5"}}"#),
        Err(f("amount.value", Invalid))
    );
    assert_eq!(
        p(r#"{"amount":{"value":"5","currency":"E"}}"#),
        Err(f("amount.currency", Invalid))
    );
    assert_eq!(
        p(r#"{"amount":{"value":"5"},"reason":"bored"}"#),
        Err(f("reason", Invalid))
    );
    let a = p(r#"{"amount":{"value":"5"}}"#).unwrap();
    let b =
        p(r#"{"amount":{"value":"5","currency":"EUR"},"reason":"requested_by_customer","x":[]}"#)
            .unwrap();
    assert_eq!(a.digest("EUR"), b.digest("EUR"));
    assert_ne!(a.digest("USD"), b.digest("EUR"));
    assert_eq!(
        serde_json::to_string(&a.normalized("EUR")).unwrap(),
        r#"{"amount":{"value":"5","currency":"EUR"},"reason":"requested_by_customer"}"#
    );
}

#[test]
fn decline_codes_and_entry_modes() {
    for d in DeclineCode::ALL {
        let v = serde_json::to_value(d).unwrap();
        assert_eq!(v, d.as_str());
        assert_eq!(d.response_code().len(), 2);
    }
    assert_eq!(DeclineCode::InsufficientFunds.words(), "Insufficient funds");
    assert_eq!(DeclineCode::IncorrectPin.words(), "Incorrect PIN");
    assert_eq!(DeclineCode::PinRequired.response_code(), "65");
    let modes: Vec<_> = EntryMode::ALL.iter().map(|m| m.pos_entry_mode()).collect();
    assert_eq!(modes, ["05", "07", "90", "01"]);
}

#[test]
fn the_spec_charge_object_parses() {
    let text = r#"{ "charge_id": "ch_4fR9kT2mXq7LbN3vZp8sWc1D", "terminal_id": "TID-004812",
  "merchant_id": "550e8400-e29b-41d4-a716-446655440000", "status": "approved",
  "amount": { "value": "1500", "currency": "EUR" }, "tip": { "value": "150", "currency": "EUR" },
  "total": { "value": "1650", "currency": "EUR" }, "approved_amount": { "value": "1650", "currency": "EUR" },
  "partial_approval": false, "refunded_amount": { "value": "0", "currency": "EUR" },
  "entry_mode": "chip", "card": { "brand": "visa", "masked_pan": "424242******4242", "last4": "4242" },
  "cvm": "none", "auth_code": "K7Q2ZD", "decline_code": null, "reference": "ORDER-1001",
  "gateway": { "acquirer": "posemu-sandbox", "response_code": "00", "rrn": "534712000123",
               "stan": "000001", "pos_entry_mode": "05" },
  "settlement": { "status": "pending", "batch_id": null, "settled_at": null },
  "refunds": [], "created_at": "2025-12-13T14:30:00Z", "cancelled_at": null }"#;
    let c: Charge = serde_json::from_str(text).unwrap();
    assert_eq!(c.total, Money::new(1650, "EUR"));
    assert_eq!(c.card.brand, Brand::Visa);
    let back = serde_json::to_value(&c).unwrap();
    assert_eq!(
        back,
        serde_json::from_str::<serde_json::Value>(text).unwrap()
    );
}

#[test]
fn route_templates() {
    assert_eq!(paths::route_of("/pos/charge"), Some(paths::CHARGE));
    assert_eq!(
        paths::route_of(&paths::refund("ch_1")),
        Some(paths::REFUND_ROUTE)
    );
    assert_eq!(
        paths::route_of(&paths::cancel("ch_1")),
        Some(paths::CANCEL_ROUTE)
    );
    assert_eq!(
        paths::route_of(&paths::reverse("ch_1")),
        Some(paths::REVERSE_ROUTE)
    );
    for other in [
        "/pos/charge/",
        "/pos/charge//cancel",
        "/pos/charge/a/b/cancel",
        "/pos/charge/a/void",
        "/pos/status",
    ] {
        assert_eq!(paths::route_of(other), None, "{other}");
    }
}

#[test]
fn device_helpers() {
    let mut rng = rand::rng();
    let k = new_idempotency_key(&mut rng);
    assert_eq!(k.len(), 36);
    assert!(is_valid_idempotency_key(&k));
    assert_eq!(&k[14..15], "4");
    assert!(matches!(&k[19..20], "8" | "9" | "a" | "b"));
    assert_eq!(k, k.to_lowercase());
    let body = seal_body(&key(0), &vector_request(), &mut rng);
    let plain = open_request_envelope(&key(0), &body).unwrap();
    assert_eq!(plain, PLAIN.as_bytes());
    let back: ChargeRequest = open_answer(&key(0), &body).unwrap();
    assert_eq!(back, vector_request());
    assert!(open_answer::<Charge>(&key(0), &body).is_err());
    assert!(open_answer::<Charge>(&key(1), &body).is_err());
}
