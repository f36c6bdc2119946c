//! The command line: one module per subcommand.

pub mod activate;
pub mod profiles;
pub mod sandbox;
