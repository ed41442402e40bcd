//! Module arguments: typed structs deserialised from the task's (rendered) arguments, with
//! errors turned into [`ArgProblem`]s that name the field and suggest the right spelling.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::template::is_template;

/// One problem with a module's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgProblem {
    /// Path inside the arguments (`script`, `that[1]`); empty for the arguments as a whole.
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

/// Validates a module's arguments as written.
pub type Validator = fn(&Value) -> Result<(), Vec<ArgProblem>>;

/// Validate by deserialising into the module's argument type.
pub fn validator<T: DeserializeOwned>(args: &Value) -> Result<(), Vec<ArgProblem>> {
    parse::<T>(args).map(|_| ()).map_err(|p| vec![p])
}

/// Deserialise arguments into `T`, naming the field at fault.
pub fn parse<T: DeserializeOwned>(args: &Value) -> Result<T, ArgProblem> {
    let args = if args.is_null() {
        Value::Object(Default::default())
    } else {
        args.clone()
    };
    serde_path_to_error::deserialize(args).map_err(|e| {
        let field = e.path().to_string();
        let message = e.inner().to_string();
        let field = if field == "." { String::new() } else { field };
        let hint = unknown_field_hint(&message);
        ArgProblem {
            field,
            message,
            hint,
        }
    })
}

/// From serde's "unknown field `x`, expected one of `a`, `b`", a "did you mean" hint.
fn unknown_field_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (word, expected) = rest.split_once('`')?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    crate::diag::did_you_mean(word, candidates.iter().copied())
        .or_else(|| Some(format!("expected one of: {}", candidates.join(", "))))
}

/// A number that may be written as a template (`"{{ wait }}"`) before rendering, or as a
/// numeric string (`"30"`), as Ansible allows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Num(pub f64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_f64()
                .map(Num)
                .ok_or_else(|| D::Error::custom("number out of range")),
            // Not yet rendered: validated again once it is.
            Value::String(s) if is_template(&s) => Ok(Num(f64::NAN)),
            Value::String(s) => s
                .trim()
                .parse()
                .map(Num)
                .map_err(|_| D::Error::custom(format!("expected a number, found \"{s}\""))),
            other => Err(D::Error::custom(format!(
                "expected a number, found {other}"
            ))),
        }
    }
}

/// A [`Num`] that is no duration.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("expected a non-negative number of seconds, found {0}")]
pub struct NotSeconds(pub f64);

impl Num {
    /// As a duration in seconds; negative or unrendered values are an error.
    pub fn seconds(self) -> Result<std::time::Duration, NotSeconds> {
        if self.0.is_finite() && self.0 >= 0.0 {
            Ok(std::time::Duration::from_secs_f64(self.0))
        } else {
            Err(NotSeconds(self.0))
        }
    }
}

/// One string or a list of strings (`that: x` or `that: [x, y]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::String(s) => Ok(OneOrMany(vec![s])),
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    Value::Bool(b) => Ok(b.to_string()),
                    other => Err(D::Error::custom(format!(
                        "expected a string, found {other}"
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(OneOrMany),
            Value::Bool(b) => Ok(OneOrMany(vec![b.to_string()])),
            other => Err(D::Error::custom(format!(
                "expected a string or a list of strings, found {other}"
            ))),
        }
    }
}
