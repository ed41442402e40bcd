//! `salve lab ...` subcommands.

/// Arguments of `salve lab`.
#[derive(Debug, clap::Args)]
pub struct LabArgs {}

/// Run a `salve lab` subcommand; returns the process exit code.
pub fn run(_args: LabArgs) -> u8 {
    eprintln!("error: the lab is not built yet");
    crate::exit::INTERNAL
}
