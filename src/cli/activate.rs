//! `posemu activate`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> ExitCode {
    eprintln!("posemu activate: not implemented yet");
    ExitCode::from(1)
}
