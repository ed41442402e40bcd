//! Which variables a template may read, and the check that it reads only those.
//!
//! Defined are: the magic variables ([`MAGIC_VARS`]) and the template engine's globals,
//! extra variables, inventory variables of the play's hosts, play `vars`, names registered or
//! set with `set_fact` by an earlier task, and `item` inside a loop. A read guarded by
//! `| default(...)` or `is defined` is allowed to miss.

use std::collections::BTreeSet;

use marked_yaml::Node;

use crate::diag::{Diagnostic, Location, did_you_mean};
use crate::template;

use super::super::yaml::{child, index};
use super::Loader;

/// Variables every task can read without defining them.
pub const MAGIC_VARS: &[&str] = &[
    "inventory_hostname",
    "groups",
    "hostvars",
    "group_names",
    "play_hosts",
    "ansible_play_hosts",
    "inventory_hostname_short",
    "ansible_check_mode",
    "salve_tenant",
    "omit",
];

/// Global functions of the template engine, which templates may call like variables.
const TEMPLATE_GLOBALS: &[&str] = &["range", "dict", "namespace", "debug", "lipsum"];

/// The names every playbook may read: magic variables and template globals.
pub(super) fn always_known() -> BTreeSet<String> {
    MAGIC_VARS
        .iter()
        .chain(TEMPLATE_GLOBALS)
        .map(|s| s.to_string())
        .collect()
}

/// The variables visible at one point of a play.
pub(super) struct Scope<'s> {
    /// Defined for the whole playbook so far (the loader's `known`).
    pub known: &'s BTreeSet<String>,
    /// Defined here only: the play's host and play variables, `item`, the task's own result.
    pub local: BTreeSet<String>,
}

impl Scope<'_> {
    fn has(&self, name: &str) -> bool {
        self.known.contains(name) || self.local.contains(name)
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.known.iter().chain(&self.local).map(String::as_str)
    }
}

impl Loader<'_> {
    /// Check every template string inside a node.
    pub(super) fn templates_in(&mut self, node: &Node, field: &str, scope: &Scope<'_>) {
        match node {
            Node::Scalar(s) if template::is_template(s.as_str()) => {
                let loc = self.doc.loc(node);
                match template::check_template(s.as_str()) {
                    Ok(names) => self.check_names(s.as_str(), &names, &loc, field, scope),
                    Err(e) => self.push(Diagnostic::at(loc, field, format!("bad template: {e}"))),
                }
            }
            Node::Scalar(_) => {}
            Node::Sequence(items) => {
                for (i, n) in items.iter().enumerate() {
                    self.templates_in(n, &index(field, i), scope);
                }
            }
            Node::Mapping(map) => {
                for (k, v) in map.iter() {
                    self.templates_in(v, &child(field, k.as_str()), scope);
                }
            }
        }
    }

    /// Report each of `names` (read by the template or expression `src`) that is not defined.
    pub(super) fn check_names(
        &mut self,
        src: &str,
        names: &BTreeSet<String>,
        loc: &Location,
        field: &str,
        scope: &Scope<'_>,
    ) {
        for name in names.iter().filter(|n| !scope.has(n) && !guarded(src, n)) {
            let hint = did_you_mean(name, scope.names()).unwrap_or_else(|| {
                "define it in the inventory, the play's `vars`, with `-e`, or with `register`/`set_fact` in an earlier task".into()
            });
            self.push(
                Diagnostic::at(loc.clone(), field, format!("undefined variable `{name}`"))
                    .with_hint(hint),
            );
        }
    }
}

/// Is every read of `name` in `src` guarded, i.e. `name | default(...)`, `name is defined` or
/// `name is undefined` (attribute and index access allowed in between)? Such reads are
/// meant to work when the variable is missing.
fn guarded(src: &str, name: &str) -> bool {
    let access = r"(?:\.\w+|\[[^\]]*\])*\s*";
    let guard = r"(?:\|\s*(?:default|d)\b|is\s+(?:not\s+)?(?:defined|undefined)\b)";
    let name = regex::escape(name);
    let (Ok(any), Ok(safe)) = (
        regex::Regex::new(&format!(r"\b{name}\b")),
        regex::Regex::new(&format!(r"\b{name}\b{access}{guard}")),
    ) else {
        return false;
    };
    any.find_iter(src).count() == safe.find_iter(src).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_reads_are_not_undefined() {
        assert!(guarded("x | default(3) > 2", "x"));
        assert!(!guarded("x.a['b'] is defined and x.a.b", "x"));
        assert!(guarded("r is not defined or r.rc|d(0) == 0", "r"));
        assert!(!guarded("x + 1", "x"));
        assert!(!guarded("x + (x | default(1))", "x"));
    }
}
