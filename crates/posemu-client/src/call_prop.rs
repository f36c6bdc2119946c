//! Random and mutated answers to every step's decode path: never a panic, every failure an
//! error value, and `Retry-After` of any size becomes a duration (the machine clamps it).

use super::*;
use posemu_protocol::envelope::seal_single;
use posemu_protocol::wire::ActivationChecks;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

const MSK: Key = [7u8; 32];

/// One call of every activation step (also the decode tests' list in `call.rs`).
pub(super) fn calls() -> Vec<ApiCall> {
    let (token, msk) = (Secret(String::from("att_x")), Secret(MSK));
    vec![
        ApiCall::Bootstrap,
        ApiCall::PairingCode,
        ApiCall::Status,
        ApiCall::Attest { clock_offset_ms: 0 },
        ApiCall::Keys {
            token: token.clone(),
        },
        ApiCall::Config {
            token: token.clone(),
            msk: msk.clone(),
        },
        ApiCall::TerminalParameters {
            token: token.clone(),
            msk: msk.clone(),
        },
        ApiCall::Activate {
            token,
            msk,
            checks: ActivationChecks::ALL_OK,
        },
    ]
}

/// Valid answers of each step, as seeds for mutation.
fn seeds() -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(1);
    let seal = |plain: &[u8], rng: &mut StdRng| {
        serde_json::to_vec(&seal_single(&MSK, plain, rng)).unwrap()
    };
    vec![
        br#"{"status":"ok","server_time":"2025-12-13T14:25:30Z","min_supported_version":"1.3.5"}"#.to_vec(),
        br#"{"pairing_code":"K7M3NP","expires_in_sec":300}"#.to_vec(),
        br#"{"device_status":"inactive","is_claimed":false,"pairing_code_status":"pending"}"#.to_vec(),
        br#"{"status":"attested","attestation_token":"att_f83kLmP9s2ab","expires_in_sec":18446744073709551615}"#.to_vec(),
        br#"{"error":{"code":"4029","message":"x","trace_id":"t"}}"#.to_vec(),
        seal(br#"{"terminal_id":"TID-000001","merchant":{"name":"M"}}"#, &mut rng),
        seal(br#"{"status":"activated","activated_at":"2025-12-13T14:25:30Z"}"#, &mut rng),
        seal(b"[1,2,3]", &mut rng),
    ]
}

fn mutate(mut body: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(at, kind, byte) in edits {
        if body.is_empty() {
            body.push(byte);
            continue;
        }
        let i = at % body.len();
        match kind % 4 {
            0 => body[i] = byte,
            1 => {
                body.remove(i);
            }
            2 => body.insert(i, byte),
            _ => body.truncate(i),
        }
    }
    body
}

fn retry_after() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        any::<u64>().prop_map(|n| Some(n.to_string())),
        Just(Some("18446744073709551616".into())),
        Just(Some("Sun, 06 Nov 2994 08:49:37 GMT".into())),
        Just(Some("Sun, 06 Nov 1994 08:49:37 GMT".into())),
        "[ -~]{0,40}".prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn any_answer_decodes_to_a_value_or_an_error(
        step in 0usize..8,
        seed in 0usize..8,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6),
        random in proptest::collection::vec(any::<u8>(), 0..64),
        use_random in any::<bool>(),
        status in prop_oneof![Just(200u16), Just(204), Just(429), Just(503), 100u16..600],
        retry in retry_after(),
    ) {
        let call = &calls()[step];
        let body = if use_random { random } else { mutate(seeds()[seed].clone(), &edits) };
        let mut headers = HeaderMap::new();
        if let Some(v) = retry.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(reqwest::header::RETRY_AFTER, v);
        }
        let inc = Incoming {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            version: reqwest::Version::HTTP_11,
            headers,
            body,
        };
        let now = posemu_protocol::clock::parse_rfc3339("2025-12-13T14:25:30Z").unwrap();
        let (r, _) = decode(&Expect::of(call), call.step().name(), &inc, now, true);
        match r {
            Ok(a) => {
                prop_assert!((200..300).contains(&status));
                prop_assert_eq!(a.step(), call.step());
            }
            Err(CallError::Http { status: s, .. }) => prop_assert_eq!(s, status),
            Err(CallError::Decode(m)) => prop_assert!(m.starts_with(call.step().name())),
            Err(other) => prop_assert!(false, "{other:?}"),
        }
        let mut entry = Exchange::sent(call.step().name(), now, &Outgoing {
            method: Method::GET,
            url: "http://127.0.0.1:1/x".into(),
            headers: HeaderMap::new(),
            body: None,
            timeout: None,
        });
        fill_response(&mut entry, &inc);
        let logged = ExchangeLog::new(1).record(entry);
        let _ = crate::export::har_string([logged.as_ref()]);
        let _ = crate::export::curl(&logged);
    }
}
