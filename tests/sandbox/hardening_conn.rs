//! Connections against slow or hostile clients (raw TCP on 127.0.0.1): header-read timeout,
//! idle keep-alives, a half-sent body, the connection cap, and the envelope on the answers
//! that hyper writes by itself. Timeouts are set short in the config: no long real sleeps.

use std::time::{Duration, Instant};

use crate::sandbox_common::*;
use posemu_protocol::error::is_valid_trace_id;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SHORT: Duration = Duration::from_millis(300);
/// A guard against a hang: never waited out when things work.
const PATIENCE: Duration = Duration::from_secs(10);

async fn short_timeouts(max_connections: usize) -> Env {
    start_with(|c| {
        c.header_read_timeout = SHORT;
        c.body_read_timeout = SHORT;
        c.max_connections = max_connections;
    })
    .await
}

async fn connect(env: &Env) -> TcpStream {
    TcpStream::connect(env.sandbox.addr()).await.unwrap()
}

/// Reads until the server closes; what it sent, and how long it took.
async fn read_until_closed(s: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(PATIENCE, s.read(&mut buf)).await {
            Err(_) => panic!(
                "still open after {PATIENCE:?}; got {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, started.elapsed()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Status and JSON body of one raw HTTP/1.1 answer; asserts the error envelope and that the
/// trace id of the body is the `X-Trace-Id` header.
fn envelope(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{text}"));
    let status: u16 = head[9..12].parse().unwrap();
    let trace = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-trace-id")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no X-Trace-Id: {head}"));
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"));
    let code = format!("{}0{:02}", status / 100, status % 100);
    assert_eq!(v["error"]["code"], code.as_str(), "{text}");
    assert_eq!(v["error"]["trace_id"], trace.as_str(), "{text}");
    assert!(is_valid_trace_id(&trace));
    (status, v)
}

#[tokio::test]
async fn silent_slow_and_idle_connections_are_closed() {
    let env = short_timeouts(64).await;
    // Sends nothing.
    let mut silent = connect(&env).await;
    // Slowloris: a head that never ends, a byte at a time.
    let mut slow = connect(&env).await;
    slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let trickle = async {
        for _ in 0..100 {
            if slow.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // Kept alive after an answer, then idle.
    let mut idle = connect(&env).await;
    idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 512];
    let n = idle.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    let ((_, silent_for), _, (rest, idle_for)) = tokio::join!(
        read_until_closed(&mut silent),
        trickle,
        read_until_closed(&mut idle)
    );
    assert!(silent_for < PATIENCE && idle_for < PATIENCE);
    assert!(rest.is_empty(), "{rest:?}");
    let (_, slow_for) = read_until_closed(&mut slow).await;
    assert!(slow_for < PATIENCE);
}

#[tokio::test]
async fn a_half_sent_body_gets_408_and_the_connection_closes() {
    let env = short_timeouts(64).await;
    let mut s = connect(&env).await;
    s.write_all(
        b"POST /sandbox/devices HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"device_id\":",
    )
    .await
    .unwrap();
    let (raw, took) = read_until_closed(&mut s).await;
    assert!(took < PATIENCE);
    let (status, v) = envelope(&raw);
    assert_eq!(status, 408);
    assert_eq!(v["error"]["message"], "Request body timeout");
}

#[tokio::test]
async fn connections_past_the_cap_get_503_and_the_cap_frees_up() {
    let env = start_with(|c| c.max_connections = 4).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = connect(&env).await;
        // One answered request each: the server has surely accepted (and counts) them.
        s.write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    for _ in 0..20 {
        let mut s = connect(&env).await;
        let _ = s
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await;
        let (raw, _) = read_until_closed(&mut s).await;
        let (status, v) = envelope(&raw);
        assert_eq!(status, 503);
        assert_eq!(v["error"]["message"], "Too many connections (at most 4)");
        assert!(String::from_utf8_lossy(&raw).contains("Retry-After: 1"));
    }
    drop(held.pop());
    // The freed slot is taken by a new client soon.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let r = env
            .http
            .get(format!("{}/health/live", env.url))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(Instant::now() < deadline, "the slot never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `request` raw and returns the one answer (the server closes after it).
async fn raw_answer(env: &Env, request: &[u8]) -> Vec<u8> {
    let mut s = connect(env).await;
    let _ = s.write_all(request).await;
    read_until_closed(&mut s).await.0
}

#[tokio::test]
async fn answers_hyper_writes_itself_carry_the_envelope() {
    let env = start().await;
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"\x16\x03\x01garbage\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n".to_vec(), 400),
        (
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)).into_bytes(),
            414,
        ),
        (
            format!(
                "GET /health/live HTTP/1.1\r\n{}\r\n",
                (0..150)
                    .map(|i| format!("X-H{i}: v\r\n"))
                    .collect::<String>()
            )
            .into_bytes(),
            431,
        ),
        (
            format!(
                "GET /health/live HTTP/1.1\r\nX-Big: {}\r\n\r\n",
                "b".repeat(200_000)
            )
            .into_bytes(),
            431,
        ),
    ];
    for (request, want) in cases {
        let raw = raw_answer(&env, &request).await;
        let (status, v) = envelope(&raw);
        assert_eq!(status, want, "{}", String::from_utf8_lossy(&raw));
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
}

/// Reads `n` whole answers (head and `Content-Length` body) from a connection kept open.
async fn read_answers(s: &mut (impl AsyncReadExt + Unpin), n: usize) -> Vec<Vec<u8>> {
    let mut answers = Vec::new();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while answers.len() < n {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or_else(|| panic!("no Content-Length: {head}"));
            if body.len() >= len {
                let whole = head.len() + 4 + len;
                answers.push(out.drain(..whole).collect());
                continue;
            }
        }
        match tokio::time::timeout(PATIENCE, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            other => panic!("{other:?} after {:?}", String::from_utf8_lossy(&out)),
        }
    }
    answers
}

#[tokio::test]
async fn a_body_answered_before_it_is_read_is_drained_and_the_connection_kept() {
    let env = start().await;
    let mib = 1024 * 1024;
    // 413 past the 2 MiB limit (2 MiB read, 1 MiB left), and a payment route's 400 for a header,
    // which comes before its body is read (1 MiB left).
    let head = |path: &str, len: usize| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {len}\r\n\r\n"
        )
    };
    for (head, big, want) in [
        (head("/client/session", 3 * mib), 3 * mib, 413),
        (head("/pos/charge", mib), mib, 400),
    ] {
        let s = connect(&env).await;
        let (mut rd, mut wr) = s.into_split();
        let send = async move {
            wr.write_all(head.as_bytes()).await.unwrap();
            wr.write_all(&vec![b'a'; big]).await.unwrap();
            // the same connection, after the answer: it was kept alive
            wr.write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .await
                .unwrap();
            wr
        };
        let (_wr, answers) = tokio::join!(send, read_answers(&mut rd, 2));
        let [first, second] = &answers[..] else {
            unreachable!()
        };
        let (status, _) = envelope(first);
        assert_eq!(status, want, "{}", String::from_utf8_lossy(first));
        assert!(
            second.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(second)
        );
    }
}
