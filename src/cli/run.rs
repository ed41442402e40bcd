//! `salve run`.

/// Arguments of `salve run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {}

pub fn run(_args: RunArgs) -> u8 {
    eprintln!("error: `salve run` is not built yet");
    crate::exit::INTERNAL
}
