//! `salve check`.

/// Arguments of `salve check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

pub fn run(_args: CheckArgs) -> u8 {
    eprintln!("error: `salve check` is not built yet");
    crate::exit::INTERNAL
}
