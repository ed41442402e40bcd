//! Reading what a [`Selection`] names: the merged inventory (its warnings go to stderr), the
//! extra variables and the `--limit` pattern. Shared by the commands that read an inventory.

use std::path::Path;

use crate::config::inventory::BadSettings;
use crate::config::{self, HostQuery};
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{HostPattern, Inventory, Playbook, Vars};

use super::Selection;

/// Load the selection's inventories (printing their warnings) and parse its extra variables.
pub(super) fn load(sel: &Selection) -> Result<(Inventory, Vars), Diagnostics> {
    let extra_vars = extra_vars(sel)?;
    let loaded = crate::config::inventory::load(&sel.inventories)?;
    print_warnings(&loaded.warnings);
    Ok((loaded.value, extra_vars))
}

/// Like [`load`] for `salve doctor`: hosts whose settings are unusable are kept, with their
/// errors, so that each is named as that host's problem.
pub(super) fn load_keeping_bad_settings(
    sel: &Selection,
) -> Result<(Inventory, BadSettings), Diagnostics> {
    extra_vars(sel)?;
    let (loaded, bad) = crate::config::inventory::load_keeping_bad_settings(&sel.inventories)?;
    print_warnings(&loaded.warnings);
    Ok((loaded.value, bad))
}

fn extra_vars(sel: &Selection) -> Result<Vars, Diagnostics> {
    crate::config::extra_vars::parse(&sel.extra_vars)
        .map_err(|e| Diagnostics(vec![command_line(e)]))
}

fn print_warnings(warnings: &[Diagnostic]) {
    for w in warnings {
        eprint!("{}", w.render_warning());
    }
}

/// `--limit`, parsed.
pub(super) fn limit(sel: &Selection) -> Result<Option<HostPattern>, Diagnostics> {
    sel.limit
        .as_deref()
        .map(HostPattern::parse)
        .transpose()
        .map_err(|e| Diagnostics(vec![command_line(format!("--limit: {e}"))]))
}

/// The hosts each play runs on: its pattern, then `--limit` and the tenant rule.
pub(super) fn play_hosts(
    inventory: &Inventory,
    playbook: &Playbook,
    sel: &Selection,
) -> Result<Vec<Vec<String>>, Diagnostics> {
    let limit = limit(sel)?;
    let mut per_play = Vec::with_capacity(playbook.plays.len());
    let mut diags = Diagnostics::default();
    for play in &playbook.plays {
        let query = HostQuery {
            pattern: &play.hosts,
            limit: limit.as_ref(),
            tenant: sel.tenant.as_deref(),
            all_tenants: sel.all_tenants,
        };
        match config::select_hosts(inventory, &query) {
            Ok(hosts) => per_play.push(hosts.into_iter().map(|h| h.name).collect()),
            Err(mut d) => {
                d.message = format!("play `{}`: {}", play.name, d.message);
                diags.push(d);
            }
        }
    }
    diags.into_result(per_play)
}

fn command_line(message: String) -> Diagnostic {
    Diagnostic::in_file(Path::new("command line"), message)
}
