//! `salve check`: validate a playbook against its inventory without connecting to any host.
//! Every problem is printed with its file, line, column and a caret; the exit code is
//! [`crate::exit::INVALID_INPUT`] if there was any, else a one-line summary and
//! [`crate::exit::OK`].

use std::path::PathBuf;

use super::Selection;
use super::console::Terminal;
use crate::exit;

/// Arguments of `salve check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The playbook to validate.
    #[arg(value_name = "PLAYBOOK")]
    pub playbook: PathBuf,
    #[command(flatten)]
    pub selection: Selection,
}

pub fn run(args: CheckArgs) -> u8 {
    let result = crate::app::check::check(&args.playbook, &args.selection.to_app(), &Terminal);
    super::exit_with(result, |summary| {
        println!("{summary}");
        exit::OK
    })
}
