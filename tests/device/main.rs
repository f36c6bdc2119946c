//! Integration tests: device (one binary, a module per file).

mod activate_cli;
mod client_errors;
mod client_flow;
mod engine;
mod help_cli;
mod hostile;
mod hostile_server;
mod keepalive;
mod pay_cli;
mod profiles_fixtures;
