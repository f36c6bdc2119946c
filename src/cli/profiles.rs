//! `posemu profiles`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> ExitCode {
    eprintln!("posemu profiles: not implemented yet");
    ExitCode::from(1)
}
