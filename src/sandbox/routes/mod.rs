//! The route table.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use super::error::ApiError;
use super::Shared;
use crate::protocol::wire::paths;

pub mod admin;
pub mod attested;
pub mod device;
pub mod merchant;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(paths::BOOTSTRAP, post(device::bootstrap))
        .route(paths::PAIRING_CODE, post(device::pairing_code))
        .route(paths::STATUS, get(device::status))
        .route(paths::ATTEST, post(device::attest))
        .route(paths::KEYS, post(attested::keys))
        .route(paths::CONFIG, post(attested::config))
        .route(
            paths::TERMINAL_PARAMETERS,
            post(attested::terminal_parameters),
        )
        .route(paths::ACTIVATE, post(attested::activate))
        .route(paths::CLAIM, post(merchant::claim))
        .route(paths::CLIENT_SESSION, post(merchant::client_session))
        .route(paths::AUTH_TOKEN, post(merchant::client_session))
        .route(paths::SESSION_INITIATE, post(merchant::session_initiate))
        .route(paths::HEALTH, get(device::health))
        .route(paths::PORTAL, get(portal))
        .route("/sandbox/devices", get(admin::list).post(admin::provision))
        .route("/sandbox/devices/{id}/claim", post(admin::claim))
        .route(
            "/sandbox/devices/{id}/expire-code",
            post(admin::expire_code),
        )
        .route("/sandbox/devices/{id}/reset", post(admin::reset))
        .route(
            "/sandbox/faults",
            get(admin::get_faults).put(admin::put_faults),
        )
        .fallback(|| async { ApiError::new(404, "Route not found") })
        .method_not_allowed_fallback(|| async { ApiError::new(405, "Method not allowed") })
        .layer(axum::middleware::from_fn(super::trace::envelope_everything))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            super::trace::middleware,
        ))
        .with_state(shared)
}

/// Placeholder until the merchant portal page lands (issue: portal and demo mode).
async fn portal() -> axum::response::Html<&'static str> {
    axum::response::Html(
        "<!doctype html><meta charset=utf-8><title>Viopay merchant portal (sandbox)</title>\
         <p>The merchant portal page is not built yet. Claim a code with <code>POST /pos/claim</code> \
         or <code>POST /sandbox/devices/{id}/claim</code>.</p>",
    )
}
