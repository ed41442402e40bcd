//! `salve inventory`: the resolved hosts with their groups, tenant and merged variables, like
//! `ansible-inventory --list`. Passwords are shown as the reference they are written as
//! (`env:NAME`, `file:PATH`, `prompt`, or `<clear text, redacted>`), never as values.
//!
//! `--json` prints one document:
//! `{"hosts": {NAME: {"groups": [...], "tenant": NAME|null, "vars": {...}}},
//!   "groups": {NAME: {"children": [...], "hosts": [...], "tenant": NAME|null, "vars": {...}}}}`
//! where `groups` lists only groups holding a selected host (and `all`), and each group's
//! `hosts` lists its selected direct members.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{AppError, Console, Selection};
use crate::config::{self, HostQuery};
use crate::diag::Diagnostics;
use crate::model::{Host, HostPattern, Inventory, Vars};
use crate::secret::{SecretRef, is_secret_key};

/// The selection's hosts as text, or as the documented JSON document.
pub fn list(selection: &Selection, json: bool, console: &dyn Console) -> Result<String, AppError> {
    let (inventory, _) = selection.load(console)?;
    let limit = selection.limit()?;
    let all = HostPattern::all();
    // Listing is read-only, so it may span tenants; `--tenant` still narrows it.
    let query = HostQuery {
        pattern: &all,
        limit: limit.as_ref(),
        tenant: selection.tenant.as_deref(),
        all_tenants: true,
    };
    let hosts = config::select_hosts(&inventory, &query).map_err(|d| Diagnostics(vec![d]))?;
    Ok(if json {
        let mut text =
            serde_json::to_string_pretty(&to_json(&inventory, &hosts)).unwrap_or_default();
        text.push('\n');
        text
    } else {
        to_text(&hosts)
    })
}

/// The documented JSON shape (see the module docs).
pub fn to_json(inventory: &Inventory, hosts: &[Host]) -> Value {
    let selected: HashSet<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    let used: HashSet<&str> = hosts
        .iter()
        .flat_map(|h| h.groups.iter().map(String::as_str))
        .chain(["all"])
        .collect();
    let host_map: serde_json::Map<String, Value> = hosts
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                json!({"groups": h.groups, "tenant": h.tenant, "vars": redact(&h.vars)}),
            )
        })
        .collect();
    let group_map: serde_json::Map<String, Value> = inventory
        .groups
        .values()
        .filter(|g| used.contains(g.name.as_str()))
        .map(|g| {
            let members: Vec<&String> = g.hosts.iter().filter(|h| selected.contains(h.as_str())).collect();
            let children: Vec<&String> = g.children.iter().filter(|c| used.contains(c.as_str())).collect();
            (g.name.clone(), json!({"children": children, "hosts": members, "tenant": g.tenant, "vars": redact(&g.vars)}))
        })
        .collect();
    json!({"hosts": host_map, "groups": group_map})
}

fn to_text(hosts: &[Host]) -> String {
    let mut out = String::new();
    for h in hosts {
        out.push_str(&h.name);
        if let Some(t) = &h.tenant {
            out.push_str(&format!("  tenant={t}"));
        }
        out.push_str(&format!("  groups={}\n", h.groups.join(",")));
        for (k, v) in redact(&h.vars) {
            let shown = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            out.push_str(&format!("    {k}: {shown}\n"));
        }
    }
    out.push_str(&format!(
        "{} host{}\n",
        hosts.len(),
        if hosts.len() == 1 { "" } else { "s" }
    ));
    out
}

/// Variables with every password replaced by its reference, at any depth.
pub fn redact(vars: &Vars) -> Vars {
    vars.iter()
        .map(|(k, v)| {
            let shown = if is_secret_key(k) {
                match v {
                    Value::Null => Value::Null,
                    Value::String(s) => Value::String(SecretRef::parse(s).to_string()),
                    _ => Value::String(SecretRef::Plain(String::new()).to_string()),
                }
            } else {
                redact_value(v)
            };
            (k.clone(), shown)
        })
        .collect()
}

fn redact_value(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(redact(map)),
        Value::Array(items) => Value::Array(items.iter().map(redact_value).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_at_any_depth() {
        let vars = json!({"ansible_password": "hunter2", "salve_password": "env:PW", "smtp": {"password": "x", "user": "u"},
                          "list": [{"db_password": 5}]});
        let r = Value::Object(redact(vars.as_object().unwrap()));
        assert_eq!(
            r,
            json!({"ansible_password": "<clear text, redacted>", "salve_password": "env:PW",
                   "smtp": {"password": "<clear text, redacted>", "user": "u"}, "list": [{"db_password": "<clear text, redacted>"}]})
        );
    }
}
