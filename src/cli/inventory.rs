//! `salve inventory`: its arguments, handed to [`crate::app::inventory`]; prints the listing.

use super::Selection;
use super::console::Terminal;
use crate::exit;

/// Arguments of `salve inventory`.
#[derive(Debug, clap::Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: InventoryArgs) -> u8 {
    let result = crate::app::inventory::list(&args.selection.to_app(), args.json, &Terminal);
    super::exit_with(result, |text| {
        print!("{text}");
        exit::OK
    })
}
