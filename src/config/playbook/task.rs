//! One task: its module call ([`super::module_call`]), its keywords, and what it defines for
//! the tasks after it (its `register` name, the facts of a `set_fact`).

use std::time::Duration;

use marked_yaml::Node;
use serde_json::Value;

use crate::diag::{Diagnostic, Location};
use crate::model::{ModuleCall, Task};

use super::super::yaml::Mapping;
use super::task_list::{TaskContext, TaskRole};
use super::{Keyed, Loader};

/// The keys a task may hold besides its one module key.
const TASK_KEYS: &[&str] = &[
    "name",
    "when",
    "register",
    "loop",
    "retries",
    "delay",
    "until",
    "timeout",
    "async",
    "poll",
    "ignore_errors",
    "changed_when",
    "failed_when",
    "notify",
    "tags",
    "loop_control",
    "listen",
    "run_once",
    "ignore_unreachable",
    "delegate_to",
    "become",
    "become_user",
];

impl Loader<'_> {
    /// The task at `node`, or `None` after reporting why it cannot be one.
    pub(super) fn task(
        &mut self,
        node: &Node,
        field: &str,
        context: &TaskContext<'_>,
    ) -> Option<Task> {
        let Node::Mapping(map) = node else {
            self.push(
                self.doc
                    .wrong_type(node, field, "a task (a mapping with a module key)"),
            );
            return None;
        };
        let task = Keyed {
            map: Mapping::Map(map),
            field,
            keys: TASK_KEYS,
        };
        let location = self.doc.loc(node);
        let (call, args_node) = self.module_call(&task, &location)?;
        let register = self.register(&task);
        let loop_control = self.loop_control(&task);
        let conditions = self.conditions(
            &task,
            args_node,
            &call.module,
            register.as_deref(),
            &context.vars,
            &loop_control,
        );
        let retries = self.retries(&task, conditions.until.is_some());
        let delay = task
            .value("delay")
            .and_then(|v| self.duration(v, &task.field("delay")))
            .unwrap_or(Duration::from_secs(5));
        let timeout = self.wait_limit(&task);
        let poll = self.poll(&task);
        let ignore_errors = self.ignore_errors(&task);
        let notify = task
            .value("notify")
            .map(|v| self.notify(v, &task.field("notify"), context.handlers))
            .unwrap_or_default();
        let mut tags = context.inherited.tags.clone();
        tags.extend(self.tags(&task));
        let listen = self.listen(&task, context.role);
        let name = self.task_name(&task, &location, &call.module, context.role);
        self.remember_definitions(register.as_deref(), &call);
        let flag = |loader: &mut Self, key: &str| {
            task.value(key).map(|v| {
                loader
                    .doc
                    .bool(v, &task.field(key))
                    .map_err(|d| loader.push(d))
                    .unwrap_or(false)
            })
        };
        let run_once = flag(self, "run_once").unwrap_or(false);
        let ignore_unreachable = flag(self, "ignore_unreachable")
            .or(context.inherited.ignore_unreachable)
            .unwrap_or(false);
        let on_controller = self.delegate_to(&task);
        let become_ = self.become_(&task).within(&context.inherited.become_);
        let mut when = context.inherited.when.clone();
        when.extend(conditions.when);
        Some(Task {
            name,
            call,
            when,
            register,
            loop_spec: conditions.loop_spec,
            retries,
            delay,
            until: conditions.until,
            timeout,
            poll,
            ignore_errors,
            changed_when: conditions.changed_when,
            failed_when: conditions.failed_when,
            notify,
            listen,
            tags,
            loop_control,
            run_once,
            ignore_unreachable,
            on_controller,
            become_,
            location,
        })
    }

    /// How long salve waits for the task: `timeout`, or Ansible's `async` (its maximum
    /// runtime). salve never stops a detached step at that bound, only its waiting (see
    /// `modules::detached`), so the two say the same and only one may be given.
    fn wait_limit(&mut self, task: &Keyed<'_, '_>) -> Option<Duration> {
        match (task.value("timeout"), task.value("async")) {
            (Some(_), Some(node)) => {
                self.push(self.doc.error(
                    node,
                    &task.field("async"),
                    "give `timeout` or `async`, not both: both bound how long salve waits for \
                     the task",
                ));
                None
            }
            (Some(node), None) => self.duration(node, &task.field("timeout")),
            (None, Some(node)) => self.duration(node, &task.field("async")),
            (None, None) => None,
        }
    }

    /// Ansible's `poll`: the longest pause between looks at a detached step. `poll: 0`
    /// (Ansible's fire-and-forget) has no equivalent: the next step must see this one's result,
    /// and a step left running is re-attached to by a later run instead.
    fn poll(&mut self, task: &Keyed<'_, '_>) -> Option<Duration> {
        let node = task.value("poll")?;
        let poll = self.duration(node, &task.field("poll"))?;
        if poll.is_zero() {
            self.push(self.doc.error(
                node,
                &task.field("poll"),
                "poll: 0 (fire and forget) has no equivalent in salve: every step is waited \
                 for, and one left running (its timeout or async passed) is re-attached to by \
                 a later run; give poll a number of seconds, or leave it out (2)",
            ));
            return None;
        }
        Some(poll)
    }

    /// `delegate_to`: only the controller (`localhost`) is a place salve can run a task
    /// besides its own host.
    fn delegate_to(&mut self, task: &Keyed<'_, '_>) -> bool {
        let Some(node) = task.value("delegate_to") else {
            return false;
        };
        let field = task.field("delegate_to");
        match self.doc.string(node, &field) {
            Ok("localhost" | "127.0.0.1") => true,
            Ok(other) => {
                self.push(
                    self.doc
                        .error(node, &field, format!("salve cannot delegate a task to `{other}`"))
                        .with_hint(
                            "a task runs on its own host, or on the controller with `delegate_to: localhost`; to act on another host, target it in a play",
                        ),
                );
                false
            }
            Err(d) => {
                self.push(d);
                false
            }
        }
    }

    /// `listen`: topics a handler answers to besides its name.
    fn listen(&mut self, task: &Keyed<'_, '_>, role: TaskRole) -> Vec<String> {
        let Some(node) = task.value("listen") else {
            return Vec::new();
        };
        if role != TaskRole::Handler {
            self.push(
                self.doc
                    .error(node, &task.field("listen"), "only a handler can `listen`")
                    .with_hint("move the task under the play's `handlers:`"),
            );
            return Vec::new();
        }
        self.doc
            .strings(node, &task.field("listen"), &mut self.diags)
            .into_iter()
            .map(|(s, _)| s.to_string())
            .collect()
    }

    /// `register`: the variable name the task's result is stored under.
    fn register(&mut self, task: &Keyed<'_, '_>) -> Option<String> {
        let node = task.value("register")?;
        let field = task.field("register");
        match self.doc.string(node, &field) {
            Ok(r) if is_identifier(r) => Some(r.to_string()),
            _ => {
                self.push(self.doc.wrong_type(
                    node,
                    &field,
                    "a variable name (letters, digits, `_`)",
                ));
                None
            }
        }
    }

    /// `retries`: extra attempts; by default 3 with `until`, else none.
    fn retries(&mut self, task: &Keyed<'_, '_>, has_until: bool) -> u32 {
        task.value("retries")
            .and_then(|v| {
                self.doc
                    .count(v, &task.field("retries"))
                    .map_err(|d| self.push(d))
                    .ok()
            })
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            .unwrap_or(if has_until { 3 } else { 0 })
    }

    fn ignore_errors(&mut self, task: &Keyed<'_, '_>) -> bool {
        task.value("ignore_errors").is_some_and(|v| {
            self.doc
                .bool(v, &task.field("ignore_errors"))
                .map_err(|d| self.push(d))
                .unwrap_or(false)
        })
    }

    pub(super) fn tags(&mut self, task: &Keyed<'_, '_>) -> Vec<String> {
        let Some(node) = task.value("tags") else {
            return Vec::new();
        };
        self.doc
            .strings(node, &task.field("tags"), &mut self.diags)
            .into_iter()
            .map(|(s, _)| s.to_string())
            .collect()
    }

    /// `name`, by default the module's; a handler must have one (tasks notify it by name).
    fn task_name(
        &mut self,
        task: &Keyed<'_, '_>,
        location: &Location,
        module: &str,
        role: TaskRole,
    ) -> String {
        if let Some(name) = self.name(task) {
            return name;
        }
        if role == TaskRole::Handler {
            self.push(
                Diagnostic::at(location.clone(), task.field, "handler has no `name`")
                    .with_hint("tasks notify handlers by name"),
            );
        }
        module.to_string()
    }

    /// Later tasks may read what this one registers or sets.
    fn remember_definitions(&mut self, register: Option<&str>, call: &ModuleCall) {
        if let Some(r) = register {
            self.known.insert(r.to_string());
        }
        if crate::modules::spec(&call.module)
            .is_some_and(|s| s.provides == crate::modules::Provides::Variables)
            && let Value::Object(facts) = &call.args
        {
            self.known
                .extend(facts.keys().filter(|k| *k != "cacheable").cloned());
        }
    }
}

pub(super) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
