//! Sandbox-only payment helpers (spec 7.12): list a terminal's charges, read a charge, settle.
//! Plain JSON, no auth, like the rest of `/sandbox/`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::payments::{terminal_not_found, to_json};
use crate::error::{ApiError, ApiResult};
use crate::payments::SettleScope;
use crate::Shared;

pub async fn terminal_charges(
    State(s): State<Arc<Shared>>,
    Path(tid): Path<String>,
) -> ApiResult<Json<Value>> {
    s.payments.tick(s.config.clock.now());
    let keys = s.payments.terminals.lookup(&s.world, &tid);
    if keys.is_empty() {
        return Err(terminal_not_found(&tid));
    }
    let charges = s.payments.charges_of(&keys);
    Ok(Json(
        json!({"terminal_id": tid, "charges": to_json(&charges)}),
    ))
}

pub async fn charge(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    s.payments.tick(s.config.clock.now());
    s.payments
        .find(&id)
        .map(|c| Json(to_json(&c)))
        .ok_or_else(|| ApiError::new(404, "Charge not found").detail("charge_id", id))
}

/// The body of `POST /sandbox/settle`: none, `{}`, `{"terminal_id"}` or `{"charge_id"}`.
fn scope(s: &Shared, body: &[u8]) -> ApiResult<SettleScope> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(SettleScope::All);
    }
    let invalid = || ApiError::bad_request("Invalid request body");
    let v: Value = serde_json::from_slice(body).map_err(|_| invalid())?;
    let o = v.as_object().ok_or_else(invalid)?;
    let field = |k: &str| match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => Ok(Some(t.clone())),
        Some(_) => Err(invalid()),
    };
    match (field("terminal_id")?, field("charge_id")?) {
        (None, None) => Ok(SettleScope::All),
        (Some(_), Some(_)) => Err(invalid()),
        (Some(tid), None) => {
            let keys = s.payments.terminals.lookup(&s.world, &tid);
            if keys.is_empty() {
                return Err(terminal_not_found(&tid));
            }
            Ok(SettleScope::Terminal(keys))
        }
        (None, Some(id)) => Ok(SettleScope::Charge(id)),
    }
}

pub async fn settle(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult<Json<Value>> {
    let now = s.config.clock.now();
    s.payments.tick(now);
    let scope = scope(&s, &body)?;
    Ok(Json(to_json(&s.payments.settle(scope, now)?)))
}
