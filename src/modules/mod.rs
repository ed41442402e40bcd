//! Task modules. Each module is first *asked* what it would change (check) and only then
//! *told* to act (apply). Plan and check mode stop after the asking.
//!
//! The config loader validates a task's arguments with [`validate_args`] before anything runs.

use serde_json::Value;

/// One problem with a module's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgProblem {
    /// Path inside the arguments (`script`, `timeout`); empty for the arguments as a whole.
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

/// Names of every module a task may use.
pub fn names() -> &'static [&'static str] {
    &["powershell", "assert", "set_fact", "debug", "fail", "pause", "wait_for_connection"]
}

/// Check a module's arguments as written (templates unrendered). Strings holding `{{ }}`
/// are accepted wherever a scalar is expected: they are checked again once rendered.
pub fn validate_args(module: &str, args: &Value) -> Result<(), Vec<ArgProblem>> {
    if !names().contains(&module) {
        return Err(vec![ArgProblem {
            field: String::new(),
            message: format!("unknown module `{module}`"),
            hint: crate::diag::did_you_mean(module, names().iter().copied()),
        }]);
    }
    // Typed per-module validation lands with the modules themselves.
    let _ = args;
    Ok(())
}
