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
    let mut stdout = std::io::stdout().lock();
    let selection = args.selection.to_app();
    let result = crate::app::inventory::list(&selection, args.json, &mut stdout, &Terminal);
    super::exit_with(result, |()| exit::OK)
}
