//! Integration tests: sandbox (one binary, a module per file).

mod payments_support;
mod portal_support;
mod sandbox_common;

mod attest_errors;
mod cli;
mod device_errors;
mod faults;
mod flow;
mod hardening;
mod hardening_cli;
mod hardening_conn;
mod hardening_prop;
mod helpers;
mod merchant_errors;
mod payments;
mod payments_errors;
mod payments_helpers;
mod payments_hmac;
mod payments_idempotency;
mod payments_outcomes;
mod portal_http;
mod robustness;
mod token_steps_errors;
