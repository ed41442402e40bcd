//! Which hosts a command acts on: a play's host pattern, narrowed by `--limit`, then the tenant
//! rule. A selection that spans several tenants is refused unless `--tenant NAME` picks one or
//! `--all-tenants` allows the span, so one command cannot touch two customers by accident.
//! The runner and `salve check` share this function.

use std::path::Path;

use crate::diag::{Diagnostic, did_you_mean};
use crate::model::{Host, HostPattern, Inventory};

/// What to select: everything but the pattern comes from the command line.
#[derive(Debug, Clone, Copy)]
pub struct HostQuery<'a> {
    pub pattern: &'a HostPattern,
    pub limit: Option<&'a HostPattern>,
    pub tenant: Option<&'a str>,
    pub all_tenants: bool,
}

fn command_line(message: String) -> Diagnostic {
    Diagnostic::in_file(Path::new("command line"), message)
}

/// The selected hosts in inventory order, or why the selection is refused.
pub fn select_hosts(inv: &Inventory, q: &HostQuery<'_>) -> Result<Vec<Host>, Diagnostic> {
    let mut hosts = inv
        .select(q.pattern)
        .map_err(|e| command_line(format!("host pattern `{}`: {e}", q.pattern)))?;
    if let Some(limit) = q.limit {
        let allowed = inv
            .select(limit)
            .map_err(|e| command_line(format!("--limit `{limit}`: {e}")))?;
        let allowed: std::collections::HashSet<&str> =
            allowed.iter().map(|h| h.name.as_str()).collect();
        hosts.retain(|h| allowed.contains(h.name.as_str()));
    }
    if let Some(tenant) = q.tenant {
        let tenants = inv.tenants();
        if !tenants.iter().any(|t| t == tenant) {
            let mut d = command_line(format!(
                "--tenant `{tenant}`: no such tenant in the inventory"
            ));
            d.hint = did_you_mean(tenant, tenants.iter().map(String::as_str))
                .or_else(|| Some(format!("tenants: {}", list_or_none(&tenants))));
            return Err(d);
        }
        hosts.retain(|h| h.tenant.as_deref() == Some(tenant));
    } else if !q.all_tenants {
        let mut spanned: Vec<&str> = hosts.iter().filter_map(|h| h.tenant.as_deref()).collect();
        spanned.sort_unstable();
        spanned.dedup();
        if spanned.len() > 1 {
            return Err(command_line(format!(
                "the selection spans {} tenants: {}",
                spanned.len(),
                spanned
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .with_hint(
                "pick one with `--tenant NAME`, or pass `--all-tenants` to act on all of them",
            ));
        }
    }
    Ok(hosts.into_iter().cloned().collect())
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}
