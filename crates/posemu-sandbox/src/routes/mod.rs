//! The route table.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use super::error::ApiError;
use super::Shared;
use posemu_protocol::payments::paths as pay;
use posemu_protocol::wire::paths;

pub mod admin;
pub mod attested;
pub mod device;
pub mod merchant;
pub mod payments;
pub mod payments_helpers;
pub mod portal;

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
        .route(pay::CHARGE, post(payments::charge))
        .route(pay::REFUND_ROUTE, post(payments::refund))
        .route(pay::CANCEL_ROUTE, post(payments::cancel))
        .route(pay::REVERSE_ROUTE, post(payments::cancel))
        .route(
            "/sandbox/terminals/{tid}/charges",
            get(payments_helpers::terminal_charges),
        )
        .route(
            "/sandbox/charges/{charge_id}",
            get(payments_helpers::charge),
        )
        .route(pay::SANDBOX_SETTLE, post(payments_helpers::settle))
        .route(paths::CLAIM, post(merchant::claim))
        .route(paths::CLIENT_SESSION, post(merchant::client_session))
        .route(paths::AUTH_TOKEN, post(merchant::client_session))
        .route(paths::SESSION_INITIATE, post(merchant::session_initiate))
        .route(paths::HEALTH, get(device::health))
        .route(paths::PORTAL, get(portal::page))
        .route(portal::CSS_PATH, get(portal::css))
        .route(portal::JS_PATH, get(portal::js))
        .route(portal::ICON_PATH, get(portal::icon))
        .route(portal::TERMINALS_PATH, get(portal::terminals))
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
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            super::trace::middleware,
        ))
        .with_state(shared)
}
