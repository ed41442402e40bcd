//! Reading typed settings out of a host's merged variables: the one error type for a variable
//! whose value salve cannot use ([`SettingError`], naming the variable so the inventory loader
//! can point at where it was written), and a [`Reader`] that collects every such error instead
//! of stopping at the first, so `salve check` reports them all at once.

use serde_json::Value;

use super::Lookup;
use crate::secret::is_secret_var;

/// A host variable whose value salve cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("variable `{var}` = {value}: {problem}")]
pub struct SettingError {
    /// The variable, with `[i]` for an item of a list (`salve_maintenance_window[1]`).
    pub var: String,
    /// The value as the setting reads it: the text of a connection setting's scalar, else JSON
    /// (`<redacted>` for a password variable).
    pub value: String,
    pub problem: Problem,
}

/// What is wrong with a variable's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Not a value of the accepted type, or not one of the accepted values.
    #[error("expected {expected}, found {found}")]
    Expected {
        expected: &'static str,
        /// What the value is ([`describe`]).
        found: String,
        /// How to fix it.
        hint: &'static str,
    },
    /// A maintenance window that does not parse, and why.
    #[error("{0}")]
    Window(String),
}

impl SettingError {
    /// `value` as shown (see [`SettingError::value`]).
    pub fn new(var: impl Into<String>, value: String, problem: Problem) -> Self {
        let var = var.into();
        let secret = is_secret_var(var.split('[').next().unwrap_or_default());
        SettingError {
            var,
            value: if secret { "<redacted>".into() } else { value },
            problem,
        }
    }

    /// `value` is not what the variable takes; it is shown as JSON.
    pub fn expected(
        var: impl Into<String>,
        expected: &'static str,
        value: &Value,
        hint: &'static str,
    ) -> Self {
        SettingError::new(
            var,
            value.to_string(),
            Problem::expected(expected, value, hint),
        )
    }

    /// How to fix it, for the diagnostic.
    pub fn hint(&self) -> &'static str {
        match &self.problem {
            Problem::Expected { hint, .. } => hint,
            Problem::Window(_) => {
                "a window looks like `Sat 22:00-Sun 04:00 Europe/Brussels` or `daily 01:00-05:00 UTC`"
            }
        }
    }
}

impl Problem {
    pub fn expected(expected: &'static str, value: &Value, hint: &'static str) -> Self {
        Problem::Expected {
            expected,
            found: describe(value),
            hint,
        }
    }
}

/// What a value is, for "expected X, found Y" messages: `a list`, `number `7``, `string `x``.
/// Only scalars show their value (at most 40 characters); the only error a password variable
/// can have is being a list or a mapping, whose items are never repeated.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Object(_) => "a mapping".into(),
        Value::Array(items) if items.is_empty() => "an empty list".into(),
        Value::Array(_) => "a list".into(),
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) => format!("number `{n}`"),
        Value::String(s) => {
            let mut shown: String = s.chars().take(40).collect();
            if shown.len() < s.len() {
                shown.push('…');
            }
            format!("string `{shown}`")
        }
    }
}

/// A scalar's text: a string as is, a number or a boolean as written in JSON. `None` for null
/// (as good as unset), a list or a mapping.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Reads variables and keeps every error.
pub struct Reader<'a> {
    vars: &'a dyn Lookup,
    errors: Vec<SettingError>,
}

impl<'a> Reader<'a> {
    pub fn new(vars: &'a dyn Lookup) -> Self {
        Reader {
            vars,
            errors: Vec::new(),
        }
    }

    /// The first of `names` that is set (and not null), with its value.
    pub fn first(&self, names: &[&'static str]) -> Option<(&'static str, &'a Value)> {
        names
            .iter()
            .find_map(|n| self.get(n).filter(|v| !v.is_null()).map(|v| (*n, v)))
    }

    /// One variable's value, null included.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.vars.lookup(name)
    }

    /// Record an error.
    pub fn fail(&mut self, error: SettingError) {
        self.errors.push(error);
    }

    /// Every error recorded.
    pub fn into_errors(self) -> Vec<SettingError> {
        self.errors
    }

    /// The first of `names` that is set, as text; a list or a mapping is an error.
    pub fn text(&mut self, names: &[&'static str]) -> Option<(&'static str, String)> {
        let (var, value) = self.first(names)?;
        match scalar_text(value) {
            Some(text) => Some((var, text)),
            None => {
                self.errors.push(SettingError::expected(
                    var,
                    "a single value",
                    value,
                    "write one value: a word, a number or a path",
                ));
                None
            }
        }
    }

    /// The first of `names` that is set, read by `parse`; a value `parse` refuses is an error
    /// saying what was `expected`. `None` when unset or wrong.
    pub fn parsed<T>(
        &mut self,
        names: &[&'static str],
        expected: &'static str,
        hint: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let (var, text) = self.text(names)?;
        let parsed = parse(&text);
        if parsed.is_none()
            && let Some((_, value)) = self.first(&[var])
        {
            let problem = Problem::expected(expected, value, hint);
            self.errors.push(SettingError::new(var, text, problem));
        }
        parsed
    }

    /// A yes/no variable; unset is no.
    pub fn flag(&mut self, name: &'static str) -> bool {
        self.parsed(
            &[name],
            "true or false",
            "write `true` or `false`",
            |text| match text {
                "yes" | "true" | "True" => Some(true),
                "no" | "false" | "False" => Some(false),
                _ => None,
            },
        )
        .unwrap_or(false)
    }
}
