//! `salve check`: validate a playbook against its inventory without connecting to any host.
//! Every problem comes back at once, each with its file, line, column and a hint. Package
//! shares a task installing update packages could not read (the double hop) are reported as notices,
//! with the fix.

use std::collections::BTreeSet;
use std::path::Path;

use super::{AppError, Console, Selection};
use crate::config;
use crate::doctor;
use crate::model::inventory::Inventory;
use crate::model::playbook::Playbook;
use crate::model::playbook::Task;
use crate::model::run_as;
use crate::modules::{self, Action};

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
    // The package warnings first: a refusal below does not hide them.
    for notice in unreachable_packages(&inventory, &playbook, &per_play) {
        console.notice(&notice);
    }
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

/// For each host and task installing update packages (`exchange_update`'s `sources`): package
/// sources the host could not get, with the fix: on a share that neither the task's account nor
/// a share account could read ([`doctor::sources_check`]), or to be served by salve from a host
/// without `salve_package_server` ([`doctor::package_server_check`]; whether a configured server
/// starts is `doctor`'s to find out). A task's `sources` given as a template are taken as the
/// host's `salve_update_sources`.
fn unreachable_packages(
    inventory: &Inventory,
    playbook: &Playbook,
    per_play: &[Vec<String>],
) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (play, hosts) in playbook.plays.iter().zip(per_play) {
        // A module whose steps install update-path packages takes them from `sources`.
        let installs = |t: &&Task| {
            modules::spec(&t.call.module).is_some_and(|s| s.action == Action::InstallStep)
        };
        for task in play.tasks.iter().filter(installs) {
            for host in hosts.iter().filter_map(|h| inventory.host(h)) {
                let sources = match task.call.args.get("sources") {
                    Some(s) if s.is_object() => Some(s),
                    _ => host.vars.get("salve_update_sources"),
                };
                let Ok(run_as) = run_as::for_task(host.settings.run_as.as_ref(), &task.become_)
                else {
                    continue;
                };
                let host_share = host
                    .settings
                    .share_account
                    .as_ref()
                    .map(|a| a.user.as_str());
                let shares = doctor::sources_check(sources, None, run_as.as_ref(), host_share);
                let served = match host.settings.package_server {
                    None => doctor::package_server_check(sources, None),
                    Some(_) => None,
                };
                for check in shares.into_iter().chain(served).filter(|c| !c.ok) {
                    found.insert(format!(
                        "warning: {}: task `{}`: {}; fix: {}",
                        host.name,
                        task.name,
                        check.detail,
                        check.fix.unwrap_or_default()
                    ));
                }
            }
        }
    }
    found
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
