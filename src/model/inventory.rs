//! Hosts, groups and tenants as resolved from one or more inventory files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::diag::Location;

use super::pattern::{HostPattern, PatternError, PatternOp, PatternTarget};
use super::{HostSettings, LayeredVars, Vars};

/// Every host and group from the inventory sources. A group's variables are stored once and
/// shared by its hosts' [`LayeredVars`].
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Hosts in definition order; names are unique.
    pub hosts: Vec<Host>,
    /// Every group by name, including the implicit `all` and `ungrouped`.
    pub groups: BTreeMap<String, Group>,
    /// The files this inventory was read from.
    pub sources: Vec<PathBuf>,
    /// SHA-256 over the sources' bytes, in order (plans record it to detect later edits).
    pub digest: String,
    /// Position of each host in `hosts`, by name.
    by_name: HashMap<String, usize>,
    /// Whether a variable mentions `hostvars` (see [`Inventory::mentions_hostvars`]).
    mentions_hostvars: std::sync::OnceLock<bool>,
}

/// One managed host.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// Inventory name (`inventory_hostname`).
    pub name: String,
    /// Every group the host belongs to, directly or through child groups, `all` first, then by
    /// depth and name: the order in which group variables were applied.
    pub groups: Vec<String>,
    /// The customer this host belongs to, if any group above it is marked as a tenant.
    pub tenant: Option<String>,
    /// Inventory variables by precedence: all < parent group < child group < host, as layers
    /// shared with the groups.
    pub vars: LayeredVars,
    /// What salve reads from `vars` (connection, windows, DAG), checked when loading.
    pub settings: HostSettings,
    /// Where the host was first defined.
    pub location: Option<Location>,
}

/// One inventory group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub children: Vec<String>,
    /// Hosts listed directly under this group.
    pub hosts: Vec<String>,
    /// The group's own `vars:`, shared with the [`LayeredVars`] of its hosts.
    pub vars: Arc<Vars>,
    /// Set when the group is a tenant (`salve_tenant: true` or `salve_tenant: "Display Name"`).
    pub tenant: Option<String>,
    pub location: Option<Location>,
}

impl Inventory {
    pub fn new(
        hosts: Vec<Host>,
        groups: BTreeMap<String, Group>,
        sources: Vec<PathBuf>,
        digest: String,
    ) -> Self {
        let by_name = (hosts.iter().enumerate())
            .map(|(i, h)| (h.name.clone(), i))
            .collect();
        Inventory {
            hosts,
            groups,
            sources,
            digest,
            by_name,
            mentions_hostvars: std::sync::OnceLock::new(),
        }
    }

    /// Does any inventory variable's text (a group's or a host's, keys and values, at any
    /// depth) mention `hostvars`? Read once per inventory: a queue runner asks for every item.
    pub fn mentions_hostvars(&self) -> bool {
        *self.mentions_hostvars.get_or_init(|| {
            let mut seen = HashSet::new();
            let layers = (self.groups.values().map(|g| &g.vars))
                .chain(self.hosts.iter().flat_map(|h| h.vars.layers()));
            layers
                .filter(|l| seen.insert(Arc::as_ptr(l)))
                .any(|l| super::vars_mention(l, "hostvars"))
        })
    }

    /// The host named `name`, found by its name's index (fleets run to tens of thousands of
    /// hosts and callers look hosts up one by one); a search when the index does not know it.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.position(name).map(|i| &self.hosts[i])
    }

    /// Where the host named `name` is in `hosts` (see [`Inventory::host`]).
    fn position(&self, name: &str) -> Option<usize> {
        (self.by_name.get(name).copied())
            .filter(|&i| self.hosts.get(i).is_some_and(|h| h.name == name))
            .or_else(|| self.hosts.iter().position(|h| h.name == name))
    }

    /// Names of all tenants, sorted.
    pub fn tenants(&self) -> Vec<String> {
        let mut t: Vec<String> = self.hosts.iter().filter_map(|h| h.tenant.clone()).collect();
        t.sort();
        t.dedup();
        t
    }
}

/// Why a host pattern selects nothing usable from an inventory.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error("cannot read host list {}: {source}", path.display())]
    HostList {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A plain name that is neither a host nor a group, with the closest one when there is one.
    #[error(
        "`{name}` is neither a host nor a group in the inventory{}",
        suggestion.as_ref().map(|s| format!("; {s}")).unwrap_or_default()
    )]
    Unknown {
        name: String,
        suggestion: Option<String>,
    },
}

impl Inventory {
    /// The hosts a pattern selects, in inventory order, each once. Unions apply first, then
    /// intersections, then exclusions; a pattern with no union term starts from `all`.
    /// A plain name that is neither a host nor a group is an error (with a suggestion).
    pub fn select(&self, pattern: &HostPattern) -> Result<Vec<&Host>, SelectError> {
        let mut union: Option<HashSet<usize>> = None;
        let mut intersections = Vec::new();
        let mut exclusions = Vec::new();
        for term in &pattern.terms {
            let hosts = self.resolve_target(&term.target)?;
            match term.op {
                PatternOp::Union => union.get_or_insert_with(HashSet::new).extend(hosts),
                PatternOp::Intersect => intersections.push(hosts),
                PatternOp::Exclude => exclusions.push(hosts),
            }
        }
        let mut chosen = union.unwrap_or_else(|| (0..self.hosts.len()).collect());
        for set in intersections {
            chosen.retain(|i| set.contains(i));
        }
        for set in exclusions {
            chosen.retain(|i| !set.contains(i));
        }
        Ok(self
            .hosts
            .iter()
            .enumerate()
            .filter(|(i, _)| chosen.contains(i))
            .map(|(_, h)| h)
            .collect())
    }

    /// Indices of the hosts one term names.
    fn resolve_target(&self, target: &PatternTarget) -> Result<HashSet<usize>, SelectError> {
        match target {
            PatternTarget::Name(name) => self.resolve_name(name),
            PatternTarget::Regex(re) => {
                let re = PatternError::regex(re)?;
                Ok(self.indices(|h| re.is_match(&h.name)))
            }
            PatternTarget::File(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| SelectError::HostList {
                        path: path.clone(),
                        source,
                    })?;
                let mut out = HashSet::new();
                for line in text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                {
                    out.extend(self.resolve_name(line)?);
                }
                Ok(out)
            }
        }
    }

    fn resolve_name(&self, name: &str) -> Result<HashSet<usize>, SelectError> {
        if name == "all" || name == "*" {
            return Ok((0..self.hosts.len()).collect());
        }
        if let Some(i) = self.position(name) {
            return Ok(HashSet::from([i]));
        }
        if self.groups.contains_key(name) {
            return Ok(self.indices(|h| h.groups.iter().any(|g| g == name)));
        }
        if name.contains(['*', '?', '[']) {
            let glob = PatternError::glob(name)?;
            let groups: Vec<&str> = self
                .groups
                .keys()
                .filter(|g| glob.matches(g))
                .map(String::as_str)
                .collect();
            return Ok(self.indices(|h| {
                glob.matches(&h.name) || h.groups.iter().any(|g| groups.contains(&g.as_str()))
            }));
        }
        let candidates = self
            .hosts
            .iter()
            .map(|h| h.name.as_str())
            .chain(self.groups.keys().map(String::as_str));
        Err(SelectError::Unknown {
            name: name.to_string(),
            suggestion: crate::diag::did_you_mean(name, candidates),
        })
    }

    fn indices(&self, keep: impl Fn(&Host) -> bool) -> HashSet<usize> {
        self.hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| keep(h))
            .map(|(i, _)| i)
            .collect()
    }
}
