use std::process::ExitCode;

use clap::{Parser, Subcommand};
use posemu::cli;

/// posemu: emulate a Viopay POS terminal (and the Viopay server it talks to).
#[derive(Debug, Parser)]
#[command(name = "posemu", version, about, long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand: the POS screen, for this device and server.
    #[command(flatten)]
    device: cli::device_args::DeviceArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the embedded Viopay sandbox server standalone.
    Sandbox(cli::sandbox::Args),
    /// Take one device from power-on to activated, headless.
    Activate(cli::activate::Args),
    /// List, show and create device profiles.
    Profiles(cli::profiles::Args),
    /// Emulate a fleet of terminals at once: live dashboard, JSON report, CI thresholds.
    Fleet(Box<cli::fleet::Args>),
    /// Sales demo: the POS screen with the embedded sandbox and its merchant portal's URL.
    Demo(cli::demo::Args),
    /// Take a card payment, headless (activating the device first if needed).
    Pay(Box<cli::pay::PayArgs>),
    /// Refund a charge, fully or partly.
    Refund(Box<cli::pay::RefundArgs>),
    /// Cancel (void) a charge before settlement.
    Cancel(Box<cli::pay::CancelArgs>),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Sandbox(a)) => cli::sandbox::run(a).await,
        Some(Command::Activate(a)) => cli::activate::run(a).await,
        Some(Command::Profiles(a)) => cli::profiles::run(a).await,
        Some(Command::Fleet(a)) => cli::fleet::run(*a).await,
        Some(Command::Demo(a)) => cli::demo::run(a).await,
        Some(Command::Pay(a)) => cli::pay::run_pay(*a).await,
        Some(Command::Refund(a)) => cli::pay::run_refund(*a).await,
        Some(Command::Cancel(a)) => cli::pay::run_cancel(*a).await,
        None => posemu::tui::run(cli.device.screen_options()).await,
    }
}
