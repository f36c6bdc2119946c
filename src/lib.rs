//! posemu: an emulator of a Viopay POS payment terminal, with an embedded Viopay sandbox.
//!
//! The root package holds the binary's front ends: `cli` (clap, one module per subcommand),
//! `tui` (the POS screen) and `fleet` (thousands of terminals). Everything below them lives in
//! the workspace crates (see README "Architecture"); nothing depends on this package.

pub mod cli;
pub mod fleet;
pub mod tui;
