//! `salve check`: validate a playbook against its inventory without connecting to any host.
//! Every problem comes back at once, each with its file, line, column and a hint.

use std::collections::BTreeSet;
use std::path::Path;

use super::{AppError, Console, Selection};
use crate::config;

/// Load inventory and playbook (warnings to `console`), apply the selection to every play, and
/// return the summary line.
pub fn check(
    playbook_path: &Path,
    selection: &Selection,
    console: &dyn Console,
) -> Result<String, AppError> {
    let (inventory, extra_vars) = selection.load(console)?;
    let playbook = config::playbook::load(playbook_path, &inventory, &extra_vars)?;
    let per_play = selection.play_hosts(&inventory, &playbook)?;
    super::exchange_access::check(&inventory, &playbook, &per_play)?;
    let hosts = per_play.iter().flatten().collect::<BTreeSet<_>>().len();
    let tasks: usize = playbook
        .plays
        .iter()
        .map(|p| p.tasks.len() + p.handlers.len())
        .sum();
    Ok(format!(
        "ok: {}: {} play{}, {} task{}, {} host{} matched",
        playbook_path.display(),
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
