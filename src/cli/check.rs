//! `salve check`: validate a playbook against its inventory without connecting to any host.
//! Every problem is printed with its file, line, column and a caret; the exit code is
//! [`crate::exit::INVALID_INPUT`] if there was any, else a one-line summary and
//! [`crate::exit::OK`].

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::config;
use crate::diag::Diagnostics;
use crate::exit;

use super::Selection;

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
    match check(&args) {
        Ok(summary) => {
            println!("{summary}");
            exit::OK
        }
        Err(diags) => {
            eprint!("{}", diags.render());
            exit::INVALID_INPUT
        }
    }
}

/// Load inventory and playbook (printing warnings), apply the selection to every play, and
/// return the summary line.
fn check(args: &CheckArgs) -> Result<String, Diagnostics> {
    let (inventory, extra_vars) = super::selection::load(&args.selection)?;
    let playbook = config::playbook::load(&args.playbook, &inventory, &extra_vars)?;
    let per_play = super::selection::play_hosts(&inventory, &playbook, &args.selection)?;
    let hosts = per_play.iter().flatten().collect::<BTreeSet<_>>().len();
    let tasks: usize = playbook
        .plays
        .iter()
        .map(|p| p.tasks.len() + p.handlers.len())
        .sum();
    Ok(format!(
        "ok: {}: {} play{}, {} task{}, {} host{} matched",
        args.playbook.display(),
        playbook.plays.len(),
        plural(playbook.plays.len()),
        tasks,
        plural(tasks),
        hosts,
        plural(hosts)
    ))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
