//! `block:` with `rescue:` and `always:`, nested as deep as wanted. The block's `when`, `tags`
//! and `become` are handed down to every task inside it (Ansible evaluates a block's `when` for
//! each of its tasks); the rescue tasks may read `ansible_failed_task` and
//! `ansible_failed_result`.

use crate::model::{Block, Step, Task};

use super::task_list::TaskContext;
use super::{Keyed, Loader};

/// Variables a rescue section may read besides its block's.
pub(super) const RESCUE_VARS: &[&str] = &["ansible_failed_task", "ansible_failed_result"];

impl Loader<'_> {
    /// The block of `entry`; its tasks are appended to `tasks`.
    pub(super) fn block(
        &mut self,
        entry: &Keyed<'_, '_>,
        context: &TaskContext<'_>,
        tasks: &mut Vec<Task>,
    ) -> Option<Step> {
        self.reject_unlisted(entry, "a block");
        let (key, _) = entry.map.entries().find(|(k, _)| k.as_str() == "block")?;
        let location = self.doc.key_loc(key);
        let name = self.name(entry).unwrap_or_else(|| "block".into());
        let inner = self.nested_context(entry, context, true);
        let body = self.steps(entry.value("block"), &entry.field("block"), &inner, tasks);
        let mut in_rescue = inner.clone();
        in_rescue
            .vars
            .extend(RESCUE_VARS.iter().map(|v| v.to_string()));
        let rescue = self.steps(
            entry.value("rescue"),
            &entry.field("rescue"),
            &in_rescue,
            tasks,
        );
        let always = self.steps(entry.value("always"), &entry.field("always"), &inner, tasks);
        Some(Step::Block(Block {
            name,
            body,
            rescue,
            always,
            location,
        }))
    }
}
