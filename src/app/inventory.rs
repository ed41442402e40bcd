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
use std::io::{self, Write};

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

use super::{AppError, Console, Selection};
use crate::config::{self, HostQuery};
use crate::diag::Diagnostics;
use crate::model::{Group, Host, HostPattern, Inventory};
use crate::secret::{SecretRef, is_secret_key};

/// Write the selection's hosts to `out` as text, or as the documented JSON document. Both
/// are written as they are produced, never built whole: a listing of 10,000 hosts with large
/// group variables is hundreds of megabytes of text. A reader that goes away (`| head`) ends
/// the listing quietly.
pub fn list(
    selection: &Selection,
    json: bool,
    out: &mut dyn Write,
    console: &dyn Console,
) -> Result<(), AppError> {
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
    let mut out = io::BufWriter::new(out);
    let written = if json {
        serde_json::to_writer_pretty(&mut out, &Listing::new(&inventory, &hosts))
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
    } else {
        write_text(&mut out, &hosts)
    };
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(AppError::internal("cannot write the inventory listing", e))
        }
        _ => Ok(()),
    }
}

/// The documented JSON shape (see the module docs), serialized as it is written.
struct Listing<'a> {
    inventory: &'a Inventory,
    hosts: &'a [Host],
    /// The selected hosts' names.
    selected: HashSet<&'a str>,
    /// The groups holding a selected host, and `all`.
    used: HashSet<&'a str>,
}

impl<'a> Listing<'a> {
    fn new(inventory: &'a Inventory, hosts: &'a [Host]) -> Self {
        Listing {
            inventory,
            hosts,
            selected: hosts.iter().map(|h| h.name.as_str()).collect(),
            used: (hosts.iter())
                .flat_map(|h| h.groups.iter().map(String::as_str))
                .chain(["all"])
                .collect(),
        }
    }
}

impl Serialize for Listing<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut doc = s.serialize_map(Some(2))?;
        doc.serialize_entry("hosts", &HostsMap(self))?;
        doc.serialize_entry("groups", &GroupsMap(self))?;
        doc.end()
    }
}

/// `"hosts": {NAME: {"groups", "tenant", "vars"}}`.
struct HostsMap<'a>(&'a Listing<'a>);

impl Serialize for HostsMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.hosts.len()))?;
        for h in self.0.hosts {
            map.serialize_entry(&h.name, &HostEntry(h))?;
        }
        map.end()
    }
}

struct HostEntry<'a>(&'a Host);

impl Serialize for HostEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let h = self.0;
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("groups", &h.groups)?;
        map.serialize_entry("tenant", &h.tenant)?;
        map.serialize_entry("vars", &RedactedVars(|| h.vars.iter()))?;
        map.end()
    }
}

/// `"groups": {NAME: {"children", "hosts", "tenant", "vars"}}`: the groups holding a selected
/// host (and `all`), each with its selected direct members.
struct GroupsMap<'a>(&'a Listing<'a>);

impl Serialize for GroupsMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let listing = self.0;
        let groups =
            (listing.inventory.groups.values()).filter(|g| listing.used.contains(g.name.as_str()));
        let mut map = s.serialize_map(None)?;
        for g in groups {
            map.serialize_entry(&g.name, &GroupEntry(listing, g))?;
        }
        map.end()
    }
}

struct GroupEntry<'a>(&'a Listing<'a>, &'a Group);

impl Serialize for GroupEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let GroupEntry(listing, g) = *self;
        let members: Vec<&String> = (g.hosts.iter())
            .filter(|h| listing.selected.contains(h.as_str()))
            .collect();
        let children: Vec<&String> = (g.children.iter())
            .filter(|c| listing.used.contains(c.as_str()))
            .collect();
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("children", &children)?;
        map.serialize_entry("hosts", &members)?;
        map.serialize_entry("tenant", &g.tenant)?;
        map.serialize_entry("vars", &RedactedVars(|| g.vars.iter()))?;
        map.end()
    }
}

/// Variables with every password replaced by its reference, at any depth, serialized from
/// an iterator over them (so a host's layered variables are never merged into one map).
struct RedactedVars<F>(F);

impl<'v, F, I> Serialize for RedactedVars<F>
where
    F: Fn() -> I,
    I: Iterator<Item = (&'v String, &'v Value)>,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (k, v) in (self.0)() {
            map.serialize_entry(k, &RedactedEntry(k, v))?;
        }
        map.end()
    }
}

/// One variable as shown: a password as the reference it is written as, anything else with
/// the passwords inside it redacted.
struct RedactedEntry<'v>(&'v str, &'v Value);

impl Serialize for RedactedEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let RedactedEntry(key, value) = *self;
        if !is_secret_key(key) {
            return Redacted(value).serialize(s);
        }
        match value {
            Value::Null => s.serialize_unit(),
            Value::String(v) => s.collect_str(&SecretRef::parse(v)),
            _ => s.collect_str(&SecretRef::Plain(String::new())),
        }
    }
}

/// A value with the passwords inside it redacted.
struct Redacted<'v>(&'v Value);

impl Serialize for Redacted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => RedactedVars(|| map.iter()).serialize(s),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Redacted(item))?;
                }
                seq.end()
            }
            other => other.serialize(s),
        }
    }
}

fn write_text(out: &mut dyn Write, hosts: &[Host]) -> io::Result<()> {
    for h in hosts {
        write!(out, "{}", h.name)?;
        if let Some(t) = &h.tenant {
            write!(out, "  tenant={t}")?;
        }
        writeln!(out, "  groups={}", h.groups.join(","))?;
        for (k, v) in h.vars.iter() {
            let shown = match serde_json::to_value(RedactedEntry(k, v)) {
                Ok(Value::String(s)) => s,
                Ok(other) => other.to_string(),
                Err(e) => return Err(e.into()),
            };
            writeln!(out, "    {k}: {shown}")?;
        }
    }
    let plural = if hosts.len() == 1 { "" } else { "s" };
    writeln!(out, "{} host{plural}", hosts.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Vars;
    use serde_json::json;

    fn redact(vars: &Vars) -> Value {
        serde_json::to_value(RedactedVars(|| vars.iter())).unwrap()
    }

    #[test]
    fn redacts_at_any_depth() {
        let vars = json!({"ansible_password": "hunter2", "salve_password": "env:PW", "smtp": {"password": "x", "user": "u"},
                          "list": [{"db_password": 5}]});
        let r = redact(vars.as_object().unwrap());
        assert_eq!(
            r,
            json!({"ansible_password": "<clear text, redacted>", "salve_password": "env:PW",
                   "smtp": {"password": "<clear text, redacted>", "user": "u"}, "list": [{"db_password": "<clear text, redacted>"}]})
        );
    }
}
