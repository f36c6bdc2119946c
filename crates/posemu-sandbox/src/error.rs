//! The sandbox's one error type: every failure answers the Viopay error envelope (spec 2).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};

use posemu_protocol::error::ErrorEnvelope;
use posemu_protocol::headers::{HeaderProblem, RETRY_AFTER};

tokio::task_local! {
    /// The trace id of the request being answered, set by the trace middleware so that the
    /// body's `trace_id` and the `X-Trace-Id` header always agree.
    pub static TRACE_ID: super::trace::TraceId;
}

pub fn current_trace_id() -> String {
    TRACE_ID
        .try_with(|t| t.as_str().to_string())
        .unwrap_or_else(|_| super::trace::new_trace_id())
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub details: Map<String, Value>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            details: Map::new(),
            retry_after: None,
        }
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    pub fn device_not_found(device_id: &str) -> Self {
        Self::new(404, "Device not found").detail("device_id", device_id)
    }

    /// `400 Invalid request body` with the Go validator detail of spec 4.4.
    pub fn invalid_claim_body() -> Self {
        Self::bad_request("Invalid request body").detail(
            "message",
            "Key: 'ClaimDeviceRequest.PairingCode' Error:Field validation for 'PairingCode' failed on the 'required' tag",
        )
    }
}

impl From<HeaderProblem> for ApiError {
    fn from(p: HeaderProblem) -> Self {
        ApiError {
            status: p.status,
            message: p.message,
            details: p.details,
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope::new(self.status, self.message, current_trace_id())
            .with_details(self.details);
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
