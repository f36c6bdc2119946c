//! Integration tests: e2e (one binary, a module per file).

#[path = "../sandbox/portal_support/mod.rs"]
mod portal_support;
mod tmux_support;

mod activate_tmux;
mod demo_tmux;
mod fleet_tmux;
mod layers;
mod listen_tmux;
mod pay_tmux;
mod portal_browser;
mod portal_payments;
mod tui_tmux;
