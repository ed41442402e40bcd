//! Handlers and `notify`: a play's handler names are read before its tasks, so each task's
//! `notify` can be checked to name one of them.

use marked_yaml::Node;

use crate::diag::did_you_mean;

use super::super::yaml::index;
use super::Loader;

/// The names of the handlers under a play's `handlers` and the topics they `listen` to
/// (unnamed ones are reported when the handlers are loaded as tasks).
pub(super) fn handler_names(node: Option<&Node>) -> Vec<String> {
    let Some(Node::Sequence(items)) = node else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for map in items.iter().filter_map(Node::as_mapping) {
        names.extend(map.get_scalar("name").map(|s| s.as_str().to_string()));
        match map.get_node("listen") {
            Some(Node::Scalar(s)) => names.push(s.as_str().to_string()),
            Some(Node::Sequence(topics)) => names.extend(
                topics
                    .iter()
                    .filter_map(|t| t.as_scalar().map(|s| s.as_str().to_string())),
            ),
            _ => {}
        }
    }
    names.retain(|n| !n.is_empty());
    names.dedup();
    names
}

impl Loader<'_> {
    /// A task's `notify` (one name or a list), each checked against the play's `handlers`.
    pub(super) fn notify(&mut self, node: &Node, field: &str, handlers: &[String]) -> Vec<String> {
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
}
