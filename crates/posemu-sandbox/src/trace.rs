//! Trace ids and the per-request middleware: trace id, fault injection, request log.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::TRACE_ID;
use super::faults::{Decision, FaultAction};
use super::{RequestLogLine, Shared};
use posemu_protocol::headers::{X_DEVICE_ID, X_TRACE_ID};

thread_local! {
    static TRACE_RNG: Cell<u64> = Cell::new(seed_from_entropy());
}

fn seed_from_entropy() -> u64 {
    rand::random::<u64>() | 1
}

fn splitmix(state: &Cell<u64>) -> u64 {
    let mut z = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
    state.set(z);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A trace id: 32 lowercase hex characters, `Copy` so that the hot path does not allocate it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceId([u8; 32]);

impl TraceId {
    /// From a per-thread generator (no syscall per request).
    pub fn new() -> TraceId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let (a, b) = TRACE_RNG.with(|s| (splitmix(s), splitmix(s)));
        let mut out = [0u8; 32];
        for (i, byte) in a
            .to_be_bytes()
            .into_iter()
            .chain(b.to_be_bytes())
            .enumerate()
        {
            out[2 * i] = HEX[(byte >> 4) as usize];
            out[2 * i + 1] = HEX[(byte & 0xF) as usize];
        }
        TraceId(out)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// A fresh trace id as text.
pub fn new_trace_id() -> String {
    TraceId::new().as_str().to_string()
}

/// Marks a response whose connection must be dropped without an answer (a fault).
#[derive(Clone, Copy)]
pub struct DropConnection;

/// What the log line needs, taken before the request moves on (only when logging).
struct LogStart {
    started: Instant,
    method: String,
    path: String,
    device: Option<String>,
}

fn device_header(req: &Request<Body>) -> Option<&str> {
    req.headers().get(X_DEVICE_ID).and_then(|v| v.to_str().ok())
}

/// The log's device column: `X-Device-Id`, or a payment's `X-Terminal-Id`.
fn log_device(req: &Request<Body>) -> Option<String> {
    device_header(req)
        .or_else(|| {
            req.headers()
                .get(posemu_protocol::payments::X_TERMINAL_ID)
                .and_then(|v| v.to_str().ok())
        })
        .map(str::to_string)
}

/// Every request: a trace id (body and `X-Trace-Id` agree), fault injection, the error
/// envelope for answers axum produced itself, and the log line.
pub async fn middleware(
    State(shared): State<Arc<Shared>>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let trace = TraceId::new();
    let log = shared.request_log.as_ref().map(|_| LogStart {
        started: Instant::now(),
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        device: log_device(&req),
    });
    let action = if shared.faults.is_active() {
        shared
            .faults
            .decide(req.uri().path(), device_header(&req), shared.clock.now())
    } else {
        Decision::pass()
    };
    let mut resp = TRACE_ID
        .scope(trace, async {
            if let Some(latency) = action.latency {
                tokio::time::sleep(latency).await;
            }
            match action.outcome {
                FaultAction::Drop => {
                    let mut r = Response::new(Body::empty());
                    r.extensions_mut().insert(DropConnection);
                    r
                }
                FaultAction::Error(e) => e.into_response(),
                FaultAction::Pass => envelope_plain_errors(next.run(req).await),
            }
        })
        .await;
    if let Ok(v) = HeaderValue::from_bytes(&trace.0) {
        resp.headers_mut().insert(X_TRACE_ID, v);
    }
    if let (Some(tx), Some(l)) = (&shared.request_log, log) {
        let _ = tx.send(RequestLogLine {
            method: l.method,
            path: l.path,
            device_id: l.device,
            status: if resp.extensions().get::<DropConnection>().is_some() {
                0
            } else {
                resp.status().as_u16()
            },
            latency: l.started.elapsed(),
            trace_id: trace.as_str().to_string(),
            signed: resp
                .extensions_mut()
                .remove::<super::routes::payments::SignedString>()
                .map(|s| s.0),
        });
    }
    resp
}

/// Answers that axum produced itself (rejections: bad query, body too large…) become the
/// Viopay error envelope too: clients must never see a plain-text error.
fn envelope_plain_errors(resp: Response) -> Response {
    let status = resp.status();
    if status.as_u16() < 400 {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return resp;
    }
    let message = match status.as_u16() {
        413 => "Request body too large",
        415 => "Unsupported media type",
        _ => "Invalid request",
    };
    super::error::ApiError::new(status.as_u16(), message).into_response()
}
