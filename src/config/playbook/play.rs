//! One play: its keys, its `hosts` pattern (checked against the inventory), its `vars`, and
//! the variables its tasks may read from its hosts.

use std::collections::BTreeSet;
use std::path::PathBuf;

use marked_yaml::Node;
use marked_yaml::types::MarkedScalarNode;

use crate::diag::{Diagnostic, Location, did_you_mean};
use crate::model::{HostPattern, Play, Vars};

use super::super::yaml::{Mapping, child, to_json};
use super::handlers::handler_names;
use super::task_list::{Inherited, TaskContext, TaskRole};
use super::variables::Scope;
use super::{Keyed, Loader};

/// The keys a play may hold.
const PLAY_KEYS: &[&str] = &[
    "name",
    "hosts",
    "vars",
    "serial",
    "rolling",
    "max_fail_percentage",
    "forks",
    "tasks",
    "rescue",
    "handlers",
    "gather_facts",
    "any_errors_fatal",
    "ignore_unreachable",
    "become",
    "become_user",
];

const PATTERN_HINT: &str = "patterns combine hosts and groups with `:` (or), `:&` (and), `:!` (not); also `web*`, `~regex`, `@file`";

impl Loader<'_> {
    /// The play at `node`, or `None` after reporting why it cannot be one.
    pub(super) fn play(&mut self, node: &Node, field: &str) -> Option<Play> {
        let Node::Mapping(map) = node else {
            self.push(self.doc.wrong_type(
                node,
                field,
                "a play (a mapping with `hosts` and `tasks`)",
            ));
            return None;
        };
        let play = Keyed {
            map: Mapping::Map(map),
            field,
            keys: PLAY_KEYS,
        };
        for (key, _) in play.unlisted() {
            self.unknown_play_key(key, field);
        }
        let location = self.doc.loc(node);
        let hosts = self.play_hosts(&play, &location);
        let mut play_vars = self.host_variable_names(hosts.as_ref());
        let vars = self.play_vars(&play, &mut play_vars);
        let serial = self.serial(&play);
        let max_fail_percentage = self.max_fail_percentage(&play);
        let forks = self.forks(&play);

        // Handler names are read first so `notify` can be checked, but the handlers are loaded
        // after the tasks: they see the play's variables as they stand after every task.
        let handler_names = handler_names(play.value("handlers"));
        let flag = |loader: &mut Self, key: &str| {
            play.value(key).map(|v| {
                loader
                    .doc
                    .bool(v, &play.field(key))
                    .map_err(|d| loader.push(d))
                    .unwrap_or(false)
            })
        };
        let gather_facts = flag(self, "gather_facts").unwrap_or(false);
        let any_errors_fatal = flag(self, "any_errors_fatal").unwrap_or(false);
        let inherited = Inherited {
            ignore_unreachable: flag(self, "ignore_unreachable"),
            become_: self.become_(&play),
            ..Inherited::default()
        };
        let dir = self
            .doc
            .file
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default();
        let context = |role| TaskContext {
            role,
            vars: play_vars.clone(),
            handlers: &handler_names,
            inherited: inherited.clone(),
            dir: dir.clone(),
        };
        let mut tasks = Vec::new();
        let body = self.steps(
            play.value("tasks"),
            &play.field("tasks"),
            &context(TaskRole::Task),
            &mut tasks,
        );
        let handlers = self.task_list(
            play.value("handlers"),
            &play.field("handlers"),
            &context(TaskRole::Handler),
        );
        let rescue = self.task_list(
            play.value("rescue"),
            &play.field("rescue"),
            &context(TaskRole::Task),
        );

        let rolling = self.rolling(&play);
        let name = self
            .name(&play)
            .unwrap_or_else(|| hosts.as_ref().map(|h| h.source.clone()).unwrap_or_default());
        Some(Play {
            name,
            hosts: hosts?,
            vars,
            serial,
            rolling,
            max_fail_percentage,
            forks,
            tasks,
            body,
            rescue,
            handlers,
            gather_facts,
            any_errors_fatal,
            location,
        })
    }

    fn unknown_play_key(&mut self, key: &MarkedScalarNode, field: &str) {
        let name = key.as_str();
        let mut d = Diagnostic::at(
            self.doc.key_loc(key),
            child(field, name),
            format!("unknown key `{name}` in a play"),
        );
        d.hint = did_you_mean(name, PLAY_KEYS.iter().copied())
            .or_else(|| Some(format!("a play keys are: {}", PLAY_KEYS.join(", "))));
        self.push(d);
    }

    /// `hosts`, which every play needs.
    fn play_hosts(&mut self, play: &Keyed<'_, '_>, location: &Location) -> Option<HostPattern> {
        match play.value("hosts") {
            None => {
                self.push(
                    Diagnostic::at(location.clone(), play.field, "play has no `hosts`")
                        .with_hint("add `hosts: all` or a host pattern"),
                );
                None
            }
            Some(v) => self.hosts(v, &play.field("hosts")),
        }
    }

    /// A host pattern (a string, or a list Ansible-style), parsed and matched against the
    /// inventory.
    fn hosts(&mut self, node: &Node, field: &str) -> Option<HostPattern> {
        let text = match self.doc.string(node, field) {
            Ok(t) => t.to_string(),
            Err(_) => match node {
                // Ansible also accepts a list of patterns.
                Node::Sequence(items) => items
                    .iter()
                    .filter_map(|n| n.as_scalar().map(|s| s.as_str().to_string()))
                    .collect::<Vec<_>>()
                    .join(","),
                _ => {
                    self.push(self.doc.wrong_type(node, field, "a host pattern"));
                    return None;
                }
            },
        };
        let pattern = match HostPattern::parse(&text) {
            Ok(p) => p,
            Err(e) => {
                self.push(
                    self.doc
                        .error(node, field, format!("bad host pattern: {e}"))
                        .with_hint(PATTERN_HINT),
                );
                return None;
            }
        };
        if let Err(e) = self.inventory.select(&pattern) {
            self.push(
                self.doc
                    .error(node, field, e.to_string())
                    .with_hint(PATTERN_HINT),
            );
        }
        Some(pattern)
    }

    /// The variables of the play's hosts (of all hosts when the pattern is broken, to avoid
    /// follow-up noise).
    fn host_variable_names(&self, hosts: Option<&HostPattern>) -> BTreeSet<String> {
        let inventory = self.inventory;
        let selected = hosts
            .and_then(|p| inventory.select(p).ok())
            .unwrap_or_else(|| inventory.hosts.iter().collect());
        // Hosts share their groups' layers: read each layer once.
        let mut layers = std::collections::HashSet::new();
        (selected.into_iter())
            .flat_map(|h| h.vars.layers())
            .filter(|layer| layers.insert(std::sync::Arc::as_ptr(layer)))
            .flat_map(|layer| layer.keys().cloned())
            .collect()
    }

    /// The play's `vars`, whose templates may read the hosts' variables and each other; their
    /// names join `play_vars`.
    fn play_vars(&mut self, play: &Keyed<'_, '_>, play_vars: &mut BTreeSet<String>) -> Vars {
        let mut vars = Vars::new();
        let Some(node) = play.value("vars") else {
            return vars;
        };
        let field = play.field("vars");
        let Some(map) = self
            .doc
            .mapping(node, &field, "a mapping of variables", &mut self.diags)
        else {
            return vars;
        };
        play_vars.extend(map.entries().map(|(k, _)| k.as_str().to_string()));
        let known = self.known.clone();
        let scope = Scope {
            known: &known,
            local: play_vars.clone(),
        };
        for (k, val) in map.entries() {
            self.templates_in(val, &child(&field, k.as_str()), &scope);
            vars.insert(k.as_str().to_string(), to_json(val));
        }
        vars
    }
}
