//! How a play's hosts are batched and throttled: `serial`, `rolling`, `max_fail_percentage`
//! and `forks`.

use marked_yaml::Node;

use crate::diag::Diagnostic;
use crate::model::{BatchSize, Rolling};

use super::super::yaml::index;
use super::{Keyed, Loader};

impl Loader<'_> {
    /// `serial`: one batch size or a list of them; none means one batch.
    pub(super) fn serial(&mut self, play: &Keyed<'_, '_>) -> Vec<BatchSize> {
        let Some(node) = play.value("serial") else {
            return Vec::new();
        };
        let field = play.field("serial");
        let items: Vec<(&Node, String)> = match node {
            Node::Sequence(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| (n, index(&field, i)))
                .collect(),
            other => vec![(other, field)],
        };
        let mut out = Vec::new();
        for (n, f) in items {
            match batch_size(n) {
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

    /// `max_fail_percentage`: 0 to 100, with or without a `%`.
    pub(super) fn max_fail_percentage(&mut self, play: &Keyed<'_, '_>) -> Option<f64> {
        let node = play.value("max_fail_percentage")?;
        let value = node
            .as_scalar()
            .and_then(|s| s.as_str().trim().trim_end_matches('%').parse::<f64>().ok());
        match value {
            Some(p) if (0.0..=100.0).contains(&p) => Some(p),
            _ => {
                let field = play.field("max_fail_percentage");
                self.push(
                    self.doc
                        .wrong_type(node, &field, "a percentage from 0 to 100"),
                );
                None
            }
        }
    }

    /// `forks`: the play's concurrency cap, a whole number above 0.
    pub(super) fn forks(&mut self, play: &Keyed<'_, '_>) -> Option<usize> {
        let node = play.value("forks")?;
        let field = play.field("forks");
        match self.doc.count(node, &field) {
            Ok(n) if n > 0 => usize::try_from(n).ok(),
            _ => {
                self.push(self.doc.wrong_type(node, &field, "a whole number above 0"));
                None
            }
        }
    }

    /// `rolling`: `serial` (the default) or `dag`.
    pub(super) fn rolling(&mut self, play: &Keyed<'_, '_>) -> Rolling {
        let Some(node) = play.value("rolling") else {
            return Rolling::Serial;
        };
        let field = play.field("rolling");
        match self.doc.string(node, &field) {
            Ok("dag") => Rolling::Dag,
            Ok("serial") => Rolling::Serial,
            Ok(other) => {
                let d = Diagnostic::at(
                    self.doc.loc(node),
                    &field,
                    format!("unknown rolling strategy `{other}`"),
                )
                .with_hint("use `rolling: dag` (DAG members one at a time) or `rolling: serial`");
                self.push(d);
                Rolling::Serial
            }
            Err(d) => {
                self.push(d);
                Rolling::Serial
            }
        }
    }
}

/// One `serial` entry: a host count above 0, or a percentage above 0 and at most 100.
fn batch_size(node: &Node) -> Option<BatchSize> {
    let text = node
        .as_scalar()
        .map(|s| s.as_str().trim().to_string())
        .unwrap_or_default();
    match text.strip_suffix('%') {
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
    }
}
