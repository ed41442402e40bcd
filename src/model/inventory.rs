//! Hosts, groups and tenants as resolved from one or more inventory files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::diag::Location;

use super::Vars;

/// Every host and group from the inventory sources, with variables already merged per host.
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
    /// Inventory variables merged by precedence: all < parent group < child group < host.
    pub vars: Vars,
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
    pub vars: Vars,
    /// Set when the group is a tenant (`salve_tenant: true` or `salve_tenant: "Display Name"`).
    pub tenant: Option<String>,
    pub location: Option<Location>,
}

impl Inventory {
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Names of all tenants, sorted.
    pub fn tenants(&self) -> Vec<String> {
        let mut t: Vec<String> = self.hosts.iter().filter_map(|h| h.tenant.clone()).collect();
        t.sort();
        t.dedup();
        t
    }
}
