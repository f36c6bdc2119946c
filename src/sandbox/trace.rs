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
use super::faults::FaultAction;
use super::{RequestLogLine, Shared};
use crate::protocol::headers::{X_DEVICE_ID, X_TRACE_ID};

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

/// 32 lowercase hex characters from a per-thread generator (no syscall per request).
pub fn new_trace_id() -> String {
    TRACE_RNG.with(|s| format!("{:016x}{:016x}", splitmix(s), splitmix(s)))
}

/// Marks a response whose connection must be dropped without an answer (a fault).
#[derive(Clone, Copy)]
pub struct DropConnection;

pub async fn middleware(
    State(shared): State<Arc<Shared>>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let started = Instant::now();
    let trace_id = new_trace_id();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let device = req
        .headers()
        .get(X_DEVICE_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    let action = shared
        .faults
        .decide(&path, device.as_deref(), shared.clock.now());
    let resp = TRACE_ID
        .scope(trace_id.clone(), async {
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
                FaultAction::Pass => next.run(req).await,
            }
        })
        .await;
    let mut resp = resp;
    if let Ok(v) = HeaderValue::from_str(&trace_id) {
        resp.headers_mut().insert(X_TRACE_ID, v);
    }
    if let Some(log) = &shared.request_log {
        let _ = log.send(RequestLogLine {
            method: method.to_string(),
            path,
            device_id: device,
            status: if resp.extensions().get::<DropConnection>().is_some() {
                0
            } else {
                resp.status().as_u16()
            },
            latency: started.elapsed(),
            trace_id,
        });
    }
    resp
}

/// Answers that axum produced itself (rejections: bad query, body too large…) become the
/// Viopay error envelope too: clients must never see a plain-text error.
pub async fn envelope_everything(req: Request<Body>, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if status.as_u16() < 400 || is_json {
        return resp;
    }
    let message = match status.as_u16() {
        413 => "Request body too large",
        415 => "Unsupported media type",
        _ => "Invalid request",
    };
    super::error::ApiError::new(status.as_u16(), message).into_response()
}
