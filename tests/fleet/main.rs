//! Integration tests: fleet (one binary, a module per file).

mod fleet_support;
#[path = "../device/hostile_server.rs"]
mod hostile_server;

mod charges;
mod dashboard;
mod hints;
mod hostile;
mod run;
mod shards;
mod thresholds;
