//! The command line: one module per subcommand.

pub mod activate;
pub mod demo;
pub mod device_args;
pub mod fleet;
pub mod pay;
pub mod profiles;
pub mod sandbox;
