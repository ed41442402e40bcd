//! The variables a template is rendered against, without merging them: a [`Context`] holds
//! the variable layers (the host's inventory layers shared with its groups, then play vars,
//! facts, extra vars, locals and the magic variables, lowest precedence first) and looks a
//! name up from the top when the template reads it. Only the variables a template reads are
//! converted to template values, so rendering costs what the template uses, not what the
//! inventory holds.
//!
//! Fleet-sized values (`groups`, `hostvars`, `play_hosts`) are template values built once and
//! shared by every host ([`Context::with_template_value`]); they sit above every layer and only
//! templates see them.

use std::ops::Index;
use std::sync::Arc;

use minijinja::Value as JValue;
use minijinja::value::{Enumerator, Object, ObjectRepr, Serde};
use serde_json::Value;

use crate::model::{LayeredVars, Vars};

/// Variables by precedence, looked up on demand (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Context {
    vars: LayeredVars,
    /// Values only templates read, above every layer.
    template_values: Vec<(&'static str, JValue)>,
}

impl Context {
    /// A context of `vars` (lowest precedence first).
    pub fn new(vars: LayeredVars) -> Self {
        Context {
            vars,
            template_values: Vec::new(),
        }
    }

    /// The same context with `layer` above every other layer.
    pub fn with_layer(mut self, layer: Arc<Vars>) -> Self {
        self.vars.push(layer);
        self
    }

    /// The same context with `name` bound to `value` for templates only, above every layer.
    pub fn with_template_value(mut self, name: &'static str, value: JValue) -> Self {
        self.template_values.retain(|(n, _)| *n != name);
        self.template_values.push((name, value));
        self
    }

    /// A variable's winning value (template-only values are not seen here).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.vars.get(name)
    }

    /// As a template value (cheap: the layers are shared, not copied).
    pub fn to_template(&self) -> JValue {
        JValue::from_object(self.clone())
    }
}

/// A JSON object as a one-layer context; anything else gives an empty one.
impl From<Value> for Context {
    fn from(value: Value) -> Self {
        match value {
            Value::Object(map) => Context::new(map.into()),
            _ => Context::default(),
        }
    }
}

/// Like [`serde_json::Value`]'s index: null when unset.
impl Index<&str> for Context {
    type Output = Value;

    fn index(&self, name: &str) -> &Value {
        &self.vars[name]
    }
}

impl Object for Context {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let name = key.as_str()?;
        if let Some((_, v)) = self.template_values.iter().find(|(n, _)| *n == name) {
            return Some(v.clone());
        }
        self.vars.get(name).map(|v| JValue::from(Serde(v)))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<JValue> = self
            .vars
            .keys()
            .filter(|k| !self.template_values.iter().any(|(n, _)| n == k))
            .map(|k| JValue::from(k.as_str()))
            .collect();
        keys.extend(self.template_values.iter().map(|(n, _)| JValue::from(*n)));
        Enumerator::Values(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layer(v: Value) -> Arc<Vars> {
        Arc::new(v.as_object().unwrap().clone())
    }

    #[test]
    fn templates_see_the_top_layer_and_template_values() {
        let ctx = Context::from(json!({"a": 1, "b": {"c": [1, 2]}}))
            .with_layer(layer(json!({"a": 2})))
            .with_template_value("play_hosts", JValue::from(vec!["h1", "h2"]));
        assert_eq!(ctx["a"], 2);
        assert_eq!(
            ctx["play_hosts"],
            Value::Null,
            "template values are for templates"
        );
        let v = super::super::eval("[a, b.c[1], play_hosts | length]", &ctx).unwrap();
        assert_eq!(v, json!([2, 2, 2]));
        let inner = Context::from(json!({"x": 1, "y": 2})).with_layer(layer(json!({"x": 3})));
        let outer = Context::default().with_template_value("h", inner.to_template());
        let v = super::super::eval("[h | list, h.x, h.z is defined]", &outer).unwrap();
        assert_eq!(v, json!([["x", "y"], 3, false]));
    }
}
