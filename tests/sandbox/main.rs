//! Integration tests: sandbox (one binary, a module per file).

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
mod portal_http;
mod robustness;
mod token_steps_errors;
