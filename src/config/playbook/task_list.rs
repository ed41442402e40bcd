//! A list of tasks: the one parser for a play's `tasks`, `handlers` and `rescue`.
//!
//! Each entry is loaded on its own ([`super::task`]) with what it sees from its play (a
//! [`TaskContext`]); tasks registered or set by an entry are visible to the entries after it.
//! A nested list (a `block`'s `block`, `rescue` and `always`, an included file) is loaded by
//! calling [`Loader::task_list`] again with the same context.

use std::collections::BTreeSet;

use marked_yaml::Node;

use crate::model::Task;

use super::super::yaml::{index, is_null};
use super::Loader;

/// Whether the entries of a list are ordinary tasks or handlers (which must be named).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskRole {
    Task,
    Handler,
}

/// What every task of one list sees from its play.
pub(super) struct TaskContext<'c> {
    pub role: TaskRole,
    /// Variables of the play's hosts and names in the play's `vars`.
    pub play_vars: &'c BTreeSet<String>,
    /// Names of the play's handlers, for `notify`.
    pub handlers: &'c [String],
}

impl Loader<'_> {
    /// The tasks of a list (absent or null: none), each checked; entries that are not valid
    /// tasks are reported and left out.
    pub(super) fn task_list(
        &mut self,
        node: Option<&Node>,
        field: &str,
        context: &TaskContext<'_>,
    ) -> Vec<Task> {
        let Some(node) = node else { return Vec::new() };
        let items = match node {
            Node::Sequence(items) => items,
            Node::Scalar(s) if is_null(s) => return Vec::new(),
            other => {
                self.push(self.doc.wrong_type(other, field, "a list of tasks"));
                return Vec::new();
            }
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, n)| self.task(n, &index(field, i), context))
            .collect()
    }
}
