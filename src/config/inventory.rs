//! Ansible-format YAML inventories (`all:`/`children:`/`hosts:`/`vars:`, host ranges) →
//! [`crate::model::Inventory`].
//!
//! # Shape
//! The top level maps group names to group bodies; `all` is the root, and any other top-level
//! group is a child of `all`, as in Ansible. A group body may hold only `hosts:` (a mapping of
//! host names, each with a mapping of variables or nothing), `vars:` and `children:` (a mapping
//! of group names to group bodies, nested to any depth). Host names may hold ranges
//! (`ex[01:12].contoso.local`, `db-[a:f]`, `ex[01:10:2]`, see [`super::hostrange`]). Hosts that
//! belong to no group but `all` are also in the implicit group `ungrouped`. Several files merge:
//! a group or host defined again gains the new hosts, children and variables (later wins).
//!
//! # Variable precedence
//! Lowest to highest: `all` → parent groups → child groups → the host's own variables. Groups
//! are applied in order of depth (distance from `all`, the longest path counting); groups at the
//! same depth are applied in alphabetical order, so the later name wins. This is Ansible's rule.
//! Extra variables (`-e`) and play variables are layered on top by the runner.
//!
//! # Tenancy
//! A group with `salve_tenant: true` is a tenant named after the group; `salve_tenant: "Name"`
//! names it explicitly. Every host under the group (directly or through child groups) belongs
//! to that tenant. A host under two different tenants is an error. `salve_tenant` is consumed
//! here and not kept among the host's variables.
//!
//! # Host settings
//! Each host's connection settings, maintenance windows and DAG are read from its merged
//! variables here ([`crate::model::HostSettings`]); a value salve cannot use is reported at
//! the place the winning definition was written, once however many hosts inherit it.
//!
//! # Secrets
//! Password variables ([`crate::secret::is_secret_var`]) should be references: `env:NAME`,
//! `file:PATH` or `prompt`. A clear-text password works but produces one warning per file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use marked_yaml::Node;
use marked_yaml::types::MarkedScalarNode;
use serde_json::Value;

use crate::diag::{Diagnostic, Diagnostics, Location, did_you_mean};
use crate::model::{Group, Host, HostSettings, Inventory, LayeredVars, SettingError, Vars};
use crate::secret::{SecretRef, is_secret_var};

use super::Loaded;
use super::hostrange;
use super::yaml::{Doc, TopLevel, child, describe, index, scalar_value, sha256_hex, to_json};

const GROUP_KEYS: [&str; 3] = ["hosts", "vars", "children"];
const TENANT_VAR: &str = "salve_tenant";

/// Load and merge inventory files. Every problem in every file is reported at once, a host
/// setting salve cannot use (connection, windows, DAG) included.
pub fn load(paths: &[PathBuf]) -> Result<Loaded<Inventory>, Diagnostics> {
    let (mut b, loaded) = read(paths);
    b.diags.extend(b.setting_diags);
    b.diags.into_result(loaded)
}

/// Each host's settings errors, by host name.
pub type BadSettings = BTreeMap<String, Vec<SettingError>>;

/// Like [`load`], except that unusable host settings do not refuse the inventory: such a host
/// keeps the defaults for them, and its errors are returned by host name. For `salve doctor`,
/// which names them as that host's problem; never for working on hosts.
pub fn load_keeping_bad_settings(
    paths: &[PathBuf],
) -> Result<(Loaded<Inventory>, BadSettings), Diagnostics> {
    let (b, loaded) = read(paths);
    b.diags.into_result((loaded, b.bad_settings))
}

fn read(paths: &[PathBuf]) -> (Builder, Loaded<Inventory>) {
    let mut b = Builder::default();
    let mut digest_input = Vec::new();
    for path in paths {
        match Doc::read(path, TopLevel::Mapping) {
            Ok(doc) => {
                digest_input.extend_from_slice(&doc.bytes);
                b.file(&doc);
            }
            Err(d) => b.diags.push(d),
        }
    }
    let inventory = b.resolve(paths.to_vec(), sha256_hex(&digest_input));
    let warnings = std::mem::take(&mut b.warnings);
    let loaded = Loaded {
        value: inventory,
        warnings,
    };
    (b, loaded)
}

/// Where a variable's value was written: the value, its field path, and each item's position
/// when the value is a list.
#[derive(Debug, Clone)]
struct Site {
    at: Location,
    field: String,
    items: Vec<Location>,
}

/// The [`Site`] of each variable of a `vars:` mapping, a group or a host.
type Sites = HashMap<String, Site>;

#[derive(Debug, Default)]
struct RawGroup {
    children: Vec<String>,
    hosts: Vec<String>,
    /// `hosts` as a set: a tenant group may list thousands.
    members: HashSet<String>,
    vars: Vars,
    sites: Sites,
    /// Tenant name and where `salve_tenant` was set.
    tenant: Option<(String, Location)>,
    location: Option<Location>,
}

#[derive(Debug)]
struct RawHost {
    /// Shared by the hosts of one range until one of them gains variables of its own.
    vars: Arc<Vars>,
    sites: Sites,
    location: Location,
}

#[derive(Debug, Default)]
struct Builder {
    /// Groups in first-seen order.
    group_order: Vec<String>,
    groups: HashMap<String, RawGroup>,
    host_order: Vec<String>,
    hosts: HashMap<String, RawHost>,
    diags: Diagnostics,
    /// Unusable host settings, once per definition.
    setting_diags: Diagnostics,
    bad_settings: BadSettings,
    warnings: Vec<Diagnostic>,
}

/// Groups that contain each other through `children:`, in order, the first repeated last.
#[derive(Debug, thiserror::Error)]
#[error("groups contain each other: {}", .0.join(" ← "))]
struct GroupCycle(Vec<String>);

impl Builder {
    fn file(&mut self, doc: &Doc) {
        let mut clear_text: Vec<(Location, String)> = Vec::new();
        if let Some(top) = doc.mapping(&doc.root, "", "a mapping of group names", &mut self.diags) {
            for (key, body) in top.entries() {
                self.group(doc, key, body, &child("", key.as_str()), &mut clear_text);
            }
        }
        if let Some((first, var)) = clear_text.first() {
            let more = match clear_text.len() {
                1 => String::new(),
                n => format!(" (and {} more in this file)", n - 1),
            };
            // No source location on purpose: rendering it would print the line, password and all.
            let mut warning = Diagnostic::in_file(
                &doc.file,
                format!(
                    "password written in clear text on line {}{more}",
                    first.line
                ),
            )
            .with_hint("use `env:NAME`, `file:PATH` or `prompt` instead of the password itself");
            warning.field = var.clone();
            self.warnings.push(warning);
        }
    }

    fn group_entry(&mut self, name: &str, location: Location) -> &mut RawGroup {
        if !self.groups.contains_key(name) {
            self.group_order.push(name.to_string());
        }
        let g = self.groups.entry(name.to_string()).or_default();
        g.location.get_or_insert(location);
        g
    }

    fn group(
        &mut self,
        doc: &Doc,
        key: &MarkedScalarNode,
        body: &Node,
        path: &str,
        clear: &mut Vec<(Location, String)>,
    ) {
        let name = key.as_str();
        self.group_entry(name, doc.key_loc(key));
        let Some(body) = doc.mapping(
            body,
            path,
            "a group (a mapping with `hosts`, `vars` or `children`)",
            &mut self.diags,
        ) else {
            return;
        };
        for (k, v) in body.entries() {
            let field = child(path, k.as_str());
            match k.as_str() {
                "hosts" => self.hosts(doc, name, v, &field, clear),
                "vars" => {
                    let (vars, sites) = self.vars(doc, v, &field, clear);
                    let tenant = self.tenant_decl(doc, name, v, &field);
                    let g = self.group_entry(name, doc.key_loc(key));
                    if let Some(t) = tenant {
                        g.tenant = t;
                    }
                    g.vars.extend(vars);
                    g.sites.extend(sites);
                }
                "children" => {
                    let Some(children) =
                        doc.mapping(v, &field, "a mapping of group names", &mut self.diags)
                    else {
                        continue;
                    };
                    for (ck, cv) in children.entries() {
                        let g = self.group_entry(name, doc.key_loc(key));
                        if !g.children.iter().any(|c| c == ck.as_str()) {
                            g.children.push(ck.as_str().to_string());
                        }
                        self.group(doc, ck, cv, &child(&field, ck.as_str()), clear);
                    }
                }
                other => {
                    let hint = did_you_mean(other, GROUP_KEYS).unwrap_or_else(|| {
                        format!("a group may hold only `hosts`, `vars` and `children`; to nest group `{other}`, put it under `children:`")
                    });
                    self.diags.push(
                        Diagnostic::at(
                            doc.key_loc(k),
                            &field,
                            format!("unknown key `{other}` in group `{name}`"),
                        )
                        .with_hint(hint),
                    );
                }
            }
        }
    }

    fn hosts(
        &mut self,
        doc: &Doc,
        group: &str,
        node: &Node,
        path: &str,
        clear: &mut Vec<(Location, String)>,
    ) {
        let Some(hosts) = doc.mapping(
            node,
            path,
            "a mapping of host names (`ex01:` on its own line per host)",
            &mut self.diags,
        ) else {
            return;
        };
        for (k, v) in hosts.entries() {
            let field = child(path, k.as_str());
            let names = match hostrange::expand(k.as_str()) {
                Ok(names) => names,
                Err(e) => {
                    self.diags.push(
                        Diagnostic::at(doc.key_loc(k), &field, e.to_string())
                            .with_hint("ranges look like `ex[01:12]`, `ex[1:9:2]` or `db-[a:f]`"),
                    );
                    continue;
                }
            };
            let (vars, sites) = match v {
                Node::Scalar(s) if super::yaml::is_null(s) => Default::default(),
                Node::Mapping(_) => self.vars(doc, v, &field, clear),
                other => {
                    self.diags.push(doc.wrong_type(
                        other,
                        &field,
                        "host variables as a mapping, or nothing",
                    ));
                    Default::default()
                }
            };
            let vars = Arc::new(vars);
            for name in names {
                match self.hosts.get_mut(&name) {
                    Some(h) => {
                        if !vars.is_empty() {
                            Arc::make_mut(&mut h.vars).extend(vars.as_ref().clone());
                        }
                        h.sites.extend(sites.clone());
                    }
                    None => {
                        self.host_order.push(name.clone());
                        self.hosts.insert(
                            name.clone(),
                            RawHost {
                                vars: Arc::clone(&vars),
                                sites: sites.clone(),
                                location: doc.key_loc(k),
                            },
                        );
                    }
                }
                let g = self.group_entry(group, doc.key_loc(k));
                if g.members.insert(name.clone()) {
                    g.hosts.push(name);
                }
            }
        }
    }

    /// A `vars:` mapping as JSON, with where each value was written; notes clear-text
    /// passwords.
    fn vars(
        &mut self,
        doc: &Doc,
        node: &Node,
        path: &str,
        clear: &mut Vec<(Location, String)>,
    ) -> (Vars, Sites) {
        let (mut out, mut sites) = (Vars::new(), Sites::new());
        let Some(map) = doc.mapping(node, path, "a mapping of variables", &mut self.diags) else {
            return (out, sites);
        };
        for (k, v) in map.entries() {
            let value = to_json(v);
            let field = child(path, k.as_str());
            if is_secret_var(k.as_str()) && is_clear_text(&value) {
                clear.push((doc.loc(v), field.clone()));
            }
            if k.as_str() != TENANT_VAR {
                out.insert(k.as_str().to_string(), value);
                let items = match v {
                    Node::Sequence(items) => items.iter().map(|item| doc.loc(item)).collect(),
                    _ => Vec::new(),
                };
                let at = doc.loc(v);
                sites.insert(k.as_str().to_string(), Site { at, field, items });
            }
        }
        (out, sites)
    }

    /// `salve_tenant` in a group's vars: `Some(Some(name))` marks a tenant, `Some(None)` clears it.
    fn tenant_decl(
        &mut self,
        doc: &Doc,
        group: &str,
        vars: &Node,
        path: &str,
    ) -> Option<Option<(String, Location)>> {
        let node = vars.as_mapping()?.get_node(TENANT_VAR)?;
        let field = child(path, TENANT_VAR);
        let loc = doc.loc(node);
        if let Ok(flag) = doc.bool(node, &field) {
            return Some(flag.then(|| (group.to_string(), loc)));
        }
        match node {
            Node::Scalar(s)
                if matches!(scalar_value(s), Value::String(_)) && !s.as_str().trim().is_empty() =>
            {
                Some(Some((s.as_str().to_string(), loc)))
            }
            other => {
                self.diags.push(
                    Diagnostic::at(
                        loc,
                        field,
                        format!(
                            "expected `true` or a tenant name, found {}",
                            describe(other)
                        ),
                    )
                    .with_hint(format!(
                        "`salve_tenant: true` names the tenant `{group}` after the group"
                    )),
                );
                None
            }
        }
    }

    fn resolve(&mut self, sources: Vec<PathBuf>, digest: String) -> Inventory {
        // `all` and `ungrouped` always exist; every other group without a parent hangs off `all`.
        for name in ["all", "ungrouped"] {
            if !self.groups.contains_key(name) {
                self.group_order.push(name.to_string());
                self.groups.insert(name.to_string(), RawGroup::default());
            }
        }
        let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
        for (name, g) in &self.groups {
            for c in &g.children {
                parents.entry(c.as_str()).or_default().push(name.as_str());
            }
        }
        let mut diags = std::mem::take(&mut self.diags);
        let depths = self.depths(&parents, &mut diags);
        let mut top_level: Vec<String> = Vec::new();
        for name in &self.group_order {
            if name != "all" && !parents.contains_key(name.as_str()) {
                top_level.push(name.clone());
            }
        }

        let mut direct: HashMap<&str, Vec<&str>> = HashMap::new();
        for (name, g) in &self.groups {
            for h in &g.hosts {
                direct.entry(h.as_str()).or_default().push(name.as_str());
            }
        }
        // Each group's variables once, shared by its hosts.
        let group_vars: HashMap<&str, Arc<Vars>> = self
            .groups
            .iter()
            .map(|(name, g)| (name.as_str(), Arc::new(g.vars.clone())))
            .collect();
        let mut ungrouped = Vec::new();
        let mut hosts = Vec::new();
        for name in &self.host_order {
            let raw = &self.hosts[name];
            let mut groups: HashSet<&str> = HashSet::from(["all"]);
            let mut stack: Vec<&str> = direct.get(name.as_str()).cloned().unwrap_or_default();
            while let Some(g) = stack.pop() {
                if groups.insert(g) {
                    stack.extend(parents.get(g).into_iter().flatten().copied());
                }
            }
            if groups.iter().all(|g| *g == "all" || *g == "ungrouped") {
                groups.insert("ungrouped");
                ungrouped.push(name.clone());
            }
            let mut groups: Vec<&str> = groups.into_iter().collect();
            groups.sort_by_key(|g| (depths.get(*g).copied().unwrap_or(0), *g));
            let vars = LayeredVars::new(
                (groups.iter().map(|g| Arc::clone(&group_vars[*g]))).chain([Arc::clone(&raw.vars)]),
            );
            let tenant = self.host_tenant(name, &raw.location, &groups, &mut diags);
            let (settings, errors) = HostSettings::read_with_defaults(name, &vars);
            for e in &errors {
                // Where the winning value was written: the host, else its last group with it.
                let site = |var: &str| {
                    (raw.sites.get(var)).or_else(|| {
                        groups
                            .iter()
                            .rev()
                            .find_map(|g| self.groups[*g].sites.get(var))
                    })
                };
                let d = setting_diagnostic(name, &raw.location, site, e);
                if !self.setting_diags.iter().any(|seen| *seen == d) {
                    self.setting_diags.push(d);
                }
            }
            if !errors.is_empty() {
                self.bad_settings.insert(name.clone(), errors);
            }
            hosts.push(Host {
                name: name.clone(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                tenant,
                vars,
                settings,
                location: Some(raw.location.clone()),
            });
        }

        let mut groups = BTreeMap::new();
        for name in &self.group_order {
            let raw = &self.groups[name];
            let mut children = raw.children.clone();
            let mut own_hosts = raw.hosts.clone();
            if name == "all" {
                children.extend(
                    top_level
                        .iter()
                        .filter(|c| !children.contains(c))
                        .cloned()
                        .collect::<Vec<_>>(),
                );
            }
            if name == "ungrouped" {
                own_hosts.extend(
                    ungrouped
                        .iter()
                        .filter(|h| !raw.members.contains(*h))
                        .cloned()
                        .collect::<Vec<_>>(),
                );
            }
            groups.insert(
                name.clone(),
                Group {
                    name: name.clone(),
                    children,
                    hosts: own_hosts,
                    vars: Arc::clone(&group_vars[name.as_str()]),
                    tenant: raw.tenant.as_ref().map(|(t, _)| t.clone()),
                    location: raw.location.clone(),
                },
            );
        }
        self.diags = diags;
        Inventory::new(hosts, groups, sources, digest)
    }

    /// Depth of every group: 0 for `all`, else one more than its deepest parent (top-level
    /// groups have `all` as parent). Reports cycles in `children:`.
    fn depths(
        &self,
        parents: &HashMap<&str, Vec<&str>>,
        diags: &mut Diagnostics,
    ) -> HashMap<String, usize> {
        fn visit<'a>(
            g: &'a str,
            parents: &HashMap<&'a str, Vec<&'a str>>,
            memo: &mut HashMap<String, usize>,
            path: &mut Vec<&'a str>,
        ) -> Result<usize, GroupCycle> {
            if g == "all" {
                return Ok(0);
            }
            if let Some(d) = memo.get(g) {
                return Ok(*d);
            }
            if let Some(i) = path.iter().position(|p| *p == g) {
                let mut cycle: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
                cycle.push(g.to_string());
                return Err(GroupCycle(cycle));
            }
            path.push(g);
            let mut depth = 1;
            for p in parents.get(g).into_iter().flatten() {
                depth = depth.max(visit(p, parents, memo, path)? + 1);
            }
            path.pop();
            memo.insert(g.to_string(), depth);
            Ok(depth)
        }
        let mut memo = HashMap::new();
        for name in &self.group_order {
            if let Err(cycle) = visit(name, parents, &mut memo, &mut Vec::new()) {
                for g in &cycle.0 {
                    memo.entry(g.clone()).or_insert(1);
                }
                let loc = self.groups[name].location.clone();
                let message = cycle.to_string();
                let d = match loc {
                    Some(loc) => Diagnostic::at(loc, "", message),
                    None => Diagnostic::in_file(&PathBuf::from("inventory"), message),
                };
                diags.push(d.with_hint("remove one of the `children:` entries"));
            }
        }
        memo
    }

    /// The one tenant among the host's groups; two different ones is an error.
    fn host_tenant(
        &self,
        host: &str,
        at: &Location,
        groups: &[&str],
        diags: &mut Diagnostics,
    ) -> Option<String> {
        let mut found: Vec<(&str, &String, &Location)> = Vec::new();
        for g in groups {
            if let Some((t, loc)) = &self.groups[*g].tenant
                && !found.iter().any(|(_, ft, _)| *ft == t)
            {
                found.push((g, t, loc));
            }
        }
        match found.as_slice() {
            [] => None,
            [(_, t, _)] => Some((*t).clone()),
            [(ga, ta, la), (gb, tb, lb), ..] => {
                diags.push(
                    Diagnostic::at(at.clone(), child("hosts", host), format!("host `{host}` is under two tenants, `{ta}` and `{tb}`"))
                        .with_hint(format!(
                            "tenant `{ta}` is set on group `{ga}` at {la}, tenant `{tb}` on group `{gb}` at {lb}; a host belongs to one customer only"
                        )),
                );
                None
            }
        }
    }
}

/// A host setting's error, at the place its variable (or list item) was written (`site`
/// finds it by variable name); the same definition inherited by several hosts gives the same
/// diagnostic. The host's own location when the variable's is unknown.
fn setting_diagnostic<'s>(
    host: &str,
    at: &Location,
    site: impl FnOnce(&str) -> Option<&'s Site>,
    e: &SettingError,
) -> Diagnostic {
    let (name, item) = match e.var.split_once('[') {
        Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
        None => (e.var.as_str(), None),
    };
    let d = match site(name) {
        Some(site) => match item {
            Some(i) => Diagnostic::at(
                site.items.get(i).unwrap_or(&site.at).clone(),
                index(&site.field, i),
                e.problem.to_string(),
            ),
            None => Diagnostic::at(site.at.clone(), &site.field, e.problem.to_string()),
        },
        None => Diagnostic::at(
            at.clone(),
            child("hosts", host),
            format!("{e}: {}", e.problem),
        ),
    };
    d.with_hint(e.hint())
}

fn is_clear_text(value: &Value) -> bool {
    match value {
        Value::String(s) => SecretRef::parse(s).is_plain(),
        Value::Null => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load_str(files: &[&str]) -> (tempfile::TempDir, Result<Loaded<Inventory>, Diagnostics>) {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = files
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let p = dir.path().join(format!("inv{i}.yml"));
                std::fs::write(&p, text).unwrap();
                p
            })
            .collect();
        let r = load(&paths);
        (dir, r)
    }

    fn ok(files: &[&str]) -> Inventory {
        let (_d, r) = load_str(files);
        r.unwrap_or_else(|e| panic!("{e}")).value
    }

    fn errors(text: &str) -> Vec<String> {
        let (_d, r) = load_str(&[text]);
        r.unwrap_err()
            .iter()
            .map(|d| {
                let l = d.location.as_ref().unwrap();
                format!("{}:{} {}: {}", l.line, l.column, d.field, d.message)
            })
            .collect()
    }

    #[test]
    fn precedence_all_parent_child_host() {
        let inv = ok(&["all:
  vars: {v: all, a: all, p: all, c: all}
  children:
    site:
      vars: {v: site, p: site, c: site}
      children:
        dag1:
          vars: {v: dag1, c: dag1}
          hosts:
            ex01: {v: host}
            ex02:
"]);
        assert_eq!(
            inv.host("ex01").unwrap().vars,
            json!({"v": "host", "a": "all", "p": "site", "c": "dag1"})
                .as_object()
                .unwrap()
                .clone()
        );
        assert_eq!(inv.host("ex02").unwrap().vars["v"], "dag1");
        assert_eq!(inv.host("ex01").unwrap().groups, ["all", "site", "dag1"]);
    }

    #[test]
    fn same_depth_later_name_wins_and_depth_beats_name() {
        let inv = ok(&["all:
  children:
    b_grp: {vars: {x: b}, hosts: {h1: }}
    a_grp: {vars: {x: a}, hosts: {h1: }}
    z_top:
      children:
        a_deep: {vars: {y: deep}, hosts: {h1: }}
      vars: {y: top}
"]);
        let h = inv.host("h1").unwrap();
        assert_eq!(h.vars["x"], "b");
        assert_eq!(h.vars["y"], "deep");
        assert_eq!(h.groups, ["all", "a_grp", "b_grp", "z_top", "a_deep"]);
    }

    #[test]
    fn ranges_ungrouped_top_level_groups_and_merging() {
        let inv = ok(&[
            "all:\n  hosts:\n    lone:\n  children:\n    ex:\n      hosts:\n        ex[01:03].contoso.local:\n",
            "other:\n  hosts:\n    ex01.contoso.local: {extra: 1}\n    lone2:\n",
        ]);
        let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "lone",
                "ex01.contoso.local",
                "ex02.contoso.local",
                "ex03.contoso.local",
                "lone2"
            ]
        );
        assert_eq!(inv.groups["ungrouped"].hosts, ["lone"]);
        assert!(inv.groups["all"].children.contains(&"other".to_string()));
        assert_eq!(
            inv.host("ex01.contoso.local").unwrap().groups,
            ["all", "ex", "other"]
        );
        assert_eq!(inv.host("ex01.contoso.local").unwrap().vars["extra"], 1);
        assert_eq!(inv.sources.len(), 2);
        assert_eq!(inv.digest.len(), 64);
    }

    #[test]
    fn tenants_from_true_or_name() {
        let inv = ok(&["all:
  children:
    contoso:
      vars: {salve_tenant: yes}
      children:
        contoso_dag: {hosts: {ex01: }}
    fabrikam:
      vars: {salve_tenant: Fabrikam Ltd}
      hosts: {ex02: }
    nobody: {hosts: {ex03: }}
"]);
        assert_eq!(inv.host("ex01").unwrap().tenant.as_deref(), Some("contoso"));
        assert_eq!(
            inv.host("ex02").unwrap().tenant.as_deref(),
            Some("Fabrikam Ltd")
        );
        assert_eq!(inv.host("ex03").unwrap().tenant, None);
        assert!(!inv.host("ex01").unwrap().vars.contains_key("salve_tenant"));
        assert_eq!(inv.tenants(), ["Fabrikam Ltd", "contoso"]);
    }

    #[test]
    fn host_under_two_tenants_names_both() {
        let (_d, r) = load_str(&[
            "a:\n  vars: {salve_tenant: true}\n  hosts: {ex01: }\nb:\n  vars: {salve_tenant: true}\n  hosts: {ex01: }\n",
        ]);
        let e = r.unwrap_err();
        assert_eq!(e.len(), 1);
        let d = &e.0[0];
        assert!(d.message.contains("`a` and `b`"), "{d}");
        let hint = d.hint.as_deref().unwrap();
        assert!(
            hint.contains("inv0.yml:2:") && hint.contains("inv0.yml:5:"),
            "{hint}"
        );
    }

    #[test]
    fn every_error_at_once_with_positions() {
        let errs = errors(
            "all:
  hosts:
    - ex01
  children:
    dag1:
      host:
        ex02:
      vars: [1]
    dag2:
      hosts:
        ex[05:]:
        ex06: 12
    dag3:
      vars: {salve_tenant: [x]}
",
        );
        assert_eq!(
            errs,
            [
                "3:5 all.hosts: expected a mapping of host names (`ex01:` on its own line per host), found a list",
                "6:7 all.children.dag1.host: unknown key `host` in group `dag1`",
                "8:13 all.children.dag1.vars: expected a mapping of variables, found a list",
                "11:9 all.children.dag2.hosts[\"ex[05:]\"]: bad host range `ex[05:]`: expected numbers (`[01:12]`) or single letters (`[a:f]`)",
                "12:15 all.children.dag2.hosts.ex06: expected host variables as a mapping, or nothing, found number `12`",
                "14:28 all.children.dag3.vars.salve_tenant: expected `true` or a tenant name, found a list",
            ]
        );
    }

    #[test]
    fn unknown_key_hints() {
        let (_d, r) = load_str(&["all:\n  childs:\n    x:\n  dag1:\n    hosts: {}\n"]);
        let e = r.unwrap_err();
        assert_eq!(e.0[0].hint.as_deref(), Some("did you mean `children`?"));
        assert!(
            e.0[1]
                .hint
                .as_deref()
                .unwrap()
                .contains("put it under `children:`")
        );
    }

    #[test]
    fn clear_text_passwords_warn_once_per_file_without_showing_them() {
        let (_d, r) = load_str(&[
            "all:\n  vars:\n    ansible_password: hunter2\n    ansible_become_password: x\n    salve_password: env:PW\n",
            "all:\n  vars:\n    ansible_winrm_password: file:/etc/pw\n",
        ]);
        let w = r.unwrap().warnings;
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].field, "all.vars.ansible_password");
        assert!(w[0].message.contains("and 1 more"));
        assert!(w[0].message.contains("on line 3"), "{}", w[0]);
        assert!(!w[0].render_warning().contains("hunter2"));
    }

    #[test]
    fn host_settings_are_read_and_a_dag_may_be_named_by_a_number() {
        let inv = ok(&["all:
  children:
    dag:
      vars: {salve_dag: 1, salve_maintenance_window: daily 01:00-02:00 UTC}
      hosts:
        ex01: {ansible_connection: ssh, ansible_port: 2222}
        ex02: {salve_dag: DAG2}
"]);
        let ex01 = &inv.host("ex01").unwrap().settings;
        assert_eq!(ex01.dag.as_deref(), Some("1"));
        assert_eq!(ex01.connection.kind, crate::model::ConnectionKind::Ssh);
        assert_eq!(ex01.connection.endpoint(), "ex01:2222");
        assert_eq!(ex01.window_texts(), ["daily 01:00-02:00 UTC"]);
        let ex02 = &inv.host("ex02").unwrap().settings;
        assert_eq!(ex02.dag.as_deref(), Some("DAG2"));
    }

    #[test]
    fn a_bad_setting_is_reported_once_where_the_winning_value_was_written() {
        let errs = errors(
            "all:
  vars:
    ansible_port: http
  children:
    g:
      vars: {ansible_connection: telnet}
      hosts:
        ex01:
        ex02:
        ex03: {ansible_connection: ssh, ansible_port: 22}
        ex04: {salve_maintenance_window: [daily 01:00-02:00 UTC, daily 25:00-02:00 UTC]}
",
        );
        assert_eq!(
            errs,
            [
                "3:19 all.vars.ansible_port: expected a port number 1-65535, found string `http`",
                "6:34 all.children.g.vars.ansible_connection: expected winrm, ssh or local, found string `telnet`",
                "11:66 all.children.g.hosts.ex04.salve_maintenance_window[1]: `25:00` is not a time (HH:MM, 00:00 to 23:59)",
            ]
        );
    }

    #[test]
    fn diagnosing_keeps_hosts_with_bad_settings_and_their_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inv.yml");
        std::fs::write(
            &path,
            "all:\n  hosts:\n    ex01: {ansible_port: http}\n    ex02: {ansible_port: 5985}\n",
        )
        .unwrap();
        let paths = [path];
        assert!(load(&paths).is_err());
        let (loaded, bad) = load_keeping_bad_settings(&paths).unwrap();
        assert_eq!(loaded.value.hosts.len(), 2);
        assert_eq!(bad.keys().collect::<Vec<_>>(), ["ex01"]);
        assert_eq!(
            bad["ex01"][0].to_string(),
            "variable `ansible_port` = http: expected a port number 1-65535, found string `http`"
        );
    }

    /// The regression issue 19 is about: group variables copied into every host (300 KB per
    /// host on a 10,000-host MSP inventory). Each group's variables must be stored once and
    /// shared by its hosts, whatever the fleet's size.
    #[test]
    fn ten_thousand_hosts_share_each_groups_variables() {
        let (tenants, per_tenant) = (50, 200);
        let mut y = String::from(
            "all:\n  vars:\n    ansible_connection: winrm\n    salve_update_sources:\n",
        );
        for i in 0..100 {
            y.push_str(&format!(
                "      \"2019 CU{i}\": {{unc: '\\\\fs\\exchange\\cu{i}.iso', sha256: \"{:064x}\"}}\n",
                i
            ));
        }
        y.push_str("  children:\n");
        for t in 0..tenants {
            y.push_str(&format!(
                "    t{t:02}:\n      vars: {{salve_tenant: true, site: s{t}}}\n      hosts:\n"
            ));
            for h in 0..per_tenant {
                y.push_str(&format!(
                    "        t{t:02}-ex{h:03}: {{ansible_host: 127.0.{t}.{h}}}\n"
                ));
            }
        }
        let inv = ok(&[&y]);
        assert_eq!(inv.hosts.len(), tenants * per_tenant);
        let all = &inv.groups["all"].vars;
        let mut layers = HashSet::new();
        for h in &inv.hosts {
            let tenant = &inv.groups[h.tenant.as_deref().unwrap()].vars;
            match h.vars.layers() {
                [a, t, own] => {
                    assert!(Arc::ptr_eq(a, all) && Arc::ptr_eq(t, tenant), "{}", h.name);
                    assert_eq!(own.len(), 1, "{}: only its own variables", h.name);
                }
                other => panic!("{}: {} layers", h.name, other.len()),
            }
            layers.extend(h.vars.layers().iter().map(Arc::as_ptr));
        }
        // One copy per group and one per host's own mapping, however many hosts inherit them.
        assert_eq!(layers.len(), 1 + tenants + tenants * per_tenant);
        let h = inv.host("t07-ex123").unwrap();
        assert_eq!(
            h.vars["salve_update_sources"].as_object().unwrap().len(),
            100
        );
        assert_eq!(
            (&h.vars["site"], &h.vars["ansible_host"]),
            (&json!("s7"), &json!("127.0.7.123"))
        );
    }

    #[test]
    fn cycles_are_reported() {
        let (_d, r) = load_str(&["a:\n  children:\n    b:\n      children:\n        a:\n"]);
        let e = r.unwrap_err();
        assert!(e.0[0].message.contains("contain each other"), "{e}");
    }

    #[test]
    fn missing_file_is_a_diagnostic() {
        let e = load(&[PathBuf::from("/nonexistent/inv.yml")]).unwrap_err();
        assert!(e.0[0].message.contains("cannot read file"));
    }
}
