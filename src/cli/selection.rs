//! Reading what a [`Selection`] names: the merged inventory (its warnings go to stderr), the
//! extra variables and the `--limit` pattern. Shared by the commands that read an inventory.

use std::path::Path;

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{HostPattern, Inventory, Vars};

use super::Selection;

/// Load the selection's inventories (printing their warnings) and parse its extra variables.
pub(super) fn load(sel: &Selection) -> Result<(Inventory, Vars), Diagnostics> {
    let extra_vars = crate::config::extra_vars::parse(&sel.extra_vars)
        .map_err(|e| Diagnostics(vec![command_line(e)]))?;
    let loaded = crate::config::inventory::load(&sel.inventories)?;
    for w in &loaded.warnings {
        eprint!("{}", w.render_warning());
    }
    Ok((loaded.value, extra_vars))
}

/// `--limit`, parsed.
pub(super) fn limit(sel: &Selection) -> Result<Option<HostPattern>, Diagnostics> {
    sel.limit
        .as_deref()
        .map(HostPattern::parse)
        .transpose()
        .map_err(|e| Diagnostics(vec![command_line(format!("--limit: {e}"))]))
}

fn command_line(message: String) -> Diagnostic {
    Diagnostic::in_file(Path::new("command line"), message)
}
