//! `set_fact`: add variables to the host for later tasks (above play variables, below extra
//! variables). Read-only, so it runs the same in check mode.

use serde_json::Value;

use super::args::ArgProblem;
use super::spec::{ModuleSpec, Provides};
use super::{CheckCtx, ModuleError, Outcome, ReadOnlyModule};

/// Keys must be valid variable names.
pub fn validate(args: &Value) -> Result<(), Vec<ArgProblem>> {
    let Some(map) = args.as_object() else {
        return Err(vec![ArgProblem {
            field: String::new(),
            message: "expected a mapping of variable names to values".into(),
            hint: Some("write `set_fact: {name: value}`".into()),
        }]);
    };
    let problems: Vec<ArgProblem> = map
        .keys()
        .filter(|k| !is_identifier(k))
        .map(|k| ArgProblem {
            field: k.clone(),
            message: format!("`{k}` is not a valid variable name"),
            hint: Some("use letters, digits and underscores, not starting with a digit".into()),
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub struct SetFact;

/// What `set_fact` is, for the module table.
pub const SPEC: ModuleSpec = ModuleSpec {
    provides: Provides::Variables,
    ..ModuleSpec::read_only("set_fact", &SetFact, validate)
};

#[async_trait::async_trait]
impl ReadOnlyModule for SetFact {
    async fn run(&self, args: &Value, _ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError> {
        validate(args).map_err(|p| ModuleError::Args(p[0].message.clone()))?;
        let facts = args.as_object().cloned().unwrap_or_default();
        Ok(Outcome {
            facts: Some(facts.clone()),
            ..Outcome::ok()
        }
        .with("ansible_facts", Value::Object(facts)))
    }
}
