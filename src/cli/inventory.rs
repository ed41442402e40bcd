//! `salve inventory`.

/// Arguments of `salve inventory`.
#[derive(Debug, clap::Args)]
pub struct InventoryArgs {}

pub fn run(_args: InventoryArgs) -> u8 {
    eprintln!("error: `salve inventory` is not built yet");
    crate::exit::INTERNAL
}
