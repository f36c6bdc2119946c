//! Integration tests: fleet (one binary, a module per file).

mod fleet_support;

mod charges;
mod run;
mod shards;
mod thresholds;
