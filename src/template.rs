//! Templating and expressions with Jinja2 syntax (minijinja), as Ansible users expect:
//! `"{{ inventory_hostname }}"` in strings, bare expressions in `when`/`until`/`changed_when`.
//! Ansible's own filters and tests (`dict2items`, `combine`, `regex_replace`, `version`, ...)
//! are in [`filters`]; Python's methods on strings, lists and dictionaries (`x.split(',')`,
//! `d.items()`) come from minijinja-contrib's `pycompat`, as Ansible templates use them.
//!
//! Undefined variables are errors (strict mode), except through `default(...)` and
//! `is defined`. A string that is exactly one `{{ expression }}` renders to the expression's
//! native value (a list stays a list), as in Ansible.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use minijinja::{Environment, UndefinedBehavior, Value as JValue};

mod context;
mod filters;

pub use context::Context;
pub use filters::{ANSIBLE_FILTERS, ANSIBLE_TESTS};
use serde_json::Value;

/// A template or expression that failed to compile or evaluate. The failure underneath is its
/// source, shared so the error stays `Clone` (module errors carry it).
#[derive(Debug, Clone, thiserror::Error)]
pub enum TemplateError {
    /// minijinja's error, told with its own causes on one line.
    #[error("{}", crate::error_chain::one_line(.0.as_ref()))]
    Jinja(#[source] Arc<minijinja::Error>),
    /// The expression's value has no JSON form.
    #[error("{0}")]
    Json(#[source] Arc<serde_json::Error>),
}

impl From<minijinja::Error> for TemplateError {
    fn from(e: minijinja::Error) -> Self {
        TemplateError::Jinja(Arc::new(e))
    }
}

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        filters::install(&mut env);
        env
    })
}

/// What a template can be rendered against: a [`Context`] (looked up on demand), or a JSON
/// value (converted whole; for small, one-off contexts).
pub trait Scope {
    fn to_template(&self) -> JValue;
}

impl Scope for Context {
    fn to_template(&self) -> JValue {
        Context::to_template(self)
    }
}

impl Scope for Value {
    fn to_template(&self) -> JValue {
        JValue::from(minijinja::value::Serde(self))
    }
}

/// Does this string contain template syntax?
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// If `s` is exactly `{{ expr }}`, the inner expression.
fn sole_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then_some(inner.trim())
}

/// Compile a template and return the top-level variable names it reads.
pub fn check_template(src: &str) -> Result<BTreeSet<String>, TemplateError> {
    let tmpl = env().template_from_str(src)?;
    Ok(tmpl.undeclared_variables(false).into_iter().collect())
}

/// Compile an expression and return the top-level variable names it reads.
pub fn check_expr(src: &str) -> Result<BTreeSet<String>, TemplateError> {
    let expr = env().compile_expression(src)?;
    Ok(expr.undeclared_variables(false).into_iter().collect())
}

/// Render a template string to text.
pub fn render_str(src: &str, ctx: &(impl Scope + ?Sized)) -> Result<String, TemplateError> {
    if !is_template(src) {
        return Ok(src.to_string());
    }
    Ok(env().render_str(src, ctx.to_template())?)
}

/// Evaluate an expression to a value.
pub fn eval(src: &str, ctx: &(impl Scope + ?Sized)) -> Result<Value, TemplateError> {
    let expr = env().compile_expression(src)?;
    let v = expr.eval(ctx.to_template())?;
    serde_json::to_value(&v).map_err(|e| TemplateError::Json(Arc::new(e)))
}

/// Evaluate a condition (`when`, `until`, ...) to a boolean.
pub fn eval_bool(src: &str, ctx: &(impl Scope + ?Sized)) -> Result<bool, TemplateError> {
    let expr = env().compile_expression(src)?;
    Ok(expr.eval(ctx.to_template())?.is_true())
}

/// Render every string inside a value; `"{{ x }}"` alone yields `x`'s native value.
pub fn render_value(value: &Value, ctx: &(impl Scope + ?Sized)) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::String(s) if is_template(s) => match sole_expression(s) {
            Some(expr) => eval(expr, ctx)?,
            None => Value::String(render_str(s, ctx)?),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, ctx)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

/// Variable names read by every template found inside a value.
pub fn check_value(value: &Value) -> Result<BTreeSet<String>, TemplateError> {
    let mut names = BTreeSet::new();
    match value {
        Value::String(s) if is_template(s) => names.extend(check_template(s)?),
        Value::Array(items) => {
            for v in items {
                names.extend(check_value(v)?);
            }
        }
        Value::Object(map) => {
            for v in map.values() {
                names.extend(check_value(v)?);
            }
        }
        _ => {}
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_and_keeps_native_values() {
        let ctx = json!({"name": "ex01", "dags": ["a", "b"], "n": 3});
        assert_eq!(render_str("host {{ name }}", &ctx).unwrap(), "host ex01");
        assert_eq!(
            render_value(&json!("{{ dags }}"), &ctx).unwrap(),
            json!(["a", "b"])
        );
        assert_eq!(
            render_value(&json!({"x": ["{{ n + 1 }}"]}), &ctx).unwrap(),
            json!({"x": [4]})
        );
    }

    #[test]
    fn undefined_is_an_error_unless_defaulted() {
        let ctx = json!({});
        assert!(render_str("{{ missing }}", &ctx).is_err());
        assert_eq!(
            render_str("{{ missing | default('d') }}", &ctx).unwrap(),
            "d"
        );
        assert!(!eval_bool("missing is defined", &ctx).unwrap());
    }

    #[test]
    fn reports_variables_read() {
        let names = check_expr("build.major == 15 and item in groups['dag1']").unwrap();
        assert_eq!(
            names,
            ["build", "groups", "item"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
        assert!(check_expr("a ==").is_err());
    }

    #[test]
    fn python_methods_work_as_in_ansible_templates() {
        let ctx = json!({"line": "DB01,DB02", "d": {"a": 1}});
        assert_eq!(
            eval("line.split(',')", &ctx).unwrap(),
            json!(["DB01", "DB02"])
        );
        assert!(eval_bool("'15.2.1544.14'.startswith('15.2')", &ctx).unwrap());
        assert_eq!(eval("d.items() | list", &ctx).unwrap(), json!([["a", 1]]));
        assert_eq!(eval("'EX01'.lower()", &ctx).unwrap(), json!("ex01"));
    }

    #[test]
    fn bool_filter_reads_ansible_spellings() {
        assert!(eval_bool("'yes' | bool", &json!({})).unwrap());
        assert!(!eval_bool("'no' | bool", &json!({})).unwrap());
    }
}
