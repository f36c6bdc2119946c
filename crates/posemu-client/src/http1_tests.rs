//! Tests of the direct HTTP/1.1 pool: against raw servers on 127.0.0.1, the same request
//! heads as reqwest, hostile answers, the connection limit.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::transport::Outgoing;
use crate::{Transport, TransportConfig};

use super::*;

/// What the test server does with each request it reads.
#[derive(Clone, Copy)]
enum Answer {
    /// `200` with a small JSON body, connection kept.
    Ok,
    /// The same, then it closes the connection without saying so.
    OkThenClose,
    /// These bytes, then the connection is closed.
    Raw(&'static [u8]),
    /// Nothing, ever.
    Silent,
    /// `Ok` to a connection's first request; at its second it closes without a word, as a
    /// server whose idle timeout meets a request on a kept-alive connection.
    OkOnceThenClose,
}

const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n{\"state\":\"x\"}";

/// A raw HTTP/1.1 server on 127.0.0.1 that records every request head it reads.
async fn server(answer: Answer) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut answered = 0;
                loop {
                    let mut chunk = [0u8; 4096];
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    while buf.len() < end + len {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&buf[end..end + len]).into_owned();
                    buf.drain(..end + len);
                    seen.lock().push(format!("{head}{body}"));
                    if matches!(answer, Answer::OkOnceThenClose) && answered == 1 {
                        return;
                    }
                    answered += 1;
                    let reply: &[u8] = match answer {
                        Answer::Ok | Answer::OkThenClose | Answer::OkOnceThenClose => OK,
                        Answer::Raw(r) => r,
                        Answer::Silent => {
                            std::future::pending::<()>().await;
                            b""
                        }
                    };
                    if sock.write_all(reply).await.is_err() {
                        return;
                    }
                    if matches!(answer, Answer::OkThenClose | Answer::Raw(_)) {
                        return;
                    }
                }
            });
        }
    });
    (url, heads)
}

fn outgoing(t: &Transport, method: Method, path: &str, body: Option<&str>) -> Outgoing {
    let mut headers = HeaderMap::new();
    headers.insert("x-device-id", HeaderValue::from_static("POS-F0000001"));
    headers.insert(
        reqwest::header::USER_AGENT,
        HeaderValue::from_static("Viopay-POS/1.4.2 (Android 12; PAX-A920)"),
    );
    headers.insert("x-client-type", HeaderValue::from_static("pos"));
    if body.is_some() {
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Outgoing {
        method,
        url: t.url(path),
        headers,
        body: body.map(|b| b.as_bytes().to_vec()),
        timeout: None,
    }
}

/// A request's head as a set of lines: the request line first, header lines sorted.
fn normalised(head: &str) -> Vec<String> {
    let mut lines = head.split("\r\n").map(str::to_string);
    let first = lines.next().unwrap_or_default();
    let mut rest: Vec<String> = lines.filter(|l| !l.is_empty()).collect();
    rest.sort();
    std::iter::once(first).chain(rest).collect()
}

#[tokio::test]
async fn the_direct_pool_sends_what_reqwest_sends() {
    let (url, heads) = server(Answer::Ok).await;
    let base = format!("{url}/v2/");
    let via_reqwest = Transport::new(&base, TransportConfig::default()).unwrap();
    let direct = via_reqwest.direct_pool().unwrap();
    assert!(direct.is_direct() && !via_reqwest.is_direct());
    assert!(direct.separate_pool().unwrap().is_direct());
    for (method, path, body) in [
        (Method::GET, "/pos/status", None),
        (Method::POST, "/pos/bootstrap", None),
        (Method::POST, "/pos/activate", Some("{\"a\":1}")),
        (Method::GET, "/pos/charges?limit=5", None),
    ] {
        for t in [&via_reqwest, &direct] {
            let inc = t
                .send(outgoing(t, method.clone(), path, body))
                .await
                .unwrap();
            assert_eq!(inc.status, 200);
            assert_eq!(inc.body, b"{\"state\":\"x\"}");
            assert_eq!(inc.headers["content-type"], "application/json");
        }
        let h = heads.lock().split_off(0);
        assert_eq!(h.len(), 2);
        assert_eq!(normalised(&h[0]), normalised(&h[1]), "{method} {path}");
        assert!(
            h[1].starts_with(&format!("{method} /v2{path} HTTP/1.1\r\n")),
            "{}",
            h[1]
        );
    }
}

#[tokio::test]
async fn credentials_in_the_url_go_as_basic_auth_on_the_direct_path_too() {
    let (url, heads) = server(Answer::Ok).await;
    let with_creds = url.replace("http://", "http://alice:pw@");
    let t = Transport::new(&with_creds, TransportConfig::default())
        .unwrap()
        .direct_pool()
        .unwrap();
    t.send(outgoing(&t, Method::GET, "/pos/status", None))
        .await
        .unwrap();
    let h = heads.lock()[0].to_ascii_lowercase();
    assert!(h.contains("authorization: basic ywxpy2u6chc="), "{h}");
}

#[tokio::test]
async fn connections_are_reused_and_a_closed_one_is_replaced() {
    for answer in [Answer::Ok, Answer::OkThenClose] {
        let (url, heads) = server(answer).await;
        let t = Transport::new(&url, TransportConfig::default())
            .unwrap()
            .direct_pool()
            .unwrap();
        for _ in 0..5 {
            let inc = t
                .send(outgoing(&t, Method::GET, "/pos/status", None))
                .await
                .unwrap();
            assert_eq!(inc.status, 200);
        }
        assert_eq!(heads.lock().len(), 5);
    }
}

#[tokio::test]
async fn a_kept_alive_connection_closed_under_a_request_is_retried_when_that_is_safe() {
    type Make = fn(&Transport) -> Outgoing;
    let cases: [(&str, Make, bool); 3] = [
        (
            "GET",
            |t| outgoing(t, Method::GET, "/pos/status", None),
            true,
        ),
        (
            "POST with Idempotency-Key",
            |t| {
                let mut o = outgoing(t, Method::POST, "/pos/charge", Some("{}"));
                o.headers.insert(
                    "idempotency-key",
                    HeaderValue::from_static("0f8fad5b-d9cb-469f-a165-70867728950e"),
                );
                o
            },
            true,
        ),
        (
            "POST",
            |t| outgoing(t, Method::POST, "/pos/attest", Some("{}")),
            false,
        ),
    ];
    for (what, make, resent) in cases {
        let (url, heads) = server(Answer::OkOnceThenClose).await;
        let t = Transport::new(&url, TransportConfig::default())
            .unwrap()
            .direct_pool()
            .unwrap();
        assert_eq!(t.send(make(&t)).await.unwrap().status, 200, "{what}");
        // the second goes on the kept-alive connection, which the server then closes
        let second = t.send(make(&t)).await;
        if resent {
            assert_eq!(second.unwrap().status, 200, "{what}");
            // read on the old connection, then again on a new one
            assert_eq!(heads.lock().len(), 3, "{what}");
        } else {
            let e = second.err().unwrap();
            assert!(
                matches!(e, CallError::Network(ref m) if m.contains("closed before an answer")),
                "{what}: {e:?}"
            );
            assert_eq!(heads.lock().len(), 2, "{what}");
        }
    }
}

#[tokio::test]
async fn failures_map_as_through_reqwest() {
    let cfg = TransportConfig {
        request_timeout: Duration::from_millis(300),
        ..TransportConfig::default()
    };
    let (url, _) = server(Answer::Raw(
        b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999\r\n\r\nabc",
    ))
    .await;
    let t = Transport::new(&url, cfg).unwrap().direct_pool().unwrap();
    let e = t
        .send(outgoing(&t, Method::GET, "/pos/status", None))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(e, CallError::Decode(ref m) if m.contains("larger")),
        "{e:?}"
    );

    let (url, _) = server(Answer::Silent).await;
    let t = Transport::new(&url, cfg).unwrap().direct_pool().unwrap();
    let e = t
        .send(outgoing(&t, Method::GET, "/pos/status", None))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(e, CallError::Timeout(d) if d == cfg.request_timeout),
        "{e:?}"
    );

    // a port nobody listens on
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let t = Transport::new(&url, cfg).unwrap().direct_pool().unwrap();
    let e = t
        .send(outgoing(&t, Method::GET, "/pos/status", None))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(e, CallError::Network(ref m) if m.contains("connect")),
        "{e:?}"
    );
}

/// Answers a hostile or unusual server may give: framed as RFC 9112 says, refused with a
/// clear error otherwise; never a panic.
#[tokio::test]
async fn answers_are_framed_and_hostile_ones_refused() {
    let ok: &[(&[u8], &[u8])] = &[
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4;x=y\r\nabcd\r\n2\r\nef\r\n0\r\nx-t: 1\r\n\r\n",
            b"abcdef",
        ),
        (b"HTTP/1.0 200 OK\r\n\r\nuntil the end", b"until the end"),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok",
            b"ok",
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\n\r\nabc",
            b"abc",
        ),
    ];
    for (raw, want) in ok {
        let (url, _) = server(Answer::Raw(raw)).await;
        let t = Transport::new(&url, TransportConfig::default())
            .unwrap()
            .direct_pool()
            .unwrap();
        let inc = t
            .send(outgoing(&t, Method::GET, "/pos/status", None))
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", String::from_utf8_lossy(raw)));
        assert_eq!(inc.body, *want, "{}", String::from_utf8_lossy(raw));
    }
    let many_headers: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "x: y\r\n".repeat(MAX_HEADERS + 1)
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let bad: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
        b"SMTP ready\r\n\r\n",
        b"",
        many_headers,
    ];
    for raw in bad {
        let (url, _) = server(Answer::Raw(raw)).await;
        let t = Transport::new(&url, TransportConfig::default())
            .unwrap()
            .direct_pool()
            .unwrap();
        let e = t
            .send(outgoing(&t, Method::GET, "/pos/status", None))
            .await
            .err()
            .unwrap_or_else(|| panic!("accepted {}", String::from_utf8_lossy(raw)));
        assert!(
            matches!(e, CallError::Network(ref m) if m.contains("invalid HTTP answer")),
            "{}: {e:?}",
            String::from_utf8_lossy(raw)
        );
    }
}

/// A burst of calls on an empty pool opens at most [`MAX_CONNECTING`] connections the
/// server has not answered on yet (a burst of 256 overflowed the sandbox's accept queue).
#[tokio::test]
async fn a_burst_opens_no_more_than_max_connecting_unanswered_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let peak = Arc::new(Mutex::new(0usize));
    let seen = peak.clone();
    tokio::spawn(async move {
        // hold every new connection unanswered until no new one came for a while
        let mut waiting = Vec::new();
        loop {
            let next = tokio::time::timeout(Duration::from_millis(200), listener.accept());
            match next.await {
                Ok(Ok((sock, _))) => {
                    waiting.push(sock);
                    let mut p = seen.lock();
                    *p = (*p).max(waiting.len());
                }
                Ok(Err(_)) => return,
                Err(_) => {
                    for mut sock in waiting.drain(..) {
                        tokio::spawn(async move {
                            let mut buf = vec![0u8; 4096];
                            loop {
                                match sock.read(&mut buf).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(_) => {
                                        if sock.write_all(OK).await.is_err() {
                                            return;
                                        }
                                    }
                                }
                            }
                        });
                    }
                }
            }
        }
    });
    let t = Transport::new(&url, TransportConfig::default())
        .unwrap()
        .direct_pool()
        .unwrap();
    let calls =
        (0..MAX_CONNECTING * 3).map(|_| t.send(outgoing(&t, Method::GET, "/pos/status", None)));
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(r.unwrap().status, 200);
    }
    // exactly MAX_CONNECTING on an idle machine; fewer if a starved client paused longer
    // than the server's quiet period, never more
    let peak = *peak.lock();
    assert!(
        (1..=MAX_CONNECTING).contains(&peak),
        "{peak} unanswered connections"
    );
}

#[test]
fn https_servers_stay_on_reqwest() {
    let t = Transport::new("https://api.viopay.io/v2", TransportConfig::default()).unwrap();
    assert!(!t.direct_pool().unwrap().is_direct());
}
