//! A host's inventory variables as layers shared with its groups: each group's `vars:` mapping
//! is stored once (an `Arc`) and every host of the group points at it, with the host's own
//! variables as the top layer. A lookup walks the layers from the top, so the value seen is the
//! one the merge would have kept (Ansible's precedence: all < parent group < child group <
//! host), while memory grows with the inventory's text, not with hosts × group variables.
//!
//! Iterating yields each variable once, in the order a merge (`Map::extend`, layer by layer,
//! lowest first) would give: where the variable was first set, with the winning value.

use std::collections::HashSet;
use std::ops::Index;
use std::sync::Arc;

use serde_json::Value;

use super::Vars;

/// Something variables can be looked up in by name.
pub trait Lookup {
    /// The variable's value, null included; `None` when unset.
    fn lookup(&self, name: &str) -> Option<&Value>;
}

impl Lookup for Vars {
    fn lookup(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// Variables as shared layers, lowest precedence first (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct LayeredVars {
    /// Non-empty layers, lowest precedence first.
    layers: Vec<Arc<Vars>>,
}

static NULL: Value = Value::Null;

impl LayeredVars {
    /// Layers given lowest precedence first; empty ones are left out.
    pub fn new(layers: impl IntoIterator<Item = Arc<Vars>>) -> Self {
        LayeredVars {
            layers: layers.into_iter().filter(|l| !l.is_empty()).collect(),
        }
    }

    /// Add a layer above the others (nothing when it is empty).
    pub fn push(&mut self, layer: Arc<Vars>) {
        if !layer.is_empty() {
            self.layers.push(layer);
        }
    }

    /// The layers, lowest precedence first (shared with the groups they come from).
    pub fn layers(&self) -> &[Arc<Vars>] {
        &self.layers
    }

    /// The winning value of `name`, null included; `None` when no layer sets it.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.layers.iter().rev().find_map(|l| l.get(name))
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Each variable once with its winning value, in merge order (see the module docs).
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        let mut seen: HashSet<&str> = HashSet::new();
        let top_only = self.layers.len() <= 1;
        self.layers
            .iter()
            .flat_map(|l| l.iter())
            .filter(move |(k, _)| top_only || seen.insert(k.as_str()))
            .filter_map(|(k, _)| self.get(k).map(|v| (k, v)))
    }

    /// The variable names, each once, in merge order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.iter().map(|(k, _)| k)
    }
}

impl Lookup for LayeredVars {
    fn lookup(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

impl From<Vars> for LayeredVars {
    fn from(vars: Vars) -> Self {
        LayeredVars::new([Arc::new(vars)])
    }
}

/// Like [`serde_json::Value`]'s index: null when unset.
impl Index<&str> for LayeredVars {
    type Output = Value;

    fn index(&self, name: &str) -> &Value {
        self.get(name).unwrap_or(&NULL)
    }
}

/// Equal when the merged variables are (order included, as for [`Vars`]).
impl PartialEq for LayeredVars {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl PartialEq<Vars> for LayeredVars {
    fn eq(&self, other: &Vars) -> bool {
        self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Arc<Vars> {
        Arc::new(v.as_object().unwrap().clone())
    }

    #[test]
    fn the_top_layer_wins_and_order_is_the_merges() {
        let layers = [
            vars(json!({"a": 1, "b": 1, "c": 1})),
            vars(json!({})),
            vars(json!({"d": 2, "b": 2})),
            vars(json!({"c": 3, "e": null})),
        ];
        let layered = LayeredVars::new(layers.clone());
        let mut merged = Vars::new();
        for l in &layers {
            merged.extend(l.as_ref().clone());
        }
        assert_eq!(layered, merged);
        assert_eq!(layered.layers().len(), 3, "the empty layer is left out");
        assert_eq!(layered["b"], 2);
        assert_eq!(layered["missing"], Value::Null);
        assert!(layered.contains_key("e") && !layered.contains_key("missing"));
        assert_eq!(
            layered.keys().collect::<Vec<_>>(),
            ["a", "b", "c", "d", "e"]
        );
    }
}
