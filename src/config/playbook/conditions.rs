//! A task's expressions and loop: `when`, `until`, `changed_when` and `failed_when` (a
//! string, a boolean, or a list of those that must all hold), and `loop` (a list or a template
//! that renders to one). Each is checked to compile and to read only defined variables.

use std::collections::BTreeSet;

use marked_yaml::Node;
use serde_json::Value;

use crate::diag::Diagnostic;
use crate::model::{Expr, LoopControl, LoopSpec};
use crate::template;

use super::super::yaml::{index, to_json};
use super::task::is_identifier;
use super::variables::Scope;
use super::{Keyed, Loader};

impl Loader<'_> {
    /// `loop`: a YAML list (its items may hold templates) or one template giving a list.
    pub(super) fn loop_spec(
        &mut self,
        node: &Node,
        field: &str,
        scope: &Scope<'_>,
    ) -> Option<LoopSpec> {
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
    pub(super) fn exprs(&mut self, node: &Node, field: &str, scope: &Scope<'_>) -> Vec<Expr> {
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

    /// One expression from a `when`-like value; a list becomes `(a) and (b)`.
    pub(super) fn single_expr(
        &mut self,
        node: &Node,
        field: &str,
        scope: &Scope<'_>,
    ) -> Option<Expr> {
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
}

/// The keys of `loop_control`.
const LOOP_CONTROL_KEYS: &[&str] = &["label", "index_var", "loop_var", "pause"];

impl Loader<'_> {
    /// `loop_control`: `loop_var`, `index_var`, `label` and `pause`.
    pub(super) fn loop_control(&mut self, entry: &Keyed<'_, '_>) -> LoopControl {
        let mut control = LoopControl::default();
        let Some(node) = entry.value("loop_control") else {
            return control;
        };
        let field = entry.field("loop_control");
        let what = "a mapping (`label`, `index_var`, `loop_var`, `pause`)";
        let Some(map) = self.doc.mapping(node, &field, what, &mut self.diags) else {
            return control;
        };
        let keyed = Keyed {
            map,
            field: &field,
            keys: LOOP_CONTROL_KEYS,
        };
        self.reject_unlisted(&keyed, "`loop_control`");
        control.label = keyed.value("label").and_then(|v| {
            self.doc
                .string(v, &keyed.field("label"))
                .map_err(|d| self.push(d))
                .ok()
                .map(str::to_string)
        });
        control.loop_var = self.variable_name(&keyed, "loop_var");
        control.index_var = self.variable_name(&keyed, "index_var");
        control.pause = keyed
            .value("pause")
            .and_then(|v| self.duration(v, &keyed.field("pause")));
        control
    }

    /// A key whose value names a variable.
    fn variable_name(&mut self, keyed: &Keyed<'_, '_>, key: &str) -> Option<String> {
        let node = keyed.value(key)?;
        match self.doc.string(node, &keyed.field(key)) {
            Ok(n) if is_identifier(n) => Some(n.to_string()),
            _ => {
                self.push(self.doc.wrong_type(
                    node,
                    &keyed.field(key),
                    "a variable name (letters, digits, `_`)",
                ));
                None
            }
        }
    }
}

/// A task's checked expressions and loop.
pub(super) struct Conditions {
    pub loop_spec: Option<LoopSpec>,
    pub when: Vec<Expr>,
    pub until: Option<Expr>,
    pub changed_when: Option<Expr>,
    pub failed_when: Option<Expr>,
}

impl Loader<'_> {
    /// The task's `loop`, `when`, `until`, `changed_when` and `failed_when`, and the templates
    /// in its module arguments, each checked against what it may read: the play's variables,
    /// `item` in a loop, and (after the module ran: `until`, `changed_when`, `failed_when`) the
    /// task's own `register`ed result.
    pub(super) fn conditions(
        &mut self,
        task: &Keyed<'_, '_>,
        args: &Node,
        module: &str,
        register: Option<&str>,
        vars: &BTreeSet<String>,
        loop_control: &LoopControl,
    ) -> Conditions {
        let known = self.known.clone();
        let mut scope = Scope {
            known: &known,
            local: vars.clone(),
        };
        if task.value("loop").is_some() {
            scope.local.insert(loop_control.item_name().into());
            scope.local.extend(loop_control.index_var.clone());
        }
        let loop_spec = task
            .value("loop")
            .and_then(|v| self.loop_spec(v, &task.field("loop"), &scope));
        let when = task
            .value("when")
            .map(|v| self.exprs(v, &task.field("when"), &scope))
            .unwrap_or_default();
        self.templates_in(args, &task.field(module), &scope);
        if let Some(r) = register {
            scope.local.insert(r.to_string());
        }
        let label = loop_control
            .label
            .as_deref()
            .filter(|l| template::is_template(l));
        if let (Some(label), Some(node)) = (label, task.value("loop_control")) {
            let loc = self.doc.loc(node);
            let field = format!("{}.label", task.field("loop_control"));
            match template::check_template(label) {
                Ok(names) => self.check_names(label, &names, &loc, &field, &scope),
                Err(e) => self.push(Diagnostic::at(loc, field, format!("bad template: {e}"))),
            }
        }
        let mut after = |key: &str| {
            task.value(key)
                .and_then(|v| self.single_expr(v, &task.field(key), &scope))
        };
        Conditions {
            until: after("until"),
            changed_when: after("changed_when"),
            failed_when: after("failed_when"),
            loop_spec,
            when,
        }
    }
}
