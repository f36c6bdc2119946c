//! Integration tests: tui (one binary, a module per file).

mod tui_support;

mod bench;
mod demo_flow;
mod flow;
mod pay_flow;
mod snapshots;
mod transactions;
