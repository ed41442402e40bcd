//! A list of tasks: the one parser for a play's `tasks` (whose entries may also be blocks and
//! task files), `handlers` and `rescue`.
//!
//! Each entry is loaded on its own ([`super::task`]) with what it sees from its play and the
//! blocks and imports around it (a [`TaskContext`]); tasks registered or set by an entry are
//! visible to the entries after it. A nested list (a `block`'s `block`, `rescue` and `always`,
//! a task file) is loaded by calling [`Loader::steps`] again with a nested context.

use std::collections::BTreeSet;
use std::path::PathBuf;

use marked_yaml::Node;
use marked_yaml::types::MarkedMappingNode;

use crate::diag::{Diagnostic, did_you_mean};
use crate::model::{Become, Expr, Step, Task};

use super::super::yaml::{Mapping, child, index, is_null};
use super::variables::Scope;
use super::{Keyed, Loader};

/// The keys of a block entry.
const BLOCK_KEYS: &[&str] = &[
    "block",
    "rescue",
    "always",
    "name",
    "when",
    "tags",
    "become",
    "become_user",
];

/// The keys of an `import_tasks` entry.
const IMPORT_KEYS: &[&str] = &[
    "import_tasks",
    "name",
    "when",
    "tags",
    "become",
    "become_user",
];

/// The keys of an `include_tasks` entry.
const INCLUDE_KEYS: &[&str] = &[
    "include_tasks",
    "name",
    "when",
    "tags",
    "loop",
    "loop_control",
    "become",
    "become_user",
];

/// Whether the entries of a list are ordinary tasks or handlers (which must be named).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskRole {
    Task,
    Handler,
}

/// What every task of one list sees from its play and the blocks and imports around it.
#[derive(Clone)]
pub(super) struct TaskContext<'c> {
    pub role: TaskRole,
    /// Variables defined here only: the play's host and play variables, loop variables of an
    /// enclosing `include_tasks`, `ansible_failed_*` in a rescue.
    pub vars: BTreeSet<String>,
    /// Names (and `listen` topics) of the play's handlers, for `notify`.
    pub handlers: &'c [String],
    /// What enclosing blocks and imports give each task.
    pub inherited: Inherited,
    /// The directory of the file being read (task files are looked up there first).
    pub dir: PathBuf,
}

/// What a block, an import or a play gives every task inside it, as Ansible does: their `when`
/// conditions all apply, their tags add up, the innermost `become` setting wins.
#[derive(Debug, Clone, Default)]
pub(super) struct Inherited {
    pub when: Vec<Expr>,
    pub tags: Vec<String>,
    pub become_: Become,
    pub ignore_unreachable: Option<bool>,
}

/// What an entry of a task list is.
enum Entry<'n> {
    Task,
    Block(&'n MarkedMappingNode),
    Import(&'n MarkedMappingNode),
    Include(&'n MarkedMappingNode),
}

fn entry_kind(node: &Node) -> Entry<'_> {
    let Node::Mapping(map) = node else {
        return Entry::Task;
    };
    if map.get_node("block").is_some() {
        Entry::Block(map)
    } else if map.get_node("import_tasks").is_some() {
        Entry::Import(map)
    } else if map.get_node("include_tasks").is_some() {
        Entry::Include(map)
    } else {
        Entry::Task
    }
}

impl Loader<'_> {
    /// The entries of a list node (absent or null: none).
    fn entries<'n>(&mut self, node: Option<&'n Node>, field: &str) -> &'n [Node] {
        match node {
            None => &[],
            Some(Node::Sequence(items)) => items,
            Some(Node::Scalar(s)) if is_null(s) => &[],
            Some(other) => {
                self.push(self.doc.wrong_type(other, field, "a list of tasks"));
                &[]
            }
        }
    }

    /// A play's (or a block's, or a task file's) task flow: each task is appended to `tasks`
    /// (its position there is its `task_index`) and named by a [`Step::Task`].
    pub(super) fn steps(
        &mut self,
        node: Option<&Node>,
        field: &str,
        context: &TaskContext<'_>,
        tasks: &mut Vec<Task>,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        for (i, n) in self.entries(node, field).iter().enumerate() {
            let f = index(field, i);
            let keyed = |map, keys| Keyed {
                map: Mapping::Map(map),
                field: &f,
                keys,
            };
            match entry_kind(n) {
                Entry::Block(map) => {
                    steps.extend(self.block(&keyed(map, BLOCK_KEYS), context, tasks));
                }
                Entry::Import(map) => {
                    steps.extend(self.import_tasks(&keyed(map, IMPORT_KEYS), context, tasks));
                }
                Entry::Include(map) => {
                    steps.extend(self.include_tasks(&keyed(map, INCLUDE_KEYS), context, tasks));
                }
                Entry::Task => {
                    if let Some(task) = self.task(n, &f, context) {
                        tasks.push(task);
                        steps.push(Step::Task(tasks.len() - 1));
                    }
                }
            }
        }
        steps
    }

    /// The tasks of a plain list (a play's `handlers` and `rescue`), each checked; entries that
    /// are not valid tasks are reported and left out.
    pub(super) fn task_list(
        &mut self,
        node: Option<&Node>,
        field: &str,
        context: &TaskContext<'_>,
    ) -> Vec<Task> {
        let mut tasks = Vec::new();
        for (i, n) in self.entries(node, field).iter().enumerate() {
            let f = index(field, i);
            let structural = match entry_kind(n) {
                Entry::Task => None,
                Entry::Block(_) => Some("block"),
                Entry::Import(_) => Some("import_tasks"),
                Entry::Include(_) => Some("include_tasks"),
            };
            match structural {
                Some(key) => self.push(
                    self.doc
                        .error(
                            n,
                            &child(&f, key),
                            format!("`{key}` cannot be used in this list"),
                        )
                        .with_hint("blocks and task files go in a play's `tasks`"),
                ),
                None => tasks.extend(self.task(n, &f, context)),
            }
        }
        tasks
    }

    /// The context inside a block or an import: the entry's `when` (if `with_when`), `tags`
    /// and `become` added to what the outer context passes on.
    pub(super) fn nested_context<'c>(
        &mut self,
        entry: &Keyed<'_, '_>,
        context: &TaskContext<'c>,
        with_when: bool,
    ) -> TaskContext<'c> {
        let mut inner = context.clone();
        if with_when && let Some(node) = entry.value("when") {
            let known = self.known.clone();
            let scope = Scope {
                known: &known,
                local: context.vars.clone(),
            };
            let when = self.exprs(node, &entry.field("when"), &scope);
            inner.inherited.when.extend(when);
        }
        inner.inherited.tags.extend(self.tags(entry));
        inner.inherited.become_ = self.become_(entry).within(&context.inherited.become_);
        inner
    }

    /// `become` and `become_user`, carried (see [`Become`]).
    pub(super) fn become_(&mut self, entry: &Keyed<'_, '_>) -> Become {
        let enabled = entry.value("become").and_then(|v| {
            self.doc
                .bool(v, &entry.field("become"))
                .map_err(|d| self.push(d))
                .ok()
        });
        let user = entry.value("become_user").and_then(|v| {
            self.doc
                .string(v, &entry.field("become_user"))
                .map_err(|d| self.push(d))
                .ok()
                .map(str::to_string)
        });
        Become { enabled, user }
    }

    /// Report every key of `entry` not on its list.
    pub(super) fn reject_unlisted(&mut self, entry: &Keyed<'_, '_>, what: &str) {
        for (k, _) in entry.unlisted() {
            let name = k.as_str();
            let mut d = Diagnostic::at(
                self.doc.key_loc(k),
                child(entry.field, name),
                format!("unknown key `{name}` in {what}"),
            );
            d.hint = did_you_mean(name, entry.keys.iter().copied())
                .or_else(|| Some(format!("its keys are: {}", entry.keys.join(", "))));
            self.push(d);
        }
    }
}
