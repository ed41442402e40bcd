//! Reading what a [`Selection`] names — the merged inventory, the extra variables and the
//! `--limit` pattern — and preparing a validated run from it ([`prepare`]). Shared by every
//! command that reads an inventory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::inventory::BadSettings;
use crate::config::{self, HostQuery};
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{HostPattern, Inventory, Playbook, Vars};
use crate::runner::RunInput;

use super::Console;

/// Which inventory and which hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Inventory files (Ansible YAML format), merged in order.
    pub inventories: Vec<PathBuf>,
    /// A host pattern further limiting the hosts (`ex*:&dag1:!ex03`, `@file`).
    pub limit: Option<String>,
    /// Restrict the run to one tenant (customer).
    pub tenant: Option<String>,
    /// Allow a run to span several tenants.
    pub all_tenants: bool,
    /// Extra variables `key=value` (highest precedence); the value is parsed as YAML.
    pub extra_vars: Vec<String>,
}

impl Selection {
    /// Load the inventories (their warnings go to `console`) and parse the extra variables.
    pub fn load(&self, console: &dyn Console) -> Result<(Inventory, Vars), Diagnostics> {
        let extra_vars = self.extra_vars()?;
        let loaded = config::inventory::load(&self.inventories)?;
        notify_warnings(&loaded.warnings, console);
        Ok((loaded.value, extra_vars))
    }

    /// Like [`Selection::load`] for `salve doctor`: hosts whose settings are unusable are kept,
    /// with their errors, so that each is named as that host's problem.
    pub fn load_keeping_bad_settings(
        &self,
        console: &dyn Console,
    ) -> Result<(Inventory, BadSettings), Diagnostics> {
        self.extra_vars()?;
        let (loaded, bad) = config::inventory::load_keeping_bad_settings(&self.inventories)?;
        notify_warnings(&loaded.warnings, console);
        Ok((loaded.value, bad))
    }

    fn extra_vars(&self) -> Result<Vars, Diagnostics> {
        config::extra_vars::parse(&self.extra_vars)
            .map_err(|e| Diagnostics(vec![e.into_diagnostic()]))
    }

    /// `--limit`, parsed.
    pub fn limit(&self) -> Result<Option<HostPattern>, Diagnostics> {
        self.limit
            .as_deref()
            .map(HostPattern::parse)
            .transpose()
            .map_err(|e| Diagnostics(vec![command_line(format!("--limit: {e}"))]))
    }

    /// The hosts each play runs on: its pattern, then `--limit` and the tenant rule.
    pub fn play_hosts(
        &self,
        inventory: &Inventory,
        playbook: &Playbook,
    ) -> Result<Vec<Vec<String>>, Diagnostics> {
        let limit = self.limit()?;
        let mut per_play = Vec::with_capacity(playbook.plays.len());
        let mut diags = Diagnostics::default();
        for play in &playbook.plays {
            let query = HostQuery {
                pattern: &play.hosts,
                limit: limit.as_ref(),
                tenant: self.tenant.as_deref(),
                all_tenants: self.all_tenants,
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
}

/// A validated run, ready to start: nothing has connected yet.
pub struct Prepared {
    pub input: RunInput,
    pub extra_vars: Vars,
}

impl Prepared {
    /// Whether any selected host's password is `prompt` (to be asked once, before the run).
    pub fn needs_password_prompt(&self) -> bool {
        self.input.play_hosts.iter().flatten().any(|name| {
            (self.input.inventory.host(name)).is_some_and(|h| {
                h.settings.connection.password == Some(crate::secret::SecretRef::Prompt)
            })
        })
    }
}

/// Load and validate the playbook against the selection's inventory and pick each play's
/// hosts; nothing connects yet.
pub fn prepare(
    playbook: &Path,
    selection: &Selection,
    console: &dyn Console,
) -> Result<Prepared, Diagnostics> {
    let (inventory, extra_vars) = selection.load(console)?;
    let playbook = config::playbook::load(playbook, &inventory, &extra_vars)?;
    let play_hosts = selection.play_hosts(&inventory, &playbook)?;
    if play_hosts.iter().all(Vec::is_empty) {
        console.notice("warning: no hosts matched; nothing to do");
    }
    Ok(Prepared {
        input: RunInput {
            playbook: Arc::new(playbook),
            inventory: Arc::new(inventory),
            play_hosts,
        },
        extra_vars,
    })
}

fn notify_warnings(warnings: &[Diagnostic], console: &dyn Console) {
    for w in warnings {
        console.notice(w.render_warning().trim_end());
    }
}

fn command_line(message: String) -> Diagnostic {
    Diagnostic::in_file(Path::new("command line"), message)
}
