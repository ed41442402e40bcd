//! Before `salve check` and `salve plan` go on: every step that manages Exchange (its module's
//! spec says [`ModuleSpec::manages_exchange`]) has an account to do it from on each WinRM or
//! SSH host it runs on.
//!
//! Exchange's cmdlets reach Active Directory, and Exchange's management shell a Remote
//! PowerShell session, as the process's account. A WinRM or SSH logon is a network logon with no
//! credentials for that second hop, so salve runs those scripts as a scheduled task under the
//! step's `become` account (see `modules::detached`). A step left without one (no
//! `ansible_become_user` for the host, or `become: false` on the play, block or task) would
//! fail on every such host at its first facts read; it is refused here, before anything
//! connects, with the fix.

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{ConnectionKind, Inventory, Playbook, Task, run_as};
use crate::modules::{ModuleSpec, spec};

/// How many host names a problem lists before it counts the rest.
const NAMED: usize = 3;

/// One problem per task that would manage Exchange on WinRM or SSH hosts with no account to
/// do it as; `per_play` are the hosts each play runs on.
pub fn check(
    inventory: &Inventory,
    playbook: &Playbook,
    per_play: &[Vec<String>],
) -> Result<(), Diagnostics> {
    let mut diags = Diagnostics::default();
    for (play, hosts) in playbook.plays.iter().zip(per_play) {
        let tasks = play.tasks.iter().chain(&play.rescue).chain(&play.handlers);
        for task in tasks.filter(|t| spec(&t.call.module).is_some_and(manages)) {
            let without: Vec<&str> = hosts
                .iter()
                .filter_map(|name| inventory.host(name))
                .filter(|host| host.settings.connection.kind != ConnectionKind::Local)
                .filter(|host| {
                    matches!(
                        run_as::for_task(host.settings.run_as.as_ref(), &task.become_),
                        Ok(None)
                    )
                })
                .map(|host| host.name.as_str())
                .collect();
            if !without.is_empty() {
                diags.push(problem(task, &without));
            }
        }
    }
    diags.into_result(())
}

fn manages(spec: &ModuleSpec) -> bool {
    spec.manages_exchange
}

fn problem(task: &Task, hosts: &[&str]) -> Diagnostic {
    let mut named = hosts
        .iter()
        .take(NAMED)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if hosts.len() > NAMED {
        named.push_str(&format!(" and {} more", hosts.len() - NAMED));
    }
    let cause = if task.become_.enabled == Some(false) {
        "the task runs with `become: false`"
    } else {
        "no become account is set for them"
    };
    Diagnostic::at(
        task.call.location.clone(),
        task.call.module.clone(),
        format!(
            "`{}` manages Exchange, which a WinRM or SSH logon cannot do (Exchange's cmdlets \
             reach Active Directory as the logon's account, a second hop it holds no \
             credentials for), and {cause} on {named}",
            task.name
        ),
    )
    .with_hint(
        "set ansible_become_user and ansible_become_password (a secret reference) for these \
         hosts to an account that can manage Exchange (Organization Management): salve runs \
         Exchange's cmdlets as a scheduled task under it",
    )
}
