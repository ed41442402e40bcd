//! A task's module: the one key of the task that names a module (see
//! [`crate::modules::names`]), and its arguments checked by the module
//! ([`crate::modules::validate_args`]), each problem pointed at the argument it is about.

use marked_yaml::Node;

use crate::diag::{Diagnostic, Location, did_you_mean};
use crate::model::ModuleCall;
use crate::modules::{ArgProblem, Resolved};

use super::super::yaml::{child, to_json};
use super::{Keyed, Loader};

impl Loader<'_> {
    /// The task's module call and the node of its arguments; `None` after reporting a task
    /// with no module or with two. Keys that are neither a module nor a task key are reported.
    pub(super) fn module_call<'n>(
        &mut self,
        task: &Keyed<'n, '_>,
        location: &Location,
    ) -> Option<(ModuleCall, &'n Node)> {
        let doc = std::sync::Arc::clone(&self.doc);
        let field = task.field;
        let modules = crate::modules::names();
        let mut module_keys = Vec::new();
        let mut unknown = false;
        for (k, v) in task.unlisted() {
            let name = k.as_str();
            let written = to_json(v);
            let problems = match crate::modules::resolve(name, &written) {
                Resolved::Module { name: module, args } => {
                    module_keys.push((k, v, module, args));
                    continue;
                }
                Resolved::BadArgs(problems) => problems,
                Resolved::NotInSalve { ansible, instead } => {
                    unknown = true;
                    self.push(
                        Diagnostic::at(
                            doc.key_loc(k),
                            child(field, name),
                            format!("salve does not have Ansible's module `{ansible}`"),
                        )
                        .with_hint(format!("instead: {instead}")),
                    );
                    continue;
                }
                Resolved::Unknown => {
                    unknown = true;
                    let candidates: Vec<&str> = task
                        .keys
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
                    continue;
                }
            };
            unknown = true;
            self.report_problems(problems, v, &child(field, name));
        }
        let (module_key, args_node, module, args) = match module_keys.as_slice() {
            [one] => one.clone(),
            [] => {
                if !unknown {
                    self.push(
                        Diagnostic::at(location.clone(), field, "task names no module")
                            .with_hint(format!("add exactly one of: {}", modules.join(", "))),
                    );
                }
                return None;
            }
            [(first, ..), (second, ..), ..] => {
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
        let written = module_key.as_str();
        self.check_args(module, &args, args_node, &child(field, written));
        let call = ModuleCall {
            module: module.to_string(),
            args,
            location: doc.key_loc(module_key),
        };
        Some((call, args_node))
    }

    /// Report what the module finds wrong with its arguments, each at the argument it names.
    fn check_args(&mut self, module: &str, args: &serde_json::Value, node: &Node, field: &str) {
        if let Err(problems) = crate::modules::validate_args(module, args) {
            self.report_problems(problems, node, field);
        }
    }

    /// Report argument problems, each at the argument it names (or the nearest node written).
    fn report_problems(&mut self, problems: Vec<ArgProblem>, node: &Node, field: &str) {
        for p in problems {
            let (target, f) = locate(node, &p.field);
            let mut d = Diagnostic::at(self.doc.loc(target), join_field(field, &f), p.message);
            d.hint = p.hint;
            self.push(d);
        }
    }
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

/// `base` and a sub-path of it: `a.b` + `c` is `a.b.c`, `a.b` + `[0]` is `a.b[0]`.
fn join_field(base: &str, sub: &str) -> String {
    if sub.is_empty() {
        base.to_string()
    } else if sub.starts_with('[') {
        format!("{base}{sub}")
    } else {
        format!("{base}.{sub}")
    }
}
