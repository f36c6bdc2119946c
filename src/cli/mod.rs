//! The command line: one module per subcommand, and the one way posemu's own errors look.

pub mod activate;
pub mod demo;
pub mod device_args;
pub mod fleet;
mod json_events;
pub mod pay;
pub mod profiles;
pub mod sandbox;

use std::fmt::Display;
use std::process::ExitCode;

/// `--auto-claim` given without a value (in `activate`, `pay`, `refund`, `cancel`, `demo`):
/// claim at once.
pub const AUTO_CLAIM_AT_ONCE: &str = "0s";

/// `error: MSG`, as clap writes its own errors, so every error of every subcommand looks the
/// same whoever found it.
pub fn error_line(msg: impl Display) -> String {
    format!("error: {msg}")
}

/// `warning: MSG`, in the same style.
pub fn warning_line(msg: impl Display) -> String {
    format!("warning: {msg}")
}

/// Prints [`error_line`] on stderr.
pub fn error(msg: impl Display) {
    eprintln!("{}", error_line(msg));
}

/// Prints [`warning_line`] on stderr.
pub fn warning(msg: impl Display) {
    eprintln!("{}", warning_line(msg));
}

/// A bad flag, file or expression (nothing ran): [`error`], exit code 2.
pub fn usage(msg: impl Display) -> ExitCode {
    error(msg);
    ExitCode::from(2)
}
