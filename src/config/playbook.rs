//! YAML playbooks → [`crate::model::Playbook`].
//!
//! A playbook is a list of plays. A play holds `name`, `hosts` (a host pattern), `vars`,
//! `serial`, `rolling`, `max_fail_percentage`, `forks`, `tasks`, `rescue` and `handlers`. A
//! task holds `name`,
//! exactly one module key (see [`crate::modules::names`]) and the task keywords `when`,
//! `register`, `loop`, `retries`, `delay`, `until`, `timeout`, `ignore_errors`, `changed_when`,
//! `failed_when`, `notify` and `tags`.
//!
//! Besides shapes and types, the loader checks what can be known before connecting: module
//! arguments ([`crate::modules::validate_args`]), that every template and expression compiles,
//! that every `notify` names a handler of the play, that the host pattern matches the inventory,
//! and that every variable a template reads is defined somewhere: inventory variables of the
//! play's hosts, play `vars`, extra variables, names registered or set with `set_fact` by an
//! earlier task, `item` inside a loop, or a magic variable ([`MAGIC_VARS`]).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use marked_yaml::Node;
use marked_yaml::types::MarkedScalarNode;
use serde_json::Value;

use crate::diag::{Diagnostic, Diagnostics, Location, did_you_mean};
use crate::model::{
    BatchSize, Expr, HostPattern, Inventory, LoopSpec, ModuleCall, Play, Playbook, Rolling, Task,
    Vars,
};
use crate::template;

use super::yaml::{Doc, Mapping, TopLevel, child, index, sha256_hex, to_json};

/// Variables every task can read without defining them.
pub const MAGIC_VARS: &[&str] = &[
    "inventory_hostname",
    "groups",
    "hostvars",
    "group_names",
    "play_hosts",
    "ansible_check_mode",
    "salve_tenant",
    "omit",
];

/// Global functions of the template engine, which templates may call like variables.
const TEMPLATE_GLOBALS: &[&str] = &["range", "dict", "namespace", "debug", "lipsum"];

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
];
const TASK_KEYS: &[&str] = &[
    "name",
    "when",
    "register",
    "loop",
    "retries",
    "delay",
    "until",
    "timeout",
    "ignore_errors",
    "changed_when",
    "failed_when",
    "notify",
    "tags",
];

/// Load a playbook, checking it against the inventory it will run on and the extra variables.
pub fn load(
    path: &Path,
    inventory: &Inventory,
    extra_vars: &Vars,
) -> Result<Playbook, Diagnostics> {
    let doc = Doc::read(path, TopLevel::Sequence).map_err(|d| Diagnostics(vec![d]))?;
    let mut known: BTreeSet<String> = MAGIC_VARS
        .iter()
        .chain(TEMPLATE_GLOBALS)
        .map(|s| s.to_string())
        .collect();
    known.extend(extra_vars.keys().cloned());
    let mut loader = Loader {
        doc: &doc,
        inventory,
        diags: Diagnostics::default(),
        known,
    };
    let mut plays = Vec::new();
    if let Node::Sequence(items) = &doc.root {
        for (i, node) in items.iter().enumerate() {
            if let Some(play) = loader.play(node, &index("plays", i)) {
                plays.push(play);
            }
        }
    }
    let Loader { diags, .. } = loader;
    diags.into_result(Playbook {
        path: path.to_path_buf(),
        digest: sha256_hex(&doc.bytes),
        plays,
    })
}

struct Loader<'a> {
    doc: &'a Doc,
    inventory: &'a Inventory,
    diags: Diagnostics,
    /// Variables defined so far: magic, extra, and everything registered or set by earlier tasks.
    known: BTreeSet<String>,
}

/// The variables visible at one point of a play.
struct Scope<'s> {
    known: &'s BTreeSet<String>,
    local: BTreeSet<String>,
}

impl Scope<'_> {
    fn has(&self, name: &str) -> bool {
        self.known.contains(name) || self.local.contains(name)
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.known.iter().chain(&self.local).map(String::as_str)
    }
}

/// Keys of a mapping, for looking fields up once their names are checked.
fn get<'n>(map: Mapping<'n>, key: &str) -> Option<(&'n MarkedScalarNode, &'n Node)> {
    map.entries().find(|(k, _)| k.as_str() == key)
}

impl Loader<'_> {
    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn unknown_key(
        &mut self,
        key: &MarkedScalarNode,
        field: &str,
        what: &str,
        candidates: &[&str],
    ) {
        let name = key.as_str();
        let mut d = Diagnostic::at(
            self.doc.key_loc(key),
            child(field, name),
            format!("unknown key `{name}` in {what}"),
        );
        d.hint = did_you_mean(name, candidates.iter().copied())
            .or_else(|| Some(format!("{what} keys are: {}", candidates.join(", "))));
        if name == "gather_facts" {
            d.hint = Some("salve gathers no facts; remove this key".into());
        }
        self.push(d);
    }

    fn play(&mut self, node: &Node, field: &str) -> Option<Play> {
        let doc = self.doc;
        let map = match node {
            Node::Mapping(m) => Mapping::Map(m),
            other => {
                self.push(doc.wrong_type(
                    other,
                    field,
                    "a play (a mapping with `hosts` and `tasks`)",
                ));
                return None;
            }
        };
        for (k, _) in map.entries() {
            if !PLAY_KEYS.contains(&k.as_str()) {
                self.unknown_key(k, field, "a play", PLAY_KEYS);
            }
        }
        let location = doc.loc(node);
        let hosts = match get(map, "hosts") {
            None => {
                self.push(
                    Diagnostic::at(location.clone(), field, "play has no `hosts`")
                        .with_hint("add `hosts: all` or a host pattern"),
                );
                None
            }
            Some((_, v)) => self.hosts(v, &child(field, "hosts")),
        };
        // Variables of the play's hosts (all hosts when the pattern is broken, to avoid
        // follow-up noise).
        let mut scope_vars: BTreeSet<String> = BTreeSet::new();
        let inventory = self.inventory;
        let selected = hosts
            .as_ref()
            .and_then(|p| inventory.select(p).ok())
            .unwrap_or_else(|| inventory.hosts.iter().collect());
        for h in selected {
            scope_vars.extend(h.vars.keys().cloned());
        }
        let mut vars = Vars::new();
        if let Some((_, v)) = get(map, "vars") {
            let vf = child(field, "vars");
            if let Some(m) = doc.mapping(v, &vf, "a mapping of variables", &mut self.diags) {
                scope_vars.extend(m.entries().map(|(k, _)| k.as_str().to_string()));
                let known = self.known.clone();
                let scope = Scope {
                    known: &known,
                    local: scope_vars.clone(),
                };
                for (k, val) in m.entries() {
                    self.templates_in(val, &child(&vf, k.as_str()), &scope);
                    vars.insert(k.as_str().to_string(), to_json(val));
                }
            }
        }
        let serial = get(map, "serial")
            .map(|(_, v)| self.serial(v, &child(field, "serial")))
            .unwrap_or_default();
        let max_fail_percentage = get(map, "max_fail_percentage")
            .and_then(|(_, v)| self.percentage(v, &child(field, "max_fail_percentage")));
        let forks = get(map, "forks").and_then(|(_, v)| {
            let f = child(field, "forks");
            match doc.count(v, &f) {
                Ok(n) if n > 0 => usize::try_from(n).ok(),
                _ => {
                    self.push(doc.wrong_type(v, &f, "a whole number above 0"));
                    None
                }
            }
        });

        // Handlers are parsed first so `notify` can be checked, but see the play's variables as
        // they stand after every task.
        let handler_nodes = get(map, "handlers").map(|(_, v)| v);
        let handler_names = Self::handler_names(handler_nodes);
        let tasks = self.task_list(
            get(map, "tasks").map(|(_, v)| v),
            &child(field, "tasks"),
            &scope_vars,
            &handler_names,
        );
        let handlers = self.task_list(
            handler_nodes,
            &child(field, "handlers"),
            &scope_vars,
            &handler_names,
        );
        let rescue = self.task_list(
            get(map, "rescue").map(|(_, v)| v),
            &child(field, "rescue"),
            &scope_vars,
            &handler_names,
        );
        let rolling = match get(map, "rolling") {
            None => Rolling::Serial,
            Some((_, v)) => {
                let f = child(field, "rolling");
                match doc.string(v, &f) {
                    Ok("dag") => Rolling::Dag,
                    Ok("serial") => Rolling::Serial,
                    Ok(other) => {
                        let d = Diagnostic::at(
                            doc.loc(v),
                            &f,
                            format!("unknown rolling strategy `{other}`"),
                        )
                        .with_hint(
                            "use `rolling: dag` (DAG members one at a time) or `rolling: serial`",
                        );
                        self.push(d);
                        Rolling::Serial
                    }
                    Err(d) => {
                        self.push(d);
                        Rolling::Serial
                    }
                }
            }
        };
        Some(Play {
            name: match get(map, "name") {
                Some((_, v)) => doc
                    .string(v, &child(field, "name"))
                    .map_err(|d| self.push(d))
                    .unwrap_or_default()
                    .to_string(),
                None => hosts.as_ref().map(|h| h.source.clone()).unwrap_or_default(),
            },
            hosts: hosts?,
            vars,
            serial,
            rolling,
            max_fail_percentage,
            forks,
            tasks,
            rescue,
            handlers,
            location,
        })
    }

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
            self.push(self.doc.error(node, field, e).with_hint(PATTERN_HINT));
        }
        Some(pattern)
    }

    fn serial(&mut self, node: &Node, field: &str) -> Vec<BatchSize> {
        let items: Vec<(&Node, String)> = match node {
            Node::Sequence(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| (n, index(field, i)))
                .collect(),
            other => vec![(other, field.to_string())],
        };
        let mut out = Vec::new();
        for (n, f) in items {
            let text = n
                .as_scalar()
                .map(|s| s.as_str().trim().to_string())
                .unwrap_or_default();
            let size = match text.strip_suffix('%') {
                Some(p) => p
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|p| *p > 0.0 && *p <= 100.0)
                    .map(BatchSize::Percent),
                None => text
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(BatchSize::Count),
            };
            match size {
                Some(s) => out.push(s),
                None => self.push(
                    self.doc
                        .wrong_type(n, &f, "a host count above 0 or a percentage like \"30%\"")
                        .with_hint("`serial` takes a number, a percentage, or a list of those (e.g. [1, \"50%\"])"),
                ),
            }
        }
        out
    }

    fn percentage(&mut self, node: &Node, field: &str) -> Option<f64> {
        let value = node
            .as_scalar()
            .and_then(|s| s.as_str().trim().trim_end_matches('%').parse::<f64>().ok());
        match value {
            Some(p) if (0.0..=100.0).contains(&p) => Some(p),
            _ => {
                self.push(
                    self.doc
                        .wrong_type(node, field, "a percentage from 0 to 100"),
                );
                None
            }
        }
    }

    fn handler_names(node: Option<&Node>) -> Vec<String> {
        let Some(Node::Sequence(items)) = node else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|n| {
                n.as_mapping()?
                    .get_scalar("name")
                    .map(|s| s.as_str().to_string())
            })
            .filter(|n| !n.is_empty())
            .collect()
    }

    fn task_list(
        &mut self,
        node: Option<&Node>,
        field: &str,
        play_vars: &BTreeSet<String>,
        handlers: &[String],
    ) -> Vec<Task> {
        let Some(node) = node else { return Vec::new() };
        let items = match node {
            Node::Sequence(items) => items,
            Node::Scalar(s) if super::yaml::is_null(s) => return Vec::new(),
            other => {
                self.push(self.doc.wrong_type(other, field, "a list of tasks"));
                return Vec::new();
            }
        };
        let is_handlers = field.ends_with("handlers");
        items
            .iter()
            .enumerate()
            .filter_map(|(i, n)| self.task(n, &index(field, i), play_vars, handlers, is_handlers))
            .collect()
    }

    fn task(
        &mut self,
        node: &Node,
        field: &str,
        play_vars: &BTreeSet<String>,
        handlers: &[String],
        is_handler: bool,
    ) -> Option<Task> {
        let doc = self.doc;
        let map = match node {
            Node::Mapping(m) => Mapping::Map(m),
            other => {
                self.push(doc.wrong_type(other, field, "a task (a mapping with a module key)"));
                return None;
            }
        };
        let location = doc.loc(node);
        let modules = crate::modules::names();
        let mut module_keys = Vec::new();
        let mut unknown = false;
        for (k, v) in map.entries() {
            let name = k.as_str();
            if modules.contains(&name) {
                module_keys.push((k, v));
            } else if !TASK_KEYS.contains(&name) {
                unknown = true;
                let candidates: Vec<&str> = TASK_KEYS
                    .iter()
                    .copied()
                    .chain(modules.iter().copied())
                    .collect();
                let mut d = Diagnostic::at(
                    doc.key_loc(k),
                    child(field, name),
                    format!("unknown module or task key `{name}`"),
                );
                d.hint = did_you_mean(name, candidates)
                    .or_else(|| Some(format!("modules are: {}", modules.join(", "))));
                self.push(d);
            }
        }
        let (module_key, args_node) = match module_keys.as_slice() {
            [one] => *one,
            [] => {
                if !unknown {
                    self.push(
                        Diagnostic::at(location.clone(), field, "task names no module")
                            .with_hint(format!("add exactly one of: {}", modules.join(", "))),
                    );
                }
                return None;
            }
            [(first, _), (second, _), ..] => {
                self.push(
                    Diagnostic::at(
                        doc.key_loc(second),
                        child(field, second.as_str()),
                        format!(
                            "task has two modules, `{}` and `{}`",
                            first.as_str(),
                            second.as_str()
                        ),
                    )
                    .with_hint("split it into two tasks"),
                );
                return None;
            }
        };
        let module = module_key.as_str().to_string();
        let args_field = child(field, &module);
        let args = to_json(args_node);
        if let Err(problems) = crate::modules::validate_args(&module, &args) {
            for p in problems {
                let (target, f) = locate(args_node, &p.field);
                let mut d = Diagnostic::at(doc.loc(target), join_field(&args_field, &f), p.message);
                d.hint = p.hint;
                self.push(d);
            }
        }

        let field_of = |key: &str| child(field, key);
        let value = |key: &str| get(map, key).map(|(_, v)| v);
        let register = value("register").and_then(|v| match doc.string(v, &field_of("register")) {
            Ok(r) if is_identifier(r) => Some(r.to_string()),
            _ => {
                self.push(doc.wrong_type(
                    v,
                    &field_of("register"),
                    "a variable name (letters, digits, `_`)",
                ));
                None
            }
        });

        // What this task's templates may read.
        let known = self.known.clone();
        let mut scope = Scope {
            known: &known,
            local: play_vars.clone(),
        };
        if value("loop").is_some() {
            scope.local.insert("item".into());
        }
        let loop_spec = value("loop").and_then(|v| self.loop_spec(v, &field_of("loop"), &scope));
        let when = value("when")
            .map(|v| self.exprs(v, &field_of("when"), &scope))
            .unwrap_or_default();
        self.templates_in(args_node, &args_field, &scope);
        // `until`, `changed_when` and `failed_when` run after the module, so they also see the
        // task's own registered result.
        if let Some(r) = &register {
            scope.local.insert(r.clone());
        }
        let until = value("until").and_then(|v| self.single_expr(v, &field_of("until"), &scope));
        let changed_when = value("changed_when")
            .and_then(|v| self.single_expr(v, &field_of("changed_when"), &scope));
        let failed_when = value("failed_when")
            .and_then(|v| self.single_expr(v, &field_of("failed_when"), &scope));

        let retries = value("retries")
            .and_then(|v| {
                doc.count(v, &field_of("retries"))
                    .map_err(|d| self.push(d))
                    .ok()
            })
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            .unwrap_or(if until.is_some() { 3 } else { 0 });
        let delay = value("delay")
            .and_then(|v| self.duration(v, &field_of("delay")))
            .unwrap_or(Duration::from_secs(5));
        let timeout = value("timeout").and_then(|v| self.duration(v, &field_of("timeout")));
        let ignore_errors = value("ignore_errors")
            .map(|v| {
                doc.bool(v, &field_of("ignore_errors"))
                    .map_err(|d| self.push(d))
                    .unwrap_or(false)
            })
            .unwrap_or(false);
        let notify = value("notify")
            .map(|v| self.notify(v, &field_of("notify"), handlers))
            .unwrap_or_default();
        let tags = value("tags")
            .map(|v| {
                doc.strings(v, &field_of("tags"), &mut self.diags)
                    .into_iter()
                    .map(|(s, _)| s.to_string())
                    .collect()
            })
            .unwrap_or_default();
        let name = match value("name") {
            Some(v) => doc
                .string(v, &field_of("name"))
                .map_err(|d| self.push(d))
                .unwrap_or_default()
                .to_string(),
            None => {
                if is_handler {
                    self.push(
                        Diagnostic::at(location.clone(), field, "handler has no `name`")
                            .with_hint("tasks notify handlers by name"),
                    );
                }
                module.clone()
            }
        };

        // Later tasks may read what this one registers or sets.
        if let Some(r) = &register {
            self.known.insert(r.clone());
        }
        if crate::modules::spec(&module)
            .is_some_and(|s| s.provides == crate::modules::Provides::Variables)
            && let Value::Object(facts) = &args
        {
            self.known
                .extend(facts.keys().filter(|k| *k != "cacheable").cloned());
        }
        Some(Task {
            name,
            call: ModuleCall {
                module,
                args,
                location: doc.key_loc(module_key),
            },
            when,
            register,
            loop_spec,
            retries,
            delay,
            until,
            timeout,
            ignore_errors,
            changed_when,
            failed_when,
            notify,
            tags,
            location,
        })
    }

    fn notify(&mut self, node: &Node, field: &str, handlers: &[String]) -> Vec<String> {
        let names = self.doc.strings(node, field, &mut self.diags);
        let mut out = Vec::new();
        for (i, (name, n)) in names.iter().enumerate() {
            if !handlers.iter().any(|h| h == name) {
                let f = if matches!(node, Node::Sequence(_)) {
                    index(field, i)
                } else {
                    field.to_string()
                };
                let mut d =
                    self.doc
                        .error(n, &f, format!("no handler named `{name}` in this play"));
                d.hint = did_you_mean(name, handlers.iter().map(String::as_str)).or_else(|| {
                    Some(if handlers.is_empty() {
                        "add it under the play's `handlers:`".to_string()
                    } else {
                        format!("handlers: {}", handlers.join(", "))
                    })
                });
                self.push(d);
            }
            out.push(name.to_string());
        }
        out
    }

    fn loop_spec(&mut self, node: &Node, field: &str, scope: &Scope<'_>) -> Option<LoopSpec> {
        match node {
            Node::Sequence(_) => {
                self.templates_in(node, field, scope);
                match to_json(node) {
                    Value::Array(items) => Some(LoopSpec::Items(items)),
                    _ => None,
                }
            }
            Node::Scalar(s) if template::is_template(s.as_str()) => {
                self.templates_in(node, field, scope);
                Some(LoopSpec::Template(s.as_str().to_string()))
            }
            other => {
                self.push(
                    self.doc
                        .wrong_type(other, field, "a list or a template that gives a list")
                        .with_hint("e.g. `loop: \"{{ groups['dag1'] }}\"` or a YAML list"),
                );
                None
            }
        }
    }

    /// `when` and friends: a string, a boolean, or a list of those (all must hold).
    fn exprs(&mut self, node: &Node, field: &str, scope: &Scope<'_>) -> Vec<Expr> {
        let parts = self.doc.strings(node, field, &mut self.diags);
        let listed = matches!(node, Node::Sequence(_));
        let mut out = Vec::new();
        for (i, (src, n)) in parts.into_iter().enumerate() {
            let f = if listed {
                index(field, i)
            } else {
                field.to_string()
            };
            let loc = self.doc.loc(n);
            if template::is_template(src) {
                self.push(
                    Diagnostic::at(
                        loc,
                        f,
                        "conditions are expressions already; remove the `{{ }}`",
                    )
                    .with_hint(format!(
                        "write `{}`",
                        src.replace("{{", "").replace("}}", "").trim()
                    )),
                );
                continue;
            }
            match template::check_expr(src) {
                Ok(names) => self.check_names(src, &names, &loc, &f, scope),
                Err(e) => self.push(Diagnostic::at(
                    loc.clone(),
                    f,
                    format!("bad expression `{src}`: {e}"),
                )),
            }
            out.push(Expr {
                source: src.to_string(),
                location: loc,
            });
        }
        out
    }

    fn single_expr(&mut self, node: &Node, field: &str, scope: &Scope<'_>) -> Option<Expr> {
        let exprs = self.exprs(node, field, scope);
        match exprs.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            [first, ..] => Some(Expr {
                source: exprs
                    .iter()
                    .map(|e| format!("({})", e.source))
                    .collect::<Vec<_>>()
                    .join(" and "),
                location: first.location.clone(),
            }),
        }
    }

    /// Check every template string inside a node.
    fn templates_in(&mut self, node: &Node, field: &str, scope: &Scope<'_>) {
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

    fn check_names(
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

    fn duration(&mut self, node: &Node, field: &str) -> Option<Duration> {
        let parsed = node.as_scalar().and_then(|s| parse_duration(s.as_str()));
        if parsed.is_none() {
            self.push(self.doc.wrong_type(
                node,
                field,
                "a duration like 90, \"90s\", \"30m\" or \"2h\"",
            ));
        }
        parsed
    }
}

const PATTERN_HINT: &str = "patterns combine hosts and groups with `:` (or), `:&` (and), `:!` (not); also `web*`, `~regex`, `@file`";

/// `90`, `"90s"`, `"30m"`, `"2h"` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
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

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The node an argument path (`script`, `items[2].name`) points at, and the part of the path
/// that was found; falls back to the nearest existing parent.
fn locate<'n>(node: &'n Node, path: &str) -> (&'n Node, String) {
    let mut current = node;
    let mut found = String::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        let Some(next) = current.as_mapping().and_then(|m| m.get_node(key)) else {
            return (current, found);
        };
        current = next;
        found = child(&found, key);
        for idx in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            let Some(next) = idx
                .parse::<usize>()
                .ok()
                .and_then(|i| current.as_sequence()?.get(i))
            else {
                return (current, found);
            };
            current = next;
            found = format!("{found}[{idx}]");
        }
    }
    (current, path.to_string())
}

fn join_field(base: &str, sub: &str) -> String {
    if sub.is_empty() {
        base.to_string()
    } else if sub.starts_with('[') {
        format!("{base}{sub}")
    } else {
        format!("{base}.{sub}")
    }
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

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("2d"), None);
        assert_eq!(parse_duration("h"), None);
    }
}
