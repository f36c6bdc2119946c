use super::*;

#[test]
fn path_segments_cannot_escape() {
    assert_eq!(path_segment("POS-8F3A2C91"), "POS-8F3A2C91");
    assert_eq!(path_segment("../x"), "..%2Fx");
    assert_eq!(path_segment(".."), "%2E%2E");
    assert_eq!(path_segment("a b?c"), "a%20b%3Fc");
}

#[test]
fn errors_say_what_failed() {
    let e = MerchantError {
        action: MerchantAction::Claim,
        source: CallError::Http {
            status: 410,
            retry_after: None,
            error: Some(posemu_protocol::ErrorBody {
                code: "4010".into(),
                message: "Pairing code expired".into(),
                details: None,
                trace_id: String::new(),
            }),
        },
    };
    assert_eq!(
        e.to_string(),
        "claiming the code (POST /pos/claim) failed: HTTP 410 4010 Pairing code expired"
    );
    assert_eq!(e.message(), Some("Pairing code expired"));
    assert_eq!(e.status(), Some(410));
    let c = MerchantCredentials::demo();
    assert!(!format!("{c:?}").contains("demo-secret"));
}
