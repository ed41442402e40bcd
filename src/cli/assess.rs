//! `salve assess`.

/// Arguments of `salve assess`.
#[derive(Debug, clap::Args)]
pub struct AssessArgs {}

pub fn run(_args: AssessArgs) -> u8 {
    eprintln!("error: `salve assess` is not built yet");
    crate::exit::INTERNAL
}
